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
	perf.Common // Rate is in bits/s of payload
}

// pps is the packet rate that carries the bit rate.
func (o *options) pps() float64 { return o.Rate / 8 / float64(o.Size) }

// errUsage is a usage error, already explained on stderr.
var errUsage = errors.New("usage error")

// parse reads the command line; its errors are usage errors.
func parse(args []string, stderr io.Writer) (*options, error) {
	o, err := parseFlags(args, stderr)
	if err != nil && err != errUsage {
		fmt.Fprintf(stderr, "ocbr: %v\n", err)
		err = errUsage
	}
	return o, err
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{Common: perf.Common{Name: "ocbr", Duration: 10 * time.Second, Interval: time.Second, Size: 1000, Rate: 1e6}}
	fs := flag.NewFlagSet("ocbr", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o.Register(fs, "bit rate in bits/s of payload, with k/M/G suffixes")
	if err := fs.Parse(args); err != nil {
		return nil, errUsage
	}
	if err := o.Check(fs); err != nil {
		return nil, err
	}
	switch {
	case o.Rate <= 0:
		return nil, errors.New("rate must be positive")
	case o.pps()*o.Duration.Seconds() < 1:
		return nil, fmt.Errorf("%s bit/s of %d-byte packets sends nothing in %v", perf.FormatRate(o.Rate), o.Size, o.Duration)
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
		fmt.Fprintf(stderr, "ocbr: %v\n", err)
		return 1
	}
	defer l.Close()
	logf := func(format string, a ...any) { fmt.Fprintf(stdout, "ocbr: "+format+"\n", a...) }
	onRun := func(f *flow.Flow, s perf.RunSummary) {
		r := s.Received
		if o.JSON {
			json.NewEncoder(stdout).Encode(struct {
				Flow     uint64     `json:"flow"`
				Size     int        `json:"size"`
				Complete bool       `json:"complete"`
				Received perf.Stats `json:"received"`
			}{f.ID(), s.Hello.Size, s.Complete, r})
			return
		}
		logf("flow %d: %d of %d packets in %.2f s: delivered %s", f.ID(), r.Received, r.Sent, r.ElapsedS, rateLine(r))
	}
	if o.JSON {
		logf = nil
	} else {
		logf("serving %s", o.Name)
	}
	if err := perf.ServeFlows(ctx, l, logf, onRun); err != nil {
		fmt.Fprintf(stderr, "ocbr: %v\n", err)
		return 1
	}
	return 0
}

// result is the JSON summary: the run and the rate asked for.
type result struct {
	TargetBPS float64 `json:"target_bps"`
	*perf.Result
}

// client sends at the constant rate and reports.
func client(ctx context.Context, o *options, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "ocbr: %v\n", err)
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
	cfg := perf.Config{Name: o.Name, QoS: o.QoS.String(), Size: o.Size, Rate: o.pps(), Duration: o.Duration,
		Interval: o.Interval}
	if !o.JSON {
		fmt.Fprintf(stdout, "ocbr: %d-byte packets to %s at %sb/s (%.6g packets/s) for %v (qos %s, layer %s)\n",
			o.Size, o.Name, perf.FormatRate(o.Rate), o.pps(), o.Duration, o.QoS, f.Layer())
		cfg.OnInterval = func(iv perf.Interval) {
			fmt.Fprintf(stdout, "[%3d] %6.2f-%6.2f s  delivered %s\n", iv.Index, iv.StartS, iv.EndS, rateLine(iv.Forward))
		}
	}
	res, err := perf.Run(ctx, f, cfg)
	if res == nil {
		return fail(err)
	}
	if o.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(result{TargetBPS: o.Rate, Result: res})
	} else {
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
	}
	if err != nil {
		fmt.Fprintf(stderr, "ocbr: %v\n", err)
		return 1
	}
	if res.Forward.Received == 0 {
		fmt.Fprintln(stderr, "ocbr: the server received nothing")
		return 1
	}
	return 0
}

// rateLine renders a delivered rate and the loss.
func rateLine(s perf.Stats) string {
	return fmt.Sprintf("%9.3f Mb/s (%.0f pkt/s), lost %d (%.2f%%)", s.Mbps, s.PPS, s.Lost, s.LossPct)
}
