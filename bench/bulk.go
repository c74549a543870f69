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
	"os"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strings"
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

// PingPongRow is the round trip of one message at a time over a
// reliable flow across the square (the latency packing must not cost).
type PingPongRow struct {
	Size     int     `json:"size"`
	N        int     `json:"n"`
	MedianMS float64 `json:"rtt_median_ms"`
	P99MS    float64 `json:"rtt_p99_ms"`
	// DataSent and PackedSent are the client's FRCT counters: one DATA
	// packet per message, none packed, when nothing waits.
	DataSent   uint64 `json:"data_sent"`
	PackedSent uint64 `json:"packed_sent"`
	Error      string `json:"error,omitempty"`
}

// pingPongN and pingPongSize shape the reliable ping-pong of -bulk.
const (
	pingPongN    = 2000
	pingPongSize = 64
	pingPongName = "bulkping"
)

// pingPongSquare sends n messages of size bytes one at a time over a
// reliable flow from A to an echo on D, each after the last came back,
// and returns the round trips.
func pingPongSquare(ctx context.Context, e *env, n, size int) PingPongRow {
	row := PingPongRow{Size: size, N: n}
	fail := func(err error) PingPongRow { row.Error = err.Error(); return row }
	tp, err := e.buildSquare(ctx)
	if err != nil {
		return fail(err)
	}
	defer tp.Close()
	dirD, dirA := tp.Hosts["d"].Dir, tp.Hosts["a"].Dir
	if err := topo.Call(dirD, ctrl.OpNameRegister, ctrl.NameRegister{Name: pingPongName, Layers: []string{"net"}}, nil); err != nil {
		return fail(fmt.Errorf("register %s: %w", pingPongName, err))
	}
	l, err := flow.Listen(pingPongName, flow.WithRunDir(dirD))
	if err != nil {
		return fail(err)
	}
	defer l.Close()
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		f, err := l.Accept(lctx)
		if err != nil {
			return
		}
		defer f.Close()
		buf := make([]byte, 1<<16)
		for {
			k, err := f.Read(buf)
			if err != nil {
				return
			}
			if _, err := f.Write(buf[:k]); err != nil {
				return
			}
		}
	}()
	s := &servers{p: &shapedPath{dirA: dirA}}
	f, err := s.allocOuro(ctx, pingPongName, qos.Reliable())
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	msg, buf := make([]byte, size), make([]byte, 1<<16)
	rtts := make([]float64, 0, n)
	f.SetDeadline(time.Now().Add(30 * time.Second))
	for i := 0; i < n+n/10; i++ { // the first tenth warms up
		t0 := time.Now()
		if _, err := f.Write(msg); err != nil {
			return fail(err)
		}
		if _, err := io.ReadFull(f, buf[:size]); err != nil {
			return fail(err)
		}
		if i >= n/10 {
			rtts = append(rtts, float64(time.Since(t0))/1e6)
		}
	}
	sort.Float64s(rtts)
	row.MedianMS, row.P99MS = rtts[len(rtts)/2], rtts[len(rtts)*99/100]
	if st := f.Reliability(); st != nil {
		row.DataSent, row.PackedSent = st.DataSent, st.PackedSent
	}
	return row
}

func printPingPong(w io.Writer, r PingPongRow) {
	if r.Error != "" {
		fmt.Fprintf(w, "  reliable ping-pong %d B: error: %s\n", r.Size, r.Error)
		return
	}
	fmt.Fprintf(w, "  reliable ping-pong %d B, %d round trips over the square: median %.3f ms, p99 %.3f ms (client: %d DATA packets, %d packed)\n",
		r.Size, r.N, r.MedianMS, r.P99MS, r.DataSent, r.PackedSent)
}

