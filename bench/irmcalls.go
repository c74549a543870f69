package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/lib/ctrl"
)

// The -irmcalls mode: an `irm daemon` process answers -calls
// (default 10,000) control requests in a row, each on a connection of
// its own as an `irm` command makes (connect, one request, close). The
// daemon's descriptors must end within 5 of where they were after a
// warm-up of 2000 calls, and its RSS within 10%. (The warm-up brings
// the daemon's heap to its garbage collector's steady state: since a
// control connection takes a receive buffer the size of its messages
// rather than 64 KiB, 100 calls no longer do, and the RSS after them
// was some 5 MiB below where it settles.)

// IRMCallsResult is the figure of the -irmcalls mode.
type IRMCallsResult struct {
	Calls      int     `json:"calls"`
	Seconds    float64 `json:"seconds"`
	FDsStart   int     `json:"fds_start"`
	FDsEnd     int     `json:"fds_end"`
	RSSStartKB int64   `json:"rss_start_kb"`
	RSSEndKB   int64   `json:"rss_end_kb"`
	Pass       bool    `json:"pass"`
	Verdict    string  `json:"verdict"`
}

func irmCalls(ctx context.Context, e *env, calls int, out io.Writer) (*IRMCallsResult, error) {
	dir, err := os.MkdirTemp("", "ouro-bench")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	cmd := exec.Command(e.irm, "daemon", "--rundir", dir, "--log-level", e.logLevel)
	cmd.Stderr = e.log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start irm daemon: %w", err)
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}()
	pid := cmd.Process.Pid
	call := func() error {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return flow.Call(cctx, dir, ctrl.OpIPCPList, nil, &ctrl.IPCPList{})
	}
	for deadline := time.Now().Add(10 * time.Second); call() != nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("irm daemon does not answer")
		}
	}
	for range 2000 {
		if err := call(); err != nil {
			return nil, err
		}
	}
	time.Sleep(500 * time.Millisecond)
	r := &IRMCallsResult{Calls: calls, FDsStart: countFDs(pid)}
	if r.RSSStartKB, err = readRSS(pid); err != nil {
		return nil, err
	}
	start := time.Now()
	for i := range calls {
		if err := call(); err != nil {
			return nil, fmt.Errorf("call %d: %w", i, err)
		}
		if (i+1)%1000 == 0 {
			kb, _ := readRSS(pid)
			fmt.Fprintf(out, "%6d calls  fds %4d  rss %6d kB\n", i+1, countFDs(pid), kb)
		}
	}
	r.Seconds = time.Since(start).Seconds()
	time.Sleep(500 * time.Millisecond) // the daemon drops the last clients
	r.FDsEnd = countFDs(pid)
	if r.RSSEndKB, err = readRSS(pid); err != nil {
		return nil, err
	}
	r.Pass = r.FDsEnd <= r.FDsStart+5 && float64(r.RSSEndKB) <= 1.1*float64(r.RSSStartKB)
	r.Verdict = "FAIL"
	if r.Pass {
		r.Verdict = "PASS"
	}
	r.Verdict = fmt.Sprintf("%s: %d calls in %.1f s; descriptors %d -> %d (limit +5), RSS %d -> %d kB (limit +10%%)",
		r.Verdict, calls, r.Seconds, r.FDsStart, r.FDsEnd, r.RSSStartKB, r.RSSEndKB)
	fmt.Fprintf(out, "\n%s\n", r.Verdict)
	return r, nil
}
