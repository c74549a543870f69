// Command ocbr sends constant bit rate traffic over an ouro flow, as
// the C Ouroboros ocbr does: `ocbr -l` serves (counts) on a name, and
// `ocbr -n NAME -r RATE` sends packets of a fixed size at RATE bits/s
// (payload bits; k, M and G suffixes) for a while. The sender sleeps
// between packets and catches up after a late wake-up, so the average
// rate holds without spinning. The server reports the delivered rate
// and loss back every interval; the client prints one line per
// interval and a summary.
//
// Exit status: 0 when the server received packets and the flow stayed
// up (loss alone is reported, not fatal), 1 when the flow could not be
// allocated, failed, or nothing arrived, 2 on a usage error.
package main

import (
	"context"
	"errors"
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
	perf.Common // Rate is in bits/s of payload
}

// pps is the packet rate that carries the bit rate.
func (o *options) pps() float64 { return o.Rate / 8 / float64(o.Size) }

// parse reads the command line; its errors are usage errors, explained
// on stderr.
func parse(args []string, stderr io.Writer) (*options, *perfcli.Tool, error) {
	o := &options{Common: perf.Common{Name: "ocbr", Duration: 10 * time.Second, Interval: time.Second, Size: 1000, Rate: 1e6}}
	t := &perfcli.Tool{Prog: "ocbr", Common: &o.Common, Stderr: stderr}
	err := t.Parse(args, "bit rate in bits/s of payload, with k/M/G suffixes", nil, func() error {
		switch {
		case o.Rate <= 0:
			return errors.New("rate must be positive")
		case o.pps()*o.Duration.Seconds() < 1:
			return fmt.Errorf("%s bit/s of %d-byte packets sends nothing in %v", perf.FormatRate(o.Rate), o.Size, o.Duration)
		}
		return nil
	})
	return o, t, err
}

func runContext(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, t, err := parse(args, stderr)
	if err != nil {
		return 2
	}
	t.Stdout = stdout
	if o.Listen {
		return t.Serve(ctx, serverLine)
	}
	return client(ctx, t, o)
}

// serverLine is the server's text for one run.
func serverLine(f *flow.Flow, s perf.RunSummary) []string {
	r := s.Received
	return []string{fmt.Sprintf("flow %d: %d of %d packets in %.2f s: delivered %s", f.ID(), r.Received, r.Sent, r.ElapsedS, rateLine(r))}
}

// result is the JSON summary: the run and the rate asked for.
type result struct {
	TargetBPS float64 `json:"target_bps"`
	*perf.Result
}

// client sends at the constant rate and reports.
func client(ctx context.Context, t *perfcli.Tool, o *options) int {
	f, code := t.Alloc(ctx)
	if f == nil {
		return code
	}
	defer f.Close()
	stdout := t.Stdout
	cfg := perf.Config{Name: o.Name, QoS: o.QoS.String(), Size: o.Size, Rate: o.pps(), Duration: o.Duration,
		Interval: o.Interval}
	if !o.JSON {
		fmt.Fprintf(stdout, "ocbr: %d-byte packets to %s at %sb/s (%.6g packets/s) for %v (qos %s, layer %s)\n",
			o.Size, o.Name, perf.FormatRate(o.Rate), o.pps(), o.Duration, o.QoS, f.Layer())
		cfg.OnInterval = func(iv perf.Interval) {
			fmt.Fprintf(stdout, "[%3d] %6.2f-%6.2f s  delivered %s\n", iv.Index, iv.StartS, iv.EndS, rateLine(iv.Forward))
		}
	}
	return t.Run(ctx, f, cfg, func(res *perf.Result) any { return result{TargetBPS: o.Rate, Result: res} }, func(res *perf.Result) {
		fw := res.Forward
		fmt.Fprintf(stdout, "--- %s cbr statistics: %sb/s of %d-byte packets, %.2f s ---\n",
			o.Name, perf.FormatRate(o.Rate), o.Size, res.Duration)
		sentMbps := 0.0
		if res.Duration > 0 {
			sentMbps = 8 * float64(fw.SentBytes) / res.Duration / 1e6
		}
		fmt.Fprintf(stdout, "sent %d packets (%.3f Mb/s), delivered %d: %s, %d late\n",
			fw.Sent, sentMbps, fw.Received, rateLine(fw), fw.Late)
		fmt.Fprintf(stdout, "one-way delay avg/max = %.3f/%.3f ms\n", fw.DelayAvgMS, fw.DelayMaxMS)
	})
}

// rateLine renders a delivered rate and the loss.
func rateLine(s perf.Stats) string {
	return fmt.Sprintf("%9.3f Mb/s (%.0f pkt/s), lost %d (%.2f%%)", s.Mbps, s.PPS, s.Lost, s.LossPct)
}
