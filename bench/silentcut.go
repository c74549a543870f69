package main

// The -silentcut mode (root): how many packets a silent failure costs
// the unicast layer. Namespaces A and B joined by two paths, each A
// -veth- M -veth- B through a bridge of its own in a middle namespace
// M; an IRMd per end, an eth-dix IPCP per path, the unicast layer "net"
// over both (default liveness; damping 10 ms, since the rounds cut the
// same paths again and again). Eight ping streams, one probe a
// millisecond each, run from A to B; the path that carries most of A's
// packets fails:
//
//	silent   M takes A's port out of the bridge: both ends keep carrier,
//	         frames go nowhere (only the keepalive can tell)
//	carrier  M sets both of its ports on the path down: A and B lose
//	         carrier (for comparison)
//
// Each round reports the probes lost by the worst of the eight streams
// (issue 16: at most 15 for the silent cut) and by all of them; then
// the path is restored and the next round waits until A routes to B
// over both paths again.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/flow/ping"
	"github.com/ouro-net/ouro/internal/topo"
	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/qos"
)

// silentStreams is the number of ping streams across each cut.
const silentStreams = 8

// silentTarget is issue 16's bound on the worst stream's loss across a
// silent cut.
const silentTarget = 15

// SilentCutRound is one cut.
type SilentCutRound struct {
	Shape     string `json:"shape"`
	Round     int    `json:"round"`
	Path      int    `json:"path"`
	WorstLost int    `json:"worst_stream_lost"`
	TotalLost int    `json:"total_lost"`
	Sent      int    `json:"sent"`
	Error     string `json:"error,omitempty"`
}

// SilentCutResult is a -silentcut run.
type SilentCutResult struct {
	Started time.Time        `json:"started"`
	Load    string           `json:"loadavg"`
	Rounds  []SilentCutRound `json:"rounds"`
	// MedianWorst and MaxWorst are per shape, over the rounds.
	MedianWorst map[string]float64 `json:"median_worst_stream_lost"`
	MaxWorst    map[string]int     `json:"max_worst_stream_lost"`
	Pass        bool               `json:"pass"`
}

// silentCut runs the -silentcut mode: n rounds of each shape.
func silentCut(ctx context.Context, e *env, n int, out, progress io.Writer) (*SilentCutResult, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("-silentcut needs root (network namespaces, veth, bridges)")
	}
	tmp, err := os.MkdirTemp("", "ouro-bench-silent")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	o := &ovTopo{e: e, ns: map[string]string{}, dir: map[string]string{}}
	defer o.close()
	if err := o.buildPaths(ctx, tmp, "sc"); err != nil {
		return nil, err
	}
	if err := registerAll(o.dir["b"], "net"); err != nil {
		return nil, err
	}
	srv, err := startChild("flow", o.dir["b"])
	if err != nil {
		return nil, err
	}
	defer srv.Stop()
	res := &SilentCutResult{Started: time.Now(), Load: loadAvg(), MedianWorst: map[string]float64{}, MaxWorst: map[string]int{}, Pass: true}
	fmt.Fprintf(out, "silentcut: A and B over two bridged paths, %d ping streams A->B at 1 ms, the busy path cut (load %s)\n\n", silentStreams, res.Load)
	fmt.Fprintln(out, "shape     round  path  worst stream lost  all lost / sent")
	for _, shape := range []string{"silent", "carrier"} {
		var worst []float64
		for i := 1; i <= n && ctx.Err() == nil; i++ {
			_, mark := o.adjLog(nil)
			r := o.silentOnce(ctx, shape)
			r.Round = i
			if r.WorstLost > 2*silentTarget {
				// An outlier: say what the adjacencies did (with
				// -log-level warn or finer).
				l, _ := o.adjLog(mark)
				fmt.Fprintf(progress, "silentcut: %s round %d lost %d; adjacency events:\n%s", shape, i, r.WorstLost, l)
			}
			res.Rounds = append(res.Rounds, r)
			line := fmt.Sprintf("%-8s  %5d  %4d  %17d  %8d / %d", shape, i, r.Path, r.WorstLost, r.TotalLost, r.Sent)
			if r.Error != "" {
				line += "  error: " + r.Error
				res.Pass = false
			} else {
				worst = append(worst, float64(r.WorstLost))
				res.MaxWorst[shape] = max(res.MaxWorst[shape], r.WorstLost)
			}
			fmt.Fprintln(out, line)
		}
		res.MedianWorst[shape] = median(worst)
	}
	if res.MaxWorst["silent"] > silentTarget {
		res.Pass = false
	}
	verdict := "PASS"
	if !res.Pass {
		verdict = "FAIL"
	}
	fmt.Fprintf(out, "\nworst stream lost, silent cut: median %.0f, max %d (target at most %d); carrier loss: median %.0f, max %d: %s\n",
		res.MedianWorst["silent"], res.MaxWorst["silent"], silentTarget, res.MedianWorst["carrier"], res.MaxWorst["carrier"], verdict)
	return res, nil
}