// bulkLoopback measures TCP on loopback and a reliable flow over the
// square; around the reliable one it calls during (when not nil) with
// true, then false.
func bulkLoopback(ctx context.Context, e *env, d time.Duration, during ...func(bool)) []BulkRow {
	tcp := BulkRow{Path: "tcp"}
	if r, err := bulkTCPLoopback(d); err != nil {
		tcp.Error = err.Error()
	} else {
		tcp.Bulk = r
	}
	rel := BulkRow{Path: "reliable " + pathUnicast2}
	for _, f := range during {
		f(true)
	}
	r, err := bulkReliableSquare(ctx, e, d)
	for _, f := range during {
		f(false)
	}
	if err != nil {
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
			b := r.Bulk
			x = fmt.Sprintf("  (%.3fx tcp; cwnd %d seg = %d B, srtt %.3f ms, base %.3f ms, %d retransmitted, cuts %d delay %d loss %d rto;"+
				" mtu %d, %d data packets, %.1f msgs/packet, %d packed with %d msgs)",
				r.XTCP, b.Cwnd, b.CwndBytes, b.SRTTMS, b.BaseRTTMS, b.Retransmitted, b.DelayCuts, b.LossCuts, b.RTOCuts,
				b.MTU, b.DataPackets, b.MsgsPerPacket, b.PackedPackets, b.PackedMessages)
		}
		fmt.Fprintf(w, "  %-18s %9.1f Mbit/s%s\n", r.Path, r.Bulk.Mbps, x)
	}
}

// BulkRun is the result of -bulk: the bulk rows, n rounds of each.
type BulkRun struct {
	Started time.Time   `json:"started"`
	Rounds  [][]BulkRow `json:"rounds"`
	// MedianTCP and MedianReliable are the medians over the rounds, in
	// Mbit/s; XTCP is their ratio.
	MedianTCP      float64 `json:"median_tcp_mbps"`
	MedianReliable float64 `json:"median_reliable_mbps"`
	XTCP           float64 `json:"x_tcp"`
	LoadAvg        string  `json:"loadavg"`
	// PingPong is one reliable ping-pong per round; MedianPingMS the
	// median of their medians.
	PingPong     []PingPongRow `json:"ping_pong"`
	MedianPingMS float64       `json:"median_ping_ms"`
}

// bulkRun measures the bulk rows n times, back to back. With
// OURO_CPUPROFILE=DIR set, the bench process (the sending and the
// receiving application) writes DIR/bench-bulk-N.cpu.pprof over the
// reliable transfer of round N, and the IPCPs write theirs as they
// exit (see cmd/irm; each round's square overwrites the last's).
func bulkRun(ctx context.Context, e *env, n int, d time.Duration, stdout, progress io.Writer) *BulkRun {
	r := &BulkRun{Started: time.Now()}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		r.LoadAvg = strings.TrimSpace(string(b))
	}
	var prof func(bool)
	if dir := os.Getenv("OURO_CPUPROFILE"); dir != "" {
		// The bench process is both applications; it profiles the
		// reliable transfers only (one file per round).
		var f *os.File
		round := 0
		prof = func(on bool) {
			if !on {
				if f != nil {
					pprof.StopCPUProfile()
					f.Close()
					f = nil
				}
				return
			}
			round++
			var err error
			if f, err = os.Create(filepath.Join(dir, fmt.Sprintf("bench-bulk-%d.cpu.pprof", round))); err == nil {
				if pprof.StartCPUProfile(f) != nil {
					f.Close()
					f = nil
				}
			}
		}
	}
	var tcp, rel, pings []float64
	for i := 0; i < n && ctx.Err() == nil; i++ {
		fmt.Fprintf(progress, "bench: bulk round %d of %d\n", i+1, n)
		// The ping-pong first, on a fresh process: after a bulk
		// transfer the heap and the collector's work depend on how
		// much moved, which would bias the comparison.
		pp := pingPongSquare(ctx, e, pingPongN, pingPongSize)
		r.PingPong = append(r.PingPong, pp)
		if pp.Error == "" {
			pings = append(pings, pp.MedianMS)
		}
		var rows []BulkRow
		if prof != nil {
			rows = bulkLoopback(ctx, e, d, prof)
		} else {
			rows = bulkLoopback(ctx, e, d)
		}
		r.Rounds = append(r.Rounds, rows)
		printBulk(stdout, rows)
		tcp = append(tcp, rows[0].Bulk.Mbps)
		rel = append(rel, rows[1].Bulk.Mbps)
		printPingPong(stdout, pp)
	}
	r.MedianPingMS = median(pings)
	r.MedianTCP, r.MedianReliable = median(tcp), median(rel)
	if r.MedianTCP > 0 {
		r.XTCP = r.MedianReliable / r.MedianTCP
	}
	fmt.Fprintf(stdout, "\nmedians over %d rounds: tcp %.1f Mbit/s, reliable %.1f Mbit/s (%.3fx tcp), reliable ping-pong %.3f ms; load average at start %s\n",
		len(tcp), r.MedianTCP, r.MedianReliable, r.XTCP, r.MedianPingMS, r.LoadAvg)
	return r
}
