package main

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/ouro-net/ouro/flow/ping"
	"github.com/ouro-net/ouro/tools/operf/perf"
)

// grace is how long a measurement may overrun its duration (flow
// allocation, the end exchange, draining) before it is cut short.
const grace = 20 * time.Second

// bounded runs fn on a fresh conn to name and cuts it short when it
// overruns d by grace: every deadline of the conn is set to now, which
// fails any blocked read or write.
func bounded(ctx context.Context, t *target, name string, d time.Duration, fn func(context.Context, net.Conn) error) error {
	ctx, cancel := context.WithTimeout(ctx, d+grace)
	defer cancel()
	conn, err := t.Dial(ctx, name)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	return fn(ctx, conn)
}

// rtt measures round trips ping-pong style (the next probe leaves when
// the reply arrives) for d.
func rtt(ctx context.Context, t *target, size int, d time.Duration, row *Row) error {
	return bounded(ctx, t, pingName, d, func(ctx context.Context, c net.Conn) error {
		st, err := ping.RunOn(ctx, c, ping.Config{Name: t.Path, Size: size, Flood: true, Duration: d,
			Wait: 200 * time.Millisecond})
		if st != nil {
			row.RTTMedianMS, row.RTTP99MS, row.RTTSamples = st.MedianMS, st.P99MS, st.Received
			if st.Received == 0 && err == nil {
				err = fmt.Errorf("no reply to %d probes", st.Transmitted)
			}
		}
		return err
	})
}

// flood sends size-byte packets as fast as the path takes them for d
// and records what the far end received.
func flood(ctx context.Context, t *target, size int, d time.Duration, row *Row) error {
	return bounded(ctx, t, perfName, d, func(ctx context.Context, c net.Conn) error {
		res, err := perf.Run(ctx, c, perf.Config{Name: t.Path, Size: size, Duration: d, Wait: 5 * time.Second})
		if res != nil {
			f := res.Forward
			row.PPS, row.Mbps, row.LossPct, row.Sent, row.Received = f.PPS, f.Mbps, f.LossPct, f.Sent, f.Received
		}
		return err
	})
}

// measure fills one row: round trips, then a flood, each on a settled
// path; it counts the adjacencies that went down during the flood.
func measure(ctx context.Context, t *target, size int, d time.Duration) Row {
	row := Row{Path: t.Path, Size: size}
	var errs []string
	settle := func() {
		if t.Settle != nil {
			if err := t.Settle(); err != nil {
				errs = append(errs, "settle: "+err.Error())
			}
		}
	}
	settle()
	rttOf := rtt
	if t.DialPlain != nil {
		rttOf = rttPaired
	}
	if err := rttOf(ctx, t, size, d, &row); err != nil {
		errs = append(errs, "rtt: "+err.Error())
	}
	settle()
	downs := 0
	if t.Downs != nil {
		downs = t.Downs()
	}
	if err := flood(ctx, t, size, d, &row); err != nil {
		errs = append(errs, "flood: "+err.Error())
	}
	if t.Downs != nil {
		row.AdjDowns = t.Downs() - downs
	}
	for i, e := range errs {
		if i > 0 {
			row.Error += "; "
		}
		row.Error += e
	}
	return row
}
