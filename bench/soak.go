package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ouro-net/ouro/internal/topo"
	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/tools/operf/perf"
)

// soakLimit is how far a process's resident memory may end from its
// baseline figure: 10%.
const soakLimit = 0.10

// soakPaths lists the paths a soak can run on: those with daemons.
func soakPaths() []string { return []string{pathLocal, pathUDP, pathUnicast1, pathUnicast2} }

// soakConfig is what a soak does.
type soakConfig struct {
	path     string
	size     int
	duration time.Duration
	// base is when the reference RSS is taken (5 s).
	base time.Duration
}

// Process roles.
const (
	roleIPCP   = "ipcp"
	roleBench  = "bench"
	roleServer = "server"
)

// SoakSample is one second of a soak. RSS is in kB, by process label.
type SoakSample struct {
	ElapsedS float64 `json:"elapsed_s"`
	// PPS is the packets/s of the latest interval the sink reported
	// (0 before the first report).
	PPS         float64          `json:"pps"`
	IPCPTotalKB int64            `json:"ipcp_total_rss_kb"`
	IPCPMaxKB   int64            `json:"ipcp_max_rss_kb"`
	IPCPMax     string           `json:"ipcp_max"`
	BenchKB     int64            `json:"bench_rss_kb"`
	ServerKB    int64            `json:"server_rss_kb"`
	RSS         map[string]int64 `json:"rss_kb"`
}

// SoakProc is one process's verdict.
type SoakProc struct {
	Label  string  `json:"process"`
	Role   string  `json:"role"`
	Host   string  `json:"host,omitempty"`
	PID    int     `json:"pid"`
	BaseKB int64   `json:"rss_at_base_kb"`
	EndKB  int64   `json:"rss_at_end_kb"`
	PeakKB int64   `json:"peak_rss_kb"`
	Ratio  float64 `json:"ratio"`
	OK     bool    `json:"ok"`
	Note   string  `json:"note,omitempty"`
}

// SoakResult is a soak run.
type SoakResult struct {
	Started   time.Time  `json:"started"`
	GoVersion string     `json:"go_version"`
	CPUs      int        `json:"cpus"`
	Path      string     `json:"path"`
	About     string     `json:"path_description"`
	Size      int        `json:"size"`
	DurationS float64    `json:"duration_s"`
	BaseS     float64    `json:"baseline_s"`
	LimitPct  float64    `json:"limit_pct"`
	Flood     perf.Stats `json:"flood"`
	// AdjDowns counts the unicast adjacencies that went down during
	// the flood (-1 when the path has no unicast layer).
	AdjDowns   int          `json:"adjacency_downs"`
	FloodError string       `json:"flood_error,omitempty"`
	Samples    []SoakSample `json:"samples"`
	Procs      []SoakProc   `json:"processes"`
	Pass       bool         `json:"pass"`
	Verdict    string       `json:"verdict"`
}

// soakProc is a process being sampled.
type soakProc struct {
	label, role, host string
	pid               int
}

// sampler reads the resident memory of every process of a path.
type sampler struct {
	t      *target
	procs  map[string]soakProc // by label
	order  []string            // labels in first-seen order
	byHost map[string][]soakProc
}

func newSampler(t *target) *sampler {
	s := &sampler{t: t, procs: map[string]soakProc{}, byHost: map[string][]soakProc{}}
	s.add(soakProc{label: "bench", role: roleBench, pid: os.Getpid()})
	if t.ServerPID > 0 {
		s.add(soakProc{label: "server", role: roleServer, pid: t.ServerPID})
	}
	return s
}

// add records p under a unique label: an IPCP that came back under
// another pid is a new process.
func (s *sampler) add(p soakProc) soakProc {
	if old, ok := s.procs[p.label]; ok {
		if old.pid == p.pid {
			return old
		}
		p.label = fmt.Sprintf("%s@%d", p.label, p.pid)
		if old, ok := s.procs[p.label]; ok {
			return old
		}
	}
	s.procs[p.label] = p
	s.order = append(s.order, p.label)
	return p
}

