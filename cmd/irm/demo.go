package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/flow/ping"
	"github.com/ouro-net/ouro/internal/topo"
	"github.com/ouro-net/ouro/lib/logging"
	"github.com/ouro-net/ouro/lib/qos"
)

// cmdDemo runs the built-in demonstration: four hosts (in-process IRMds
// on private run directories) form the square A-B-D-C-A of a unicast
// layer over udp4 on 127.0.0.1-4, with a lower layer per link so that A
// is dual-homed. A pings D every millisecond; the demo cuts the link the
// stream is on, reports the interruption, restores the link and shows
// the stream carrying on. It needs no root and removes all it made.
func cmdDemo(args []string, out, stderr io.Writer) error {
	fs := flag.NewFlagSet("irm demo", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	interval := fs.Duration("i", time.Millisecond, "interval between pings")
	phase := fs.Duration("phase", 1500*time.Millisecond, "time before the cut, between cut and restore, and after")
	maxGap := fs.Duration("max-gap", 0, "longest interruption at the cut the verdict accepts (default: half the phase)")
	graceful := fs.Bool("graceful", false, "cut by stopping the lower IPCP (it deallocates its flows) instead of killing it")
	level := fs.String("log-level", "error", "log level of the daemons")
	if err := fs.Parse(args); err != nil {
		return usagef("demo: %v", err)
	}
	if *interval <= 0 || *phase < 10**interval {
		return usagef("demo: the phase must be at least ten intervals")
	}
	if *maxGap == 0 {
		*maxGap = *phase / 2
	}
	lvl, err := logging.ParseLevel(*level)
	if err != nil {
		return usagef("demo: %v", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	step := func(format string, a ...any) { fmt.Fprintf(out, "==> "+format+"\n", a...) }
	step("building the square A-B-D-C-A: four IRMds, one udp4 layer per link on 127.0.0.1-4, unicast layer \"net\" on top")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tp, err := topo.Build(ctx, topo.Config{
		Hosts:   []string{"a", "b", "c", "d"},
		Links:   [][2]string{{"b", "a"}, {"c", "a"}, {"d", "b"}, {"d", "c"}},
		PerLink: true, Exe: exe, Types: typeNames(), Log: logging.New("irmd", lvl, stderr), LogLevel: *level,
		Progress: out,
	})
	if err != nil {
		return err
	}
	defer func() {
		tp.Close()
		step("stopped the four IRMds and their IPCPs; removed their run directories")
	}()
	show, err := tp.WaitRoute("a", "d", 2, 20*time.Second)
	if err != nil {
		return err
	}
	step("irm layer show net, at A: D is two hops away over both B and C (ECMP)")
	fmt.Fprint(out, indent(show))

	if err := tp.Register("d", "oping"); err != nil {
		return err
	}
	l, err := flow.Listen("oping", tp.Hosts["d"].Opt())
	if err != nil {
		return err
	}
	sctx, scancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- ping.Serve(sctx, l, nil) }()
	defer func() {
		scancel()
		l.Close()
		<-served
	}()
	if err := waitName(tp, "a", "oping"); err != nil {
		return err
	}
	count := int(3 * *phase / *interval)
	step("oping server on D; from A: oping -n oping -i %s -c %d (one flow, hashed onto one of A's links)", *interval, count)
	type result struct {
		st  *ping.Stats
		err error
	}
	done := make(chan result, 1)
	_, before, err := tp.ActivePeer("a", []string{"b", "c"}, nil)
	if err != nil {
		return err
	}
	start := time.Now()
	replies := &replyLog{start: start}
	go func() {
		st, err := ping.Run(ctx, ping.Config{Name: "oping", QoS: qos.Raw(), Count: count, Interval: *interval,
			Size: 64, Out: replies, Opts: []flow.Option{tp.Hosts["a"].Opt()}})
		done <- result{st, err}
	}()
	time.Sleep(*phase)
	peer, _, err := tp.ActivePeer("a", []string{"b", "c"}, before)
	if err != nil {
		return err
	}
	how := "killing"
	if *graceful {
		how = "stopping"
	}
	cutAt := time.Since(start)
	pid, err := tp.Cut("a", peer, *graceful)
	if err != nil {
		return err
	}
	step("t=%v: cutting A's link to %s, the one the stream is on (%s its lower IPCP, pid %d)",
		cutAt.Round(time.Millisecond), strings.ToUpper(peer), how, pid)
	time.Sleep(*phase)
	restoreAt := time.Since(start)
	step("t=%v: restoring A's link to %s", restoreAt.Round(time.Millisecond), strings.ToUpper(peer))
	if err := tp.Restore("a", peer); err != nil {
		return err
	}
	r := <-done
	if r.err != nil {
		return fmt.Errorf("the flow did not survive: the application saw an error: %w", r.err)
	}
	fmt.Fprint(out, r.st.Summary())
	m := measure(replies.get(), r.st.Lost, cutAt, restoreAt)
	step("measured: %s", m)
	if why := m.verdict(*maxGap); why != "" {
		return fmt.Errorf("the flow did not survive the cut: %s", why)
	}
	step("verdict: the flow survived the cut: %d packets lost around the cut, interruption %.1f ms (at most %v allowed); the application saw no error",
		m.LostDown, ms(m.Interruption), *maxGap)
	show, err = tp.WaitRoute("a", "d", 2, 10*time.Second)
	if err != nil {
		return err
	}
	step("irm layer show net, at A, after the restore: both next hops again")
	fmt.Fprint(out, indent(show))
	return nil
}

func waitName(tp *topo.Topo, host, name string) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if tp.KnowsName(host, name) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s never learnt the name %s", host, name)
}

func indent(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString("    " + line + "\n")
	}
	return b.String()
}
