package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ouro-net/ouro/internal/topo"
)

// IdleProc is one process's CPU over the idle window.
type IdleProc struct {
	Label      string  `json:"label"`
	Type       string  `json:"type"`
	PID        int     `json:"pid"`
	CPUms      float64 `json:"cpu_ms"`
	PctOfACore float64 `json:"pct_of_a_core"`
}

// IdleResult is an idle bench run: the CPU every ouro process of the
// udp4 square spent while nothing but keepalives ran.
type IdleResult struct {
	Started    time.Time  `json:"started"`
	WindowS    float64    `json:"window_s"`
	Procs      []IdleProc `json:"procs"`
	TotalPct   float64    `json:"total_pct_of_a_core"`
	TargetPct  float64    `json:"target_pct_of_a_core"`
	Pass       bool       `json:"pass"`
	SettleS    float64    `json:"settle_s"`
	ClockTicks int        `json:"clock_ticks_per_s"`
}

// idleTarget is the bound for the idle square: all ouro
// processes together under 1% of one core.
const idleTarget = 1.0

// idleRun brings up the dual-homed udp4 square (one udp4 IPCP per link
// end, one unicast IPCP per host, IRMds in this process), lets it
// settle, and reads utime+stime of every process from /proc/PID/stat
// before and after a window of d.
func idleRun(ctx context.Context, e *env, d time.Duration, out io.Writer) (*IdleResult, error) {
	const settle = 3 * time.Second
	res := &IdleResult{Started: time.Now(), WindowS: d.Seconds(), TargetPct: idleTarget, SettleS: settle.Seconds(), ClockTicks: clockTicks}
	tp, err := e.buildSquare(ctx)
	if err != nil {
		return nil, err
	}
	defer tp.Close()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(settle):
	}
	procs, err := ouroProcs(tp)
	if err != nil {
		return nil, err
	}
	wall, err := sampleCPU(ctx, procs, d)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "idle: udp4 square A-B-D-C-A, %d processes, CPU over %.1f s after %v to settle\n\n", len(procs), wall.Seconds(), settle)
	fmt.Fprintf(out, "%-14s %-8s %7s %9s %8s\n", "process", "type", "pid", "cpu ms", "% core")
	for _, p := range procs {
		res.TotalPct += p.PctOfACore
		fmt.Fprintf(out, "%-14s %-8s %7d %9.0f %8.2f\n", p.Label, p.Type, p.PID, p.CPUms, p.PctOfACore)
	}
	res.Procs = procs
	res.Pass = res.TotalPct < idleTarget
	verdict := "PASS"
	if !res.Pass {
		verdict = "FAIL"
	}
	fmt.Fprintf(out, "\nidle CPU: %.2f%% of one core in total (target under %.0f%%): %s\n", res.TotalPct, idleTarget, verdict)
	return res, nil
}

// ouroProcs lists every ouro process of tp: this process (which hosts
// the IRMds, type "irmd") and every IPCP of every host.
func ouroProcs(tp *topo.Topo) ([]IdleProc, error) {
	procs := []IdleProc{{Label: "bench (IRMds)", Type: "irmd", PID: os.Getpid()}}
	hosts := make([]string, 0, len(tp.Hosts))
	for h := range tp.Hosts {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	for _, h := range hosts {
		l, err := tp.IPCPs(h)
		if err != nil {
			return nil, fmt.Errorf("list the IPCPs of %s: %w", h, err)
		}
		for _, i := range l {
			if i.PID > 0 {
				procs = append(procs, IdleProc{Label: i.Name, Type: i.Type, PID: i.PID})
			}
		}
	}
	return procs, nil
}

// sampleCPU reads utime+stime of every process in procs before and
// after a window of d, fills in their CPUms and PctOfACore, and returns
// the window's wall time.
func sampleCPU(ctx context.Context, procs []IdleProc, d time.Duration) (time.Duration, error) {
	before := make([]int64, len(procs))
	var err error
	for i, p := range procs {
		if before[i], err = cpuTicks(p.PID); err != nil {
			return 0, err
		}
	}
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(d):
	}
	wall := time.Since(t0)
	for i := range procs {
		after, err := cpuTicks(procs[i].PID)
		if err != nil {
			return 0, err
		}
		p := &procs[i]
		p.CPUms = float64(after-before[i]) * 1000 / float64(clockTicks)
		p.PctOfACore = p.CPUms / float64(wall.Milliseconds()) * 100
	}
	return wall, nil
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat
// (100 on every Linux architecture Go supports).
const clockTicks = 100

// cpuTicks returns utime+stime of pid in clock ticks.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read the CPU time of pid %d: %w", pid, err)
	}
	return parseStatCPU(string(b))
}

// parseStatCPU sums fields 14 and 15 (utime, stime) of a /proc/PID/stat
// line; the command name (field 2) may hold spaces and parentheses, so
// fields are counted from the last ')'.
func parseStatCPU(s string) (int64, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("bad stat line %q", s)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("short stat line %q", s)
	}
	// f[0] is field 3 (state): utime is field 14, stime 15.
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad stat line %q", s)
	}
	return u + st, nil
}