// refresh lists the IPCPs of every host; a host that does not answer
// keeps its previous list.
func (s *sampler) refresh() {
	hosts := make([]string, 0, len(s.t.Dirs))
	for h := range s.t.Dirs {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	for _, h := range hosts {
		var l ctrl.IPCPList
		if err := topo.Call(s.t.Dirs[h], ctrl.OpIPCPList, nil, &l); err != nil {
			continue
		}
		var ps []soakProc
		for _, i := range l.IPCPs {
			if i.PID > 0 {
				ps = append(ps, s.add(soakProc{label: i.Name, role: roleIPCP, host: h, pid: i.PID}))
			}
		}
		s.byHost[h] = ps
	}
}

// sample reads every current process's RSS; a process whose status
// cannot be read (it is gone) is left out.
func (s *sampler) sample(elapsed time.Duration, pps float64) SoakSample {
	s.refresh()
	smp := SoakSample{ElapsedS: elapsed.Seconds(), PPS: pps, RSS: map[string]int64{}}
	cur := []soakProc{s.procs["bench"]}
	if p, ok := s.procs["server"]; ok {
		cur = append(cur, p)
	}
	for _, h := range sortedKeys(s.byHost) {
		cur = append(cur, s.byHost[h]...)
	}
	for _, p := range cur {
		kb, err := readRSS(p.pid)
		if err != nil {
			continue
		}
		smp.RSS[p.label] = kb
		switch p.role {
		case roleBench:
			smp.BenchKB = kb
		case roleServer:
			smp.ServerKB = kb
		case roleIPCP:
			smp.IPCPTotalKB += kb
			if kb > smp.IPCPMaxKB {
				smp.IPCPMaxKB, smp.IPCPMax = kb, p.label
			}
		}
	}
	return smp
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// readRSS returns the resident memory of pid in kB.
func readRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return parseVmRSS(f)
}

// parseVmRSS finds the VmRSS line of a /proc/PID/status text ("VmRSS:
// 12345 kB") and returns its value in kB.
func parseVmRSS(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("bad VmRSS line %q", sc.Text())
		}
		return strconv.ParseInt(f[0], 10, 64)
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no VmRSS line (a kernel thread or a zombie?)")
}

// judge compares each process's RSS in the last sample with its RSS in
// the first sample at or after base: a process passes when the two are
// within limit of each other (as a share of the base figure). A process
// absent from either sample fails.
func judge(samples []SoakSample, procs []soakProc, base time.Duration, limit float64) ([]SoakProc, bool, string) {
	if len(samples) == 0 {
		return nil, false, "FAIL: no samples"
	}
	bi := -1
	for i, s := range samples {
		if s.ElapsedS >= base.Seconds()-0.25 {
			bi = i
			break
		}
	}
	if bi < 0 || bi == len(samples)-1 {
		return nil, false, fmt.Sprintf("FAIL: the run ended before %v", base)
	}
	first, last := samples[bi], samples[len(samples)-1]
	var out []SoakProc
	var bad []string
	pass := true
	for _, p := range procs {
		r := SoakProc{Label: p.label, Role: p.role, Host: p.host, PID: p.pid,
			BaseKB: first.RSS[p.label], EndKB: last.RSS[p.label]}
		for _, s := range samples[bi:] {
			r.PeakKB = max(r.PeakKB, s.RSS[p.label])
		}
		switch {
		case r.BaseKB == 0 && r.EndKB == 0:
			r.Note = "not running at the baseline or at the end"
		case r.BaseKB == 0:
			r.Note = fmt.Sprintf("not running at %v", base)
		case r.EndKB == 0:
			r.Note = "gone by the end"
		default:
			r.Ratio = float64(r.EndKB) / float64(r.BaseKB)
			r.OK = math.Abs(r.Ratio-1) <= limit+1e-9
		}
		if !r.OK {
			pass = false
			what := r.Note
			if what == "" {
				what = fmt.Sprintf("%.3fx", r.Ratio)
			}
			bad = append(bad, fmt.Sprintf("%s (pid %d) %s", r.Label, r.PID, what))
		}
		out = append(out, r)
	}
	if pass {
		return out, true, fmt.Sprintf("PASS: all %d processes ended within %.0f%% of their RSS at %v", len(out), 100*limit, base)
	}
	return out, false, fmt.Sprintf("FAIL: not within %.0f%% of the RSS at %v: %s", 100*limit, base, strings.Join(bad, ", "))
}

// latestInterval takes the interval reports queued on ivs, waiting up
// to wait for the one with index k, and returns the latest (last if
// none came).
func latestInterval(ctx context.Context, ivs <-chan perf.Interval, last perf.Interval, k int, wait time.Duration) perf.Interval {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		if last.Index >= k {
			select {
			case iv := <-ivs:
				last = iv
				continue
			default:
				return last
			}
		}
		select {
		case iv := <-ivs:
			last = iv
		case <-timer.C:
			return last
		case <-ctx.Done():
			return last
		}
	}
}

func mib(kb int64) float64 { return float64(kb) / 1024 }

