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
// on private run directories) joined over udp4 on 127.0.0.1-4 into the
// square A-B-D-C-A of a unicast layer, an oping server on D and a ping
// stream from A. It needs no root and removes everything it made.
func cmdDemo(args []string, out, stderr io.Writer) error {
	fs := flag.NewFlagSet("irm demo", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	count := fs.Int("c", 1000, "pings to send from A to D")
	interval := fs.Duration("i", time.Millisecond, "interval between pings")
	level := fs.String("log-level", "warn", "log level of the daemons")
	if err := fs.Parse(args); err != nil {
		return usagef("demo: %v", err)
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
	step("building the square A-B-D-C-A: four IRMds, a udp4 layer on 127.0.0.1-4, a unicast layer \"net\" on top")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tp, err := topo.Build(ctx, topo.Config{
		Hosts: []string{"a", "b", "c", "d"},
		Links: [][2]string{{"b", "a"}, {"c", "a"}, {"d", "b"}, {"d", "c"}},
		Exe:   exe, Types: typeNames(), Log: logging.New("irmd", lvl, stderr), LogLevel: *level,
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
	step("oping server on D; from A: oping -n oping -c %d -i %s", *count, *interval)
	st, err := ping.Run(ctx, ping.Config{
		Name: "oping", QoS: qos.Raw(), Count: *count, Interval: *interval, Size: 64,
		Out: limitLines(out, 5), Opts: []flow.Option{tp.Hosts["a"].Opt()},
	})
	if err != nil {
		return fmt.Errorf("demo ping: %w", err)
	}
	fmt.Fprint(out, st.Summary())
	return nil
}

func waitName(tp *topo.Topo, host, name string) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if show, _ := tp.Show(host); strings.Contains(show, name) {
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

// limitLines passes the first n lines through and then one ellipsis.
func limitLines(w io.Writer, n int) io.Writer { return &lineLimiter{w: w, left: n} }

type lineLimiter struct {
	w    io.Writer
	left int
}

func (l *lineLimiter) Write(p []byte) (int, error) {
	if l.left > 0 {
		l.left--
		return l.w.Write(p)
	}
	if l.left == 0 {
		l.left--
		fmt.Fprintln(l.w, "...")
	}
	return len(p), nil
}
