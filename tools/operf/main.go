// Command operf measures throughput over an ouro flow, as the C
// Ouroboros operf does: `operf -l` serves (counts) on a name, and
// `operf -n NAME` sends numbered, timestamped packets to it for a
// while, as fast as the flow takes them or at a rate, and prints what
// the server received once per second and at the end. With --both the
// server sends to the client at the same time.
//
// Exit status: 0 when the server received packets and the flow stayed
// up (loss alone is reported, not fatal), 1 when the flow could not be
// allocated, failed, or nothing arrived, 2 on a usage error.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/tools/operf/perf"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run runs one command line until done or interrupted.
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return runContext(ctx, args, stdout, stderr)
}

// options is a parsed command line.
type options struct {
	perf.Common
	both bool
}

// errUsage is a usage error, already explained on stderr.
var errUsage = errors.New("usage error")

// parse reads the command line; its errors are usage errors.
func parse(args []string, stderr io.Writer) (*options, error) {
	o, err := parseFlags(args, stderr)
	if err != nil && err != errUsage {
		fmt.Fprintf(stderr, "operf: %v\n", err)
		err = errUsage
	}
	return o, err
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{Common: perf.Common{Name: "operf", Duration: 10 * time.Second, Interval: time.Second, Size: 1000}}
	fs := flag.NewFlagSet("operf", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o.Register(fs, "rate in packets/s, with k/M/G suffixes (0: as fast as the flow takes them)")
	fs.BoolVar(&o.both, "both", false, "both ways: the server sends to the client too")
	if err := fs.Parse(args); err != nil {
		return nil, errUsage
	}
	if err := o.Check(fs); err != nil {
		return nil, err
	}
	return o, nil
}

func runContext(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parse(args, stderr)
	if err != nil {
		return 2
	}
	if o.Listen {
		return serve(ctx, o, stdout, stderr)
	}
	return client(ctx, o, stdout, stderr)
}

// serve counts what clients send until interrupted.
func serve(ctx context.Context, o *options, stdout, stderr io.Writer) int {
	opts, err := o.FlowOpts()
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", o.Name, err)
		return 1
	}
	l, err := flow.Listen(o.Name, opts...)
	if err != nil {
		fmt.Fprintf(stderr, "operf: %v\n", err)
		return 1
	}
	defer l.Close()
	logf := func(format string, a ...any) { fmt.Fprintf(stdout, "operf: "+format+"\n", a...) }
	onRun := func(f *flow.Flow, s perf.RunSummary) {
		if o.JSON {
			json.NewEncoder(stdout).Encode(struct {
				Flow     uint64     `json:"flow"`
				Size     int        `json:"size"`
				Complete bool       `json:"complete"`
				Received perf.Stats `json:"received"`
				Sent     uint64     `json:"sent,omitempty"`
			}{f.ID(), s.Hello.Size, s.Complete, s.Received, s.Sent})
			return
		}
		r := s.Received
		logf("flow %d: %d of %d packets in %.2f s: %s", f.ID(), r.Received, r.Sent, r.ElapsedS, r.Line())
		if s.Sent > 0 {
			logf("flow %d: sent %d packets back", f.ID(), s.Sent)
		}
	}
	if o.JSON {
		logf = nil
	} else {
		logf("serving %s", o.Name)
	}
	if err := perf.ServeFlows(ctx, l, logf, onRun); err != nil {
		fmt.Fprintf(stderr, "operf: %v\n", err)
		return 1
	}
	return 0
}

// client runs one measurement and reports it.
func client(ctx context.Context, o *options, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "operf: %v\n", err)
		if o.JSON {
			json.NewEncoder(stdout).Encode(map[string]string{"name": o.Name, "error": err.Error()})
		}
		return 1
	}
	opts, err := o.FlowOpts()
	if err != nil {
		return fail(err)
	}
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	f, err := flow.Alloc(actx, o.Name, o.QoS, opts...)
	cancel()
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	if mtu := f.MTU(); mtu > 0 && o.Size > mtu {
		return fail(fmt.Errorf("size %d exceeds the flow's MTU of %d bytes", o.Size, mtu))
	}
	cfg := perf.Config{Name: o.Name, QoS: o.QoS.String(), Size: o.Size, Rate: o.Rate, Duration: o.Duration,
		Interval: o.Interval, Both: o.both}
	if !o.JSON {
		how := "as fast as the flow takes them"
		if o.Rate > 0 {
			how = fmt.Sprintf("at %s packets/s", perf.FormatRate(o.Rate))
		}
		dir := ""
		if o.both {
			dir = ", both ways"
		}
		fmt.Fprintf(stdout, "operf: %d-byte packets to %s for %v %s (qos %s, layer %s%s)\n",
			o.Size, o.Name, o.Duration, how, o.QoS, f.Layer(), dir)
		cfg.OnInterval = func(iv perf.Interval) { fmt.Fprintln(stdout, intervalLine(iv)) }
	}
	res, err := perf.Run(ctx, f, cfg)
	if res == nil {
		return fail(err)
	}
	if o.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(res)
	} else {
		fmt.Fprint(stdout, res.Summary())
	}
	if err != nil {
		fmt.Fprintf(stderr, "operf: %v\n", err)
		return 1
	}
	if res.Forward.Received == 0 {
		fmt.Fprintln(stderr, "operf: the server received nothing")
		return 1
	}
	return 0
}

// intervalLine renders one interval: what the server received and,
// both ways, what came back.
func intervalLine(iv perf.Interval) string {
	s := fmt.Sprintf("[%3d] %6.2f-%6.2f s %s", iv.Index, iv.StartS, iv.EndS, iv.Forward.Line())
	if iv.Reverse != nil {
		s += "  | back: " + iv.Reverse.Line()
	}
	return s
}