// soak floods the path for the duration and samples every process's
// resident memory each second.
func soak(ctx context.Context, e *env, sc soakConfig, out, progress io.Writer) (*SoakResult, error) {
	res := &SoakResult{Started: time.Now(), GoVersion: runtime.Version(), CPUs: runtime.NumCPU(), Path: sc.path,
		About: describe(sc.path), Size: sc.size, DurationS: sc.duration.Seconds(), BaseS: sc.base.Seconds(),
		LimitPct: 100 * soakLimit, AdjDowns: -1}
	fmt.Fprintf(progress, "bench: %s: setting up\n", sc.path)
	t, err := e.build(ctx, sc.path)
	if err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	defer t.Close()
	if t.Settle != nil {
		if err := t.Settle(); err != nil {
			return nil, fmt.Errorf("settle: %w", err)
		}
	}
	downs := 0
	if t.Downs != nil {
		downs = t.Downs()
	}
	s := newSampler(t)
	s.refresh()
	nIPCP := 0
	for _, p := range s.procs {
		if p.role == roleIPCP {
			nIPCP++
		}
	}
	fmt.Fprintf(out, "soak: %s (%s), %d-byte operf flood for %v; RSS each second of the IPCPs (%d), the bench process "+
		"(IRMds, flood client) and the server process (flood sink)\n\n", sc.path, res.About, sc.size, sc.duration, nIPCP)
	fmt.Fprintln(out, "     t      pkt/s   IPCPs total MiB   max IPCP MiB            bench MiB   server MiB")
	// The sink reports each second of the flood; the sampler waits a
	// little for the report of the second it samples.
	ivs := make(chan perf.Interval, 16)
	floodErr := bounded(ctx, t, perfName, sc.duration, func(ctx context.Context, c net.Conn) error {
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { // owned: ends after the last tick or when cancelled
			defer wg.Done()
			start := time.Now()
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			var last perf.Interval
			for k := 1; k <= int(sc.duration/time.Second); k++ {
				select {
				case <-sctx.Done():
					return
				case <-tick.C:
				}
				elapsed := time.Since(start)
				smp := s.sample(elapsed, 0)
				last = latestInterval(sctx, ivs, last, k, 300*time.Millisecond)
				smp.PPS = last.Forward.PPS
				res.Samples = append(res.Samples, smp)
				fmt.Fprintf(out, "%5.0f s %10.0f   %15.1f   %12.1f %-10s %9.1f   %10.1f\n", smp.ElapsedS, smp.PPS,
					mib(smp.IPCPTotalKB), mib(smp.IPCPMaxKB), "("+smp.IPCPMax+")", mib(smp.BenchKB), mib(smp.ServerKB))
			}
		}()
		r, err := perf.Run(ctx, c, perf.Config{Name: sc.path, Size: sc.size, Duration: sc.duration, Wait: 5 * time.Second,
			OnInterval: func(iv perf.Interval) {
				select {
				case ivs <- iv:
				default: // the sampler is behind: it keeps the latest it has
				}
			}})
		if r != nil {
			res.Flood = r.Forward
		}
		if err != nil {
			cancel()
		}
		done := make(chan struct{})
		go func() { // owned: ends with the sampler
			wg.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			cancel()
			<-done
		}
		return err
	})
	if floodErr != nil {
		res.FloodError = floodErr.Error()
	}
	if t.Downs != nil {
		res.AdjDowns = t.Downs() - downs
	}
	procs := make([]soakProc, 0, len(s.order))
	for _, l := range s.order {
		procs = append(procs, s.procs[l])
	}
	res.Procs, res.Pass, res.Verdict = judge(res.Samples, procs, sc.base, soakLimit)
	if res.FloodError != "" {
		res.Pass = false
		res.Verdict = "FAIL: flood: " + res.FloodError + "; " + res.Verdict
	}
	res.print(out)
	return res, nil
}

// print writes the summary.
func (r *SoakResult) print(w io.Writer) {
	downs := ""
	if r.AdjDowns >= 0 {
		downs = fmt.Sprintf(", %d adjacency downs", r.AdjDowns)
	}
	fmt.Fprintf(w, "\nflood: %d sent, %d received, %.0f pkt/s, %.2f%% lost%s\n", r.Flood.Sent, r.Flood.Received,
		r.Flood.PPS, r.Flood.LossPct, downs)
	base := time.Duration(r.BaseS * float64(time.Second))
	fmt.Fprintf(w, "\n%-14s %-6s %7s %14s %14s %13s %7s\n", "process", "role", "pid",
		fmt.Sprintf("RSS@%v MiB", base), "RSS@end MiB", "peak MiB", "ratio")
	for _, p := range r.Procs {
		ok := "ok"
		if !p.OK {
			ok = "FAIL"
			if p.Note != "" {
				ok += " (" + p.Note + ")"
			}
		}
		fmt.Fprintf(w, "%-14s %-6s %7d %14.1f %14.1f %13.1f %7.3f  %s\n", p.Label, p.Role, p.PID, mib(p.BaseKB),
			mib(p.EndKB), mib(p.PeakKB), p.Ratio, ok)
	}
	fmt.Fprintf(w, "\n%s\n", r.Verdict)
}