// silentOnce runs the streams across one cut of the busy path.
func (o *ovTopo) silentOnce(ctx context.Context, shape string) SilentCutRound {
	r := SilentCutRound{Shape: shape}
	var errs []string
	defer func() { r.Error = strings.Join(errs, "; ") }()
	conns := make([]net.Conn, 0, silentStreams)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	opts := []flow.Option{flow.WithRunDir(o.dir["a"]), flow.WithLayer("net")}
	for range silentStreams {
		c, err := allocRetryQ(ctx, pingName, qos.Raw(), opts)
		if err != nil {
			errs = append(errs, err.Error())
			return r
		}
		conns = append(conns, c)
	}
	const before, after = 400 * time.Millisecond, 800 * time.Millisecond
	stats := make([]*ping.Stats, len(conns))
	serrs := make([]error, len(conns))
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() { // owned: bounded by the stream's duration; the conns close on return
			defer wg.Done()
			stats[i], serrs[i] = ping.RunOn(ctx, c, ping.Config{Name: "b", Size: 64, Interval: time.Millisecond, Duration: before + after})
		}()
	}
	time.Sleep(before / 2)
	k, err := o.busyPath(before / 2)
	if err != nil {
		errs = append(errs, err.Error())
	}
	r.Path = k + 1
	repair, err := o.fail(shape, k)
	if err != nil {
		errs = append(errs, "cut: "+err.Error())
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(before + after + grace):
		for _, c := range conns {
			c.SetDeadline(time.Now())
		}
		<-done
	}
	for i, st := range stats {
		if serrs[i] != nil {
			errs = append(errs, fmt.Sprintf("stream %d: %v", i+1, serrs[i]))
		}
		if st != nil {
			r.WorstLost = max(r.WorstLost, len(st.Lost))
			r.TotalLost += len(st.Lost)
			r.Sent += st.Transmitted
		}
	}
	if repair != nil {
		if err := repair(); err != nil {
			errs = append(errs, "repair: "+err.Error())
		}
	}
	if err := o.waitBothWays(30 * time.Second); err != nil {
		errs = append(errs, err.Error())
	}
	return r
}

// waitBothWays waits until A routes to B and B to A over both paths.
func (o *ovTopo) waitBothWays(d time.Duration) error {
	deadline := time.Now().Add(d)
	for _, hd := range [][2]string{{"a", "b"}, {"b", "a"}} {
		var info ctrl.LayerInfo
		for {
			if topo.Call(o.dir[hd[0]], ctrl.OpLayerShow, ctrl.LayerShow{Layer: "net"}, &info) == nil && routeFlows(info, hd[1]) >= 2 {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("host %s's route to %s not over both paths after %v:\n%s", hd[0], hd[1], d, info.Render())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// adjLog returns the adjacency events in the logs of the IRMds (and
// their IPCPs) since byte offsets from (nil: all), and the new offsets.
func (o *ovTopo) adjLog(from []int) (string, []int) {
	var b strings.Builder
	var to []int
	for i, p := range o.procs {
		out := p.out.String()
		start := 0
		if i < len(from) {
			start = min(from[i], len(out))
		}
		for _, l := range strings.Split(out[start:], "\n") {
			if strings.Contains(l, "adjacency") {
				b.WriteString(l + "\n")
			}
		}
		to = append(to, len(out))
	}
	return b.String(), to
}

// buildPaths makes namespaces A, B and M with two bridged paths (as
// the -ovpn mode, without its IP and MPTCP set-up) and brings up the
// ouro layers: an IRMd per end, eth-dix per path, unicast "net" over
// both with damping 10 ms.
func (o *ovTopo) buildPaths(ctx context.Context, tmp, tag string) error {
	if err := o.bridgedPaths(fmt.Sprintf("%s%d", tag, os.Getpid()%100000), false); err != nil {
		return err
	}
	return o.ouroTwoPaths(ctx, tmp)
}
