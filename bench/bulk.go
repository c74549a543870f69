package main

// Bulk goodput on loopback: one reliable ouro flow over the square's
// two hops (A to D) next to one TCP stream over 127.0.0.1, both moving
// bulkMsg-byte writes for the measurement duration, measured at the
// receiver after the first second. Part of the default run when the
// unicast2 path is measured.

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/internal/topo"
	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/qos"
)

// BulkRow is one bulk transfer of the default run.
type BulkRow struct {
	Path  string     `json:"path"`
	Bulk  BulkResult `json:"result"`
	XTCP  float64    `json:"x_tcp,omitempty"`
	Error string     `json:"error,omitempty"`
}

// bulkLoopback measures TCP on loopback and a reliable flow over the
// square.
func bulkLoopback(ctx context.Context, e *env, d time.Duration) []BulkRow {
	tcp := BulkRow{Path: "tcp"}
	if r, err := bulkTCPLoopback(d); err != nil {
		tcp.Error = err.Error()
	} else {
		tcp.Bulk = r
	}
	rel := BulkRow{Path: "reliable " + pathUnicast2}
	if r, err := bulkReliableSquare(ctx, e, d); err != nil {
		rel.Error = err.Error()
	} else {
		rel.Bulk = r
		if tcp.Bulk.Mbps > 0 {
			rel.XTCP = r.Mbps / tcp.Bulk.Mbps
		}
	}
	return []BulkRow{tcp, rel}
}

func bulkTCPLoopback(d time.Duration) (BulkResult, error) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return BulkResult{}, err
	}
	defer l.Close()
	sinks := make(chan *sink, 1)
	go func() {
		if c, err := l.Accept(); err == nil {
			sinks <- newSink(c, false)
		}
	}()
	c, err := net.Dial("tcp4", l.Addr().String())
	if err != nil {
		return BulkResult{}, err
	}
	return (&servers{}).runBulk(c, sinks, d)
}

func bulkReliableSquare(ctx context.Context, e *env, d time.Duration) (BulkResult, error) {
	tp, err := e.buildSquare(ctx)
	if err != nil {
		return BulkResult{}, err
	}
	defer tp.Close()
	dirD, dirA := tp.Hosts["d"].Dir, tp.Hosts["a"].Dir
	if err := topo.Call(dirD, ctrl.OpNameRegister, ctrl.NameRegister{Name: bulkName, Layers: []string{"net"}}, nil); err != nil {
		return BulkResult{}, fmt.Errorf("register %s: %w", bulkName, err)
	}
	l, err := flow.Listen(bulkName, flow.WithRunDir(dirD))
	if err != nil {
		return BulkResult{}, err
	}
	defer l.Close()
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sinks := make(chan *sink, 1)
	go func() {
		if f, err := l.Accept(lctx); err == nil {
			sinks <- newSink(f, true)
		}
	}()
	s := &servers{p: &shapedPath{dirA: dirA}}
	f, err := s.allocOuro(ctx, bulkName, qos.Reliable())
	if err != nil {
		return BulkResult{}, err
	}
	r, err := s.runBulk(f, sinks, d)
	if err == nil && r.Bad != 0 {
		err = fmt.Errorf("%d messages out of order or cut", r.Bad)
	}
	return r, err
}

// printBulk writes the bulk rows.
func printBulk(w io.Writer, rows []BulkRow) {
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(w, "\nbulk goodput, %d-byte writes, one stream, measured at the receiver after the first second:\n", bulkMsg)
	for _, r := range rows {
		if r.Error != "" {
			fmt.Fprintf(w, "  %-18s error: %s\n", r.Path, r.Error)
			continue
		}
		x := ""
		if r.XTCP > 0 {
			x = fmt.Sprintf("  (%.2fx tcp; cwnd %d, srtt %.3f ms, %d retransmitted)", r.XTCP, r.Bulk.Cwnd, r.Bulk.SRTTMS, r.Bulk.Retransmitted)
		}
		fmt.Fprintf(w, "  %-18s %9.1f Mbit/s%s\n", r.Path, r.Bulk.Mbps, x)
	}
}
