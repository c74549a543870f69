package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/flow/ping"
	"github.com/ouro-net/ouro/internal/topo"
)

// How long each failover round streams before and after the cut.
const (
	beforeCut = 300 * time.Millisecond
	afterCut  = 700 * time.Millisecond
)

// FailoverRun is one cut.
type FailoverRun struct {
	Iteration int     `json:"iteration"`
	Peer      string  `json:"cut_link_to"`
	GapMS     float64 `json:"interruption_ms"`
	// LossSpanMS is the time from the first lost probe to the last one
	// (by sequence number): longer than GapMS when loss is partial.
	LossSpanMS float64 `json:"loss_span_ms"`
	Lost       int     `json:"lost"`
	Sent       int     `json:"sent"`
	Received   int     `json:"received"`
	Error      string  `json:"error,omitempty"`
}

// FailoverResult is a failover bench run.
type FailoverResult struct {
	Started     time.Time     `json:"started"`
	Graceful    bool          `json:"graceful"`
	N           int           `json:"n"`
	IntervalMS  float64       `json:"interval_ms"`
	Runs        []FailoverRun `json:"runs"`
	MedianGapMS float64       `json:"median_interruption_ms"`
	WorstGapMS  float64       `json:"worst_interruption_ms"`
	TotalLost   int           `json:"total_lost"`
	MedianLost  float64       `json:"median_lost"`
	Failed      int           `json:"failed"`
}

// failover cuts A's active link of the square n times under a ping
// stream from A to D and measures each interruption.
func failover(ctx context.Context, e *env, n int, graceful bool, interval time.Duration, out io.Writer) (*FailoverResult, error) {
	res := &FailoverResult{Started: time.Now(), Graceful: graceful, N: n, IntervalMS: float64(interval) / 1e6}
	tp, err := e.buildSquare(ctx)
	if err != nil {
		return nil, err
	}
	defer tp.Close()
	if err := registerAll(tp.Hosts["d"].Dir, "net"); err != nil {
		return nil, err
	}
	srv, err := startChild("flow", tp.Hosts["d"].Dir)
	if err != nil {
		return nil, err
	}
	defer srv.Stop()
	how := "kill (SIGKILL: the far side learns by keepalive)"
	if graceful {
		how = "stop (SIGTERM: the lower IPCP deallocates, both sides learn at once)"
	}
	fmt.Fprintf(out, "failover: square A-B-D-C-A, ping A->D every %v, cut A's active link %d times by %s\n\n", interval, n, how)
	fmt.Fprintln(out, "   #  cut   interruption ms  loss span ms   lost / sent")
	opts := []flow.Option{tp.Hosts["a"].Opt(), flow.WithLayer("net")}
	for i := 1; i <= n && ctx.Err() == nil; i++ {
		r := cutOnce(ctx, tp, opts, graceful, interval)
		r.Iteration = i
		res.Runs = append(res.Runs, r)
		line := fmt.Sprintf("%4d  a-%s  %15.1f  %12.1f   %4d / %d", i, r.Peer, r.GapMS, r.LossSpanMS, r.Lost, r.Sent)
		if r.Error != "" {
			line += "  error: " + r.Error
		}
		fmt.Fprintln(out, line)
	}
	res.summarise()
	fmt.Fprintf(out, "\ninterruption: median %.1f ms, worst %.1f ms; lost: %d in total, median %.0f per cut; %d of %d rounds failed\n",
		res.MedianGapMS, res.WorstGapMS, res.TotalLost, res.MedianLost, res.Failed, len(res.Runs))
	return res, nil
}

// cutOnce streams pings from A to D, cuts A's link that carries them,
// and restores it once the stream is over.
func cutOnce(ctx context.Context, tp *topo.Topo, opts []flow.Option, graceful bool, interval time.Duration) FailoverRun {
	var r FailoverRun
	peers := []string{"b", "c"}
	conn, err := allocRetry(ctx, pingName, opts)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	defer conn.Close()
	_, before, err := tp.ActivePeer("a", peers, nil)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	type result struct {
		st  *ping.Stats
		err error
	}
	done := make(chan result, 1)
	go func(c net.Conn) { // owned: bounded by the stream's duration and the bound below
		st, err := ping.RunOn(ctx, c, ping.Config{Name: "d", Size: 64, Interval: interval, Duration: beforeCut + afterCut})
		done <- result{st, err}
	}(conn)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	time.Sleep(beforeCut)
	var errs []string
	if r.Peer, _, err = tp.ActivePeer("a", peers, before); err != nil {
		errs = append(errs, err.Error())
	} else if _, err := tp.Cut("a", r.Peer, graceful); err != nil {
		errs = append(errs, "cut: "+err.Error())
	}
	var res result
	select {
	case res = <-done:
	case <-time.After(beforeCut + afterCut + grace):
		conn.SetDeadline(time.Now())
		res = <-done
	}
	if res.err != nil {
		errs = append(errs, "stream: "+res.err.Error())
	}
	if st := res.st; st != nil {
		r.GapMS, r.Lost, r.Sent, r.Received = st.LongestGapMS, len(st.Lost), st.Transmitted, st.Received
		if n := len(st.Lost); n > 0 {
			r.LossSpanMS = float64(st.Lost[n-1]-st.Lost[0]+1) * float64(interval) / 1e6
		}
	}
	if r.Peer != "" {
		if err := tp.Restore("a", r.Peer); err != nil {
			errs = append(errs, "restore: "+err.Error())
		}
	}
	for _, hd := range [][2]string{{"a", "d"}, {"d", "a"}} {
		if _, err := tp.WaitRoute(hd[0], hd[1], 2, 20*time.Second); err != nil {
			errs = append(errs, err.Error())
			break
		}
	}
	r.Error = strings.Join(errs, "; ")
	return r
}

// summarise computes the medians and totals of the rounds.
func (f *FailoverResult) summarise() {
	var gaps, lost []float64
	for _, r := range f.Runs {
		if r.Error != "" && r.Sent == 0 {
			f.Failed++
			continue
		}
		if r.Error != "" {
			f.Failed++
		}
		gaps = append(gaps, r.GapMS)
		lost = append(lost, float64(r.Lost))
		f.TotalLost += r.Lost
		f.WorstGapMS = max(f.WorstGapMS, r.GapMS)
	}
	f.MedianGapMS, f.MedianLost = median(gaps), median(lost)
}

// median is the middle value (the mean of the two middle values for an
// even count); 0 for none.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
