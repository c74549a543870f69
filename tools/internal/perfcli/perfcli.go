// Package perfcli is the command-line scaffolding the operf and ocbr
// tools share around package perf: the interrupt context, parsing the
// shared flags (perf.Common) and a tool's own, serving on a name, the
// client's allocation, and the final report and exit status. What the
// tools print for themselves (a run's header, interval and summary
// lines, the server's line per run) stays in each tool.
//
// Exit status, for both tools: 0 when the server received packets and
// the flow stayed up (loss alone is reported, not fatal), 1 when the
// flow could not be allocated, failed, or nothing arrived, 2 on a usage
// error.
package perfcli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"syscall"
	"time"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/tools/operf/perf"
)

// allocWait bounds the client's flow allocation.
const allocWait = 10 * time.Second

// ErrUsage is a usage error, already explained on stderr.
var ErrUsage = errors.New("usage error")

// Interruptible runs run with a context that ends on SIGINT or SIGTERM.
func Interruptible(run func(ctx context.Context) int) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return run(ctx)
}

// Tool is one run of a perf tool's command line.
type Tool struct {
	// Prog is the tool's name; it prefixes its messages ("operf").
	Prog string
	// Common are the shared flags, with the tool's defaults set.
	*perf.Common
	// Stdout and Stderr take the output.
	Stdout, Stderr io.Writer
}

// Parse reads args into the shared flags (rateHelp says what -r means
// for the tool) and the tool's own (own, may be nil, defines them on
// the flag set), then checks the shared ones and the tool's (check, may
// be nil). A bad command line is explained on Stderr and returned as
// ErrUsage.
func (t *Tool) Parse(args []string, rateHelp string, own func(*flag.FlagSet), check func() error) error {
	fs := flag.NewFlagSet(t.Prog, flag.ContinueOnError)
	fs.SetOutput(t.Stderr)
	t.Register(fs, rateHelp)
	if own != nil {
		own(fs)
	}
	if err := fs.Parse(args); err != nil {
		return ErrUsage
	}
	err := t.Check(fs)
	if err == nil && check != nil {
		err = check()
	}
	if err != nil {
		fmt.Fprintf(t.Stderr, "%s: %v\n", t.Prog, err)
		return ErrUsage
	}
	return nil
}

// ServerRecord is the JSON line a server prints for each run that ends.
type ServerRecord struct {
	Flow     uint64     `json:"flow"`
	Size     int        `json:"size"`
	Complete bool       `json:"complete"`
	Received perf.Stats `json:"received"`
	// Sent counts what the server sent back (both ways).
	Sent uint64 `json:"sent,omitempty"`
}

// Serve counts what clients send to the name until ctx ends. For every
// run that ends it prints line's lines (prefixed by the tool's name) or,
// with --json, a ServerRecord.
func (t *Tool) Serve(ctx context.Context, line func(f *flow.Flow, s perf.RunSummary) []string) int {
	opts, err := t.FlowOpts()
	if err != nil {
		return t.errorf(err)
	}
	l, err := flow.Listen(t.Name, opts...)
	if err != nil {
		return t.errorf(err)
	}
	defer l.Close()
	var logf func(format string, a ...any)
	onRun := func(f *flow.Flow, s perf.RunSummary) {
		if t.JSON {
			json.NewEncoder(t.Stdout).Encode(ServerRecord{f.ID(), s.Hello.Size, s.Complete, s.Received, s.Sent})
			return
		}
		for _, l := range line(f, s) {
			logf("%s", l)
		}
	}
	if !t.JSON {
		logf = func(format string, a ...any) { fmt.Fprintf(t.Stdout, t.Prog+": "+format+"\n", a...) }
		logf("serving %s", t.Name)
	}
	if err := perf.ServeFlows(ctx, l, logf, onRun); err != nil {
		return t.errorf(err)
	}
	return 0
}

// errorf reports err on Stderr; it returns exit status 1.
func (t *Tool) errorf(err error) int {
	fmt.Fprintf(t.Stderr, "%s: %v\n", t.Prog, err)
	return 1
}

// Fail reports a client's failure: on Stderr and, with --json, as a
// JSON object naming the name and the error. It returns exit status 1.
func (t *Tool) Fail(err error) int {
	t.errorf(err)
	if t.JSON {
		json.NewEncoder(t.Stdout).Encode(map[string]string{"name": t.Name, "error": err.Error()})
	}
	return 1
}

// Alloc allocates the client's flow to the name and checks the packet
// size against its MTU. On failure it has reported (Fail) and returns a
// nil flow and the exit status.
func (t *Tool) Alloc(ctx context.Context) (*flow.Flow, int) {
	opts, err := t.FlowOpts()
	if err != nil {
		return nil, t.Fail(err)
	}
	actx, cancel := context.WithTimeout(ctx, allocWait)
	f, err := flow.Alloc(actx, t.Name, t.QoS, opts...)
	cancel()
	if err != nil {
		return nil, t.Fail(err)
	}
	if mtu := f.MTU(); mtu > 0 && t.Size > mtu {
		f.Close()
		return nil, t.Fail(fmt.Errorf("size %d exceeds the flow's MTU of %d bytes", t.Size, mtu))
	}
	return f, 0
}

// Run runs the measurement over f and reports it: with --json the value
// of record, indented; else summary prints the text. The exit status
// is 1 when the run failed or the server received nothing.
func (t *Tool) Run(ctx context.Context, f *flow.Flow, cfg perf.Config, record func(*perf.Result) any, summary func(*perf.Result)) int {
	res, err := perf.Run(ctx, f, cfg)
	if res == nil {
		return t.Fail(err)
	}
	if t.JSON {
		enc := json.NewEncoder(t.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(record(res))
	} else {
		summary(res)
	}
	if err != nil {
		return t.errorf(err)
	}
	if res.Forward.Received == 0 {
		fmt.Fprintf(t.Stderr, "%s: the server received nothing\n", t.Prog)
		return 1
	}
	return 0
}
