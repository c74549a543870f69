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
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/tools/internal/perfcli"
	"github.com/ouro-net/ouro/tools/operf/perf"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run runs one command line until done or interrupted.
func run(args []string, stdout, stderr io.Writer) int {
	return perfcli.Interruptible(func(ctx context.Context) int { return runContext(ctx, args, stdout, stderr) })
}

// options is a parsed command line.
type options struct {
	perf.Common
	both bool
}

// parse reads the command line; its errors are usage errors, explained
// on stderr.
func parse(args []string, stderr io.Writer) (*options, *perfcli.Tool, error) {
	o := &options{Common: perf.Common{Name: "operf", Duration: 10 * time.Second, Interval: time.Second, Size: 1000}}
	t := &perfcli.Tool{Prog: "operf", Common: &o.Common, Stderr: stderr}
	err := t.Parse(args, "rate in packets/s, with k/M/G suffixes (0: as fast as the flow takes them)", func(fs *flag.FlagSet) {
		fs.BoolVar(&o.both, "both", false, "both ways: the server sends to the client too")
	}, nil)
	return o, t, err
}

func runContext(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, t, err := parse(args, stderr)
	if err != nil {
		return 2
	}
	t.Stdout = stdout
	if o.Listen {
		return t.Serve(ctx, serverLines)
	}
	return client(ctx, t, o)
}

// serverLines is the server's text for one run.
func serverLines(f *flow.Flow, s perf.RunSummary) []string {
	r := s.Received
	out := []string{fmt.Sprintf("flow %d: %d of %d packets in %.2f s: %s", f.ID(), r.Received, r.Sent, r.ElapsedS, r.Line())}
	if s.Sent > 0 {
		out = append(out, fmt.Sprintf("flow %d: sent %d packets back", f.ID(), s.Sent))
	}
	return out
}

// client runs one measurement and reports it.
func client(ctx context.Context, t *perfcli.Tool, o *options) int {
	f, code := t.Alloc(ctx)
	if f == nil {
		return code
	}
	defer f.Close()
	stdout := t.Stdout
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
	return t.Run(ctx, f, cfg, func(res *perf.Result) any { return res }, func(res *perf.Result) {
		fmt.Fprint(stdout, res.Summary())
	})
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
