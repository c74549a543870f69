package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/flow/ping"
	"github.com/ouro-net/ouro/irmd"
	"github.com/ouro-net/ouro/lib/logging"
	"github.com/ouro-net/ouro/lib/qos"
)

// cmdDemo runs the built-in demonstration on a private IRMd in a
// temporary run directory, needing no root, and removes everything it
// made before it returns.
func cmdDemo(args []string, out, stderr io.Writer) error {
	fs := flag.NewFlagSet("irm demo", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	count := fs.Int("c", 100, "pings to send")
	interval := fs.Duration("i", time.Millisecond, "interval between pings")
	level := fs.String("log-level", "warn", "daemon log level")
	if err := fs.Parse(args); err != nil {
		return usagef("demo: %v", err)
	}
	lvl, err := logging.ParseLevel(*level)
	if err != nil {
		return usagef("demo: %v", err)
	}
	dir, err := os.MkdirTemp("", "ouro-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	step := func(format string, a ...any) { fmt.Fprintf(out, "==> "+format+"\n", a...) }
	step("starting a private IRMd in %s", dir)
	d, err := irmd.Start(irmd.Config{RunDir: dir, Log: logging.New("irmd", lvl, stderr), Types: typeNames(), ChildLogLevel: *level})
	if err != nil {
		return err
	}
	defer func() {
		d.Close()
		step("stopped the IRMd and its IPCPs; removed %s", dir)
	}()
	irm := func(words ...string) error {
		fmt.Fprintf(out, "    $ irm %s\n", join(words))
		return dispatch(append([]string{"--rundir", dir}, words...), io.Discard, stderr)
	}
	if err := irm("ipcp", "bootstrap", "type", "local", "name", "lo", "layer", "lo"); err != nil {
		return err
	}
	if err := irm("name", "register", "oping", "layer", "lo"); err != nil {
		return err
	}
	if err := dispatch([]string{"--rundir", dir, "ipcp", "list"}, out, stderr); err != nil {
		return err
	}

	step("oping server listening on name oping")
	l, err := flow.Listen("oping", flow.WithRunDir(dir))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- ping.Serve(ctx, l, nil) }()
	defer func() {
		cancel()
		l.Close()
		<-served
	}()

	step("oping -n oping -c %d -i %s", *count, *interval)
	st, err := ping.Run(context.Background(), ping.Config{
		Name: "oping", QoS: qos.Raw(), Count: *count, Interval: *interval, Size: 64,
		Out: limitLines(out, 5), Opts: []flow.Option{flow.WithRunDir(dir)},
	})
	if err != nil {
		return fmt.Errorf("demo ping: %w", err)
	}
	fmt.Fprint(out, st.Summary())
	return nil
}

func join(w []string) string {
	s := ""
	for i, x := range w {
		if i > 0 {
			s += " "
		}
		s += x
	}
	return s
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
