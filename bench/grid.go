package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/flow/ping"
	"github.com/ouro-net/ouro/internal/topo"
	"github.com/ouro-net/ouro/lib/logging"
)

// gridConfig is one grid run: r x r hosts, idle for idle (CPU sampled
// over the first cpuWindow of it), then a ping stream corner to corner
// every interval for pingFor.
type gridConfig struct {
	r         int
	idle      time.Duration
	cpuWindow time.Duration
	interval  time.Duration
	pingFor   time.Duration
}

// Defaults of a grid run (see gridRun).
const (
	gridSettle    = 3 * time.Second
	gridCPUWindow = 10 * time.Second
	gridPingFor   = 10 * time.Second
)

// GridKind is one kind of ouro process in a grid run.
type GridKind struct {
	Procs    int     `json:"procs"`
	CPUPct   float64 `json:"cpu_pct_of_a_core"`
	RSSMiB   float64 `json:"rss_mib"`
	MeanMiB  float64 `json:"rss_mean_mib"`
	MaxMiB   float64 `json:"rss_max_mib"`
	MaxLabel string  `json:"rss_max_proc"`
}

// GridProc is one process's idle CPU and RSS.
type GridProc struct {
	Label  string  `json:"label"`
	Type   string  `json:"type"`
	PID    int     `json:"pid"`
	CPUPct float64 `json:"cpu_pct_of_a_core"`
	RSSMiB float64 `json:"rss_mib"`
}

// GridPing is the ping stream corner to corner.
type GridPing struct {
	From       string  `json:"from"`
	To         string  `json:"to"`
	IntervalMS float64 `json:"interval_ms"`
	DurationS  float64 `json:"duration_s"`
	Sent       int     `json:"sent"`
	Received   int     `json:"received"`
	LossPct    float64 `json:"loss_pct"`
	MedianMS   float64 `json:"rtt_median_ms"`
	MaxMS      float64 `json:"rtt_max_ms"`
	LongestGap float64 `json:"longest_gap_ms"`
	FalseDowns int     `json:"false_adjacency_downs"`
	// FalseDownsAt counts them by the host that declared them.
	FalseDownsAt map[string]int `json:"false_downs_by_host,omitempty"`
}

// GridResult is a grid bench run. Error, if set, says at which step the
// run stopped; the fields before that step are filled in.
type GridResult struct {
	Started   time.Time `json:"started"`
	R         int       `json:"r"`
	Hosts     int       `json:"hosts"`
	Links     int       `json:"links"`
	BringUpS  float64   `json:"bring_up_s"`
	SettleS   float64   `json:"settle_s"`
	IdleS     float64   `json:"idle_s"`
	CPUWindow float64   `json:"cpu_window_s"`
	// CPUPct is every ouro process together, in % of one core.
	CPUPct float64 `json:"idle_cpu_pct_of_a_core"`
	// Kinds is per process kind: "irmd" is this process, which hosts
	// all the IRMds (one per host), "udp4" and "unicast" the IPCPs.
	Kinds map[string]*GridKind `json:"kinds"`
	// PingCPU is each process kind's CPU while the ping stream ran,
	// in % of one core: what forwarding the stream costs.
	PingCPU   map[string]float64 `json:"ping_cpu_pct_of_a_core,omitempty"`
	RSSMiB    float64            `json:"rss_total_mib"`
	IdleDowns int                `json:"idle_false_adjacency_downs"`
	// IdleDownsAt counts them by the host that declared them.
	IdleDownsAt map[string]int `json:"idle_false_downs_by_host,omitempty"`
	// UpDowns, IdleDownsWhy and PingDownsWhy are the downs of bring-up
	// and settle, of the idle spell and of the ping stream, as the
	// IPCPs logged them: kind (held or flooded) and why.
	UpDowns      *GridDowns `json:"bring_up_downs,omitempty"`
	IdleDownsWhy *GridDowns `json:"idle_downs,omitempty"`
	PingDownsWhy *GridDowns `json:"ping_downs,omitempty"`
	// Load is the load average (1 min) before and after the run.
	// BusyIdle and BusyPing are how busy the whole machine was during
	// the idle spell and the ping (all processes, % of all cores, from
	// /proc/stat): near 100 the hosts starve whatever the detector.
	BusyIdle   float64   `json:"machine_busy_pct_idle"`
	BusyPing   float64   `json:"machine_busy_pct_ping"`
	LoadBefore string    `json:"loadavg_before"`
	LoadAfter  string    `json:"loadavg_after"`
	Ping       *GridPing `json:"ping,omitempty"`
	// Procs is every ouro process measured.
	Procs []GridProc `json:"procs,omitempty"`
	// RunDir held the hosts' run directories (removed at the end).
	RunDir     string `json:"run_dir"`
	Error      string `json:"error,omitempty"`
	ClockTicks int    `json:"clock_ticks_per_s"`
}

// gridHost names the host at row i, column j.
func gridHost(i, j int) string { return fmt.Sprintf("h%02d%02d", i, j) }

// gridTopo lists the hosts and links of an r x r grid: every host is
// linked to its right and lower neighbours.
func gridTopo(r int) (hosts []string, links [][2]string) {
	for i := 0; i < r; i++ {
		for j := 0; j < r; j++ {
			hosts = append(hosts, gridHost(i, j))
			if j+1 < r {
				links = append(links, [2]string{gridHost(i, j), gridHost(i, j+1)})
			}
			if i+1 < r {
				links = append(links, [2]string{gridHost(i, j), gridHost(i+1, j)})
			}
		}
	}
	return hosts, links
}

// gridRun brings up an r x r grid of hosts (an IRMd each in this
// process with its own run directory, one udp4 layer per link on
// 127.0.0.x, one unicast layer "net" over all), waits until the corners
// route to each other, lets it settle, and measures: the CPU of every
// ouro process over the first cpuWindow of an idle spell, the RSS of
// each, the adjacency downs during the idle spell and during a ping
// stream from one corner to the other (none is expected: nothing
// fails), and the ping's loss and RTT. It prints the figures to out
// and progress to progress. Everything it started is stopped and its
// run directories removed before it returns, on error and on ctx's end
// too.
func gridRun(ctx context.Context, e *env, gc gridConfig, out, progress io.Writer) (res *GridResult, err error) {
	hosts, links := gridTopo(gc.r)
	res = &GridResult{Started: time.Now(), R: gc.r, Hosts: len(hosts), Links: len(links), SettleS: gridSettle.Seconds(),
		IdleS: gc.idle.Seconds(), CPUWindow: min(gc.cpuWindow, gc.idle).Seconds(), Kinds: map[string]*GridKind{},
		ClockTicks: clockTicks}
	fail := func(step string, err error) (*GridResult, error) {
		err = fmt.Errorf("%s: %w", step, err)
		res.Error = err.Error()
		return res, err
	}
	dir, cleanup, err := gridTmp()
	if err != nil {
		return fail("run directory", err)
	}
	defer cleanup()
	res.RunDir = dir
	res.LoadBefore = loadAvg()
	logs := filepath.Join(dir, "logs")
	if err := os.Mkdir(logs, 0o700); err != nil {
		return fail("run directory", err)
	}
	restoreLogs := setEnv(logDirEnv, logs)
	defer restoreLogs()
	from, to := hosts[0], hosts[len(hosts)-1]
	fmt.Fprintf(progress, "bench: grid %dx%d: %d hosts, %d links (%d udp4 IPCPs), bringing up\n",
		gc.r, gc.r, len(hosts), len(links), 2*len(links))
	t0 := time.Now()
	tp, err := buildBounded(ctx, e, hosts, links, 30*time.Second+time.Duration(len(hosts))*5*time.Second)
	if err != nil {
		return fail("bring-up", err)
	}
	defer tp.Close()
	for _, p := range [][2]string{{from, to}, {to, from}} {
		if err := waitRouteCtx(ctx, tp, p[0], p[1], 30*time.Second+time.Duration(len(hosts))*time.Second); err != nil {
			return fail("bring-up", err)
		}
	}
	res.BringUpS = time.Since(t0).Seconds()
	fmt.Fprintf(progress, "bench: grid: up in %.1f s, settling %v\n", res.BringUpS, gridSettle)
	if err := sleepCtx(ctx, gridSettle); err != nil {
		return fail("settle", err)
	}

	procs, err := ouroProcs(tp)
	if err != nil {
		return fail("list processes", err)
	}
	downs0, err := gridDowns(tp, hosts)
	if err != nil {
		return fail("idle", err)
	}
	fmt.Fprintf(progress, "bench: grid: idle for %v (CPU of %d processes over the first %.0f s)\n", gc.idle, len(procs), res.CPUWindow)
	t1 := time.Now()
	busy0 := machineCPU()
	wall, err := sampleCPU(ctx, procs, min(gc.cpuWindow, gc.idle))
	if err != nil {
		return fail("idle CPU", err)
	}
	res.CPUWindow = wall.Seconds()
	for _, p := range procs {
		k := res.kind(p.Type)
		k.Procs++
		k.CPUPct += p.PctOfACore
		res.CPUPct += p.PctOfACore
		kb, err := readRSS(p.PID)
		if err != nil {
			return fail("RSS", fmt.Errorf("%s (pid %d): %w", p.Label, p.PID, err))
		}
		mb := mib(kb)
		res.Procs = append(res.Procs, GridProc{Label: p.Label, Type: p.Type, PID: p.PID, CPUPct: p.PctOfACore, RSSMiB: mb})
		k.RSSMiB += mb
		res.RSSMiB += mb
		if mb > k.MaxMiB {
			k.MaxMiB, k.MaxLabel = mb, p.Label
		}
	}
	for _, k := range res.Kinds {
		k.MeanMiB = k.RSSMiB / float64(k.Procs)
	}
	if err := sleepCtx(ctx, gc.idle-time.Since(t1)); err != nil {
		return fail("idle", err)
	}
	downs1, err := gridDowns(tp, hosts)
	if err != nil {
		return fail("idle", err)
	}
	res.IdleDowns, res.IdleDownsAt = downsSince(downs0, downs1)
	t2 := time.Now()
	busy1 := machineCPU()
	res.BusyIdle = busy1.busyPct(busy0)

	fmt.Fprintf(progress, "bench: grid: ping %s -> %s every %v for %v\n", from, to, gc.interval, gc.pingFor)
	res.Ping = &GridPing{From: from, To: to, IntervalMS: float64(gc.interval) / 1e6, DurationS: gc.pingFor.Seconds()}
	ticks0 := procTicks(procs)
	pingStart := time.Now()
	if err := gridPing(ctx, tp, res.Ping, gc); err != nil {
		return fail("ping", err)
	}
	res.PingCPU = kindCPU(procs, ticks0, procTicks(procs), time.Since(pingStart))
	downs2, err := gridDowns(tp, hosts)
	if err != nil {
		return fail("ping", err)
	}
	res.Ping.FalseDowns, res.Ping.FalseDownsAt = downsSince(downs1, downs2)
	t3 := time.Now()
	res.BusyPing = machineCPU().busyPct(busy1)
	res.LoadAfter = loadAvg()
	if evs, err := readGridEvents(logs); err != nil {
		fmt.Fprintf(progress, "bench: grid: reading the IPCPs' logs: %v\n", err)
	} else {
		res.UpDowns = gridDownsIn(evs, t0, t1)
		res.IdleDownsWhy = gridDownsIn(evs, t1, t2)
		res.PingDownsWhy = gridDownsIn(evs, t2, t3)
	}
	res.print(out)
	return res, nil
}

// kind returns the entry of process kind t, creating it.
func (g *GridResult) kind(t string) *GridKind {
	k, ok := g.Kinds[t]
	if !ok {
		k = &GridKind{}
		g.Kinds[t] = k
	}
	return k
}

// print writes the run's table.
func (g *GridResult) print(w io.Writer) {
	fmt.Fprintf(w, "grid %dx%d: %d hosts, %d links; one udp4 layer per link, unicast layer over all\n\n", g.R, g.R, g.Hosts, g.Links)
	fmt.Fprintf(w, "bring-up (to routes corner to corner): %.1f s\n", g.BringUpS)
	fmt.Fprintf(w, "idle CPU over %.1f s: %.1f%% of one core in total; RSS %.0f MiB in total\n\n", g.CPUWindow, g.CPUPct, g.RSSMiB)
	fmt.Fprintf(w, "%-8s %6s %12s %10s %10s %10s\n", "kind", "procs", "% core", "RSS MiB", "mean MiB", "max MiB")
	kinds := make([]string, 0, len(g.Kinds))
	for k := range g.Kinds {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, n := range kinds {
		k := g.Kinds[n]
		fmt.Fprintf(w, "%-8s %6d %12.2f %10.0f %10.1f %10.1f\n", n, k.Procs, k.CPUPct, k.RSSMiB, k.MeanMiB, k.MaxMiB)
	}
	fmt.Fprintln(w, "(irmd: this process, which hosts every host's IRMd)")
	fmt.Fprintf(w, "\nfalse adjacency downs: %d in %.0f s idle", g.IdleDowns, g.IdleS)
	if p := g.Ping; p != nil {
		fmt.Fprintf(w, ", %d under the ping stream\n", p.FalseDowns)
		fmt.Fprintf(w, "ping %s -> %s every %.0f ms for %.0f s: %d/%d received, loss %.2f%%, RTT median %.2f ms, max %.2f ms, longest gap %.1f ms\n",
			p.From, p.To, p.IntervalMS, p.DurationS, p.Received, p.Sent, p.LossPct, p.MedianMS, p.MaxMS, p.LongestGap)
		if p.Received == 0 {
			fmt.Fprintln(w, "ping: FAIL, no reply came back")
		}
	} else {
		fmt.Fprintln(w)
	}
	if len(g.PingCPU) > 0 {
		fmt.Fprintf(w, "CPU under the ping, %% of one core:")
		for _, n := range kinds {
			fmt.Fprintf(w, " %s %.1f", n, g.PingCPU[n])
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "load average: %s before, %s after; the machine (all processes) busy %.0f%% idle, %.0f%% under the ping\n",
		g.LoadBefore, g.LoadAfter, g.BusyIdle, g.BusyPing)
	g.UpDowns.print(w, "in bring-up and settle", 5)
	g.IdleDownsWhy.print(w, "idle", 20)
	g.PingDownsWhy.print(w, "under the ping", 20)
}

// procTicks reads the CPU ticks of procs (-1 for one that is gone).
func procTicks(procs []IdleProc) []int64 {
	t := make([]int64, len(procs))
	for i, p := range procs {
		n, err := cpuTicks(p.PID)
		if err != nil {
			n = -1
		}
		t[i] = n
	}
	return t
}

// kindCPU sums the CPU each process kind spent between two procTicks
// readings wall apart, in % of one core.
func kindCPU(procs []IdleProc, before, after []int64, wall time.Duration) map[string]float64 {
	m := make(map[string]float64)
	if wall <= 0 {
		return m
	}
	for i, p := range procs {
		if before[i] < 0 || after[i] < 0 {
			continue
		}
		ms := float64(after[i]-before[i]) * 1000 / float64(clockTicks)
		m[p.Type] += ms / float64(wall.Milliseconds()) * 100
	}
	return m
}

// logDirEnv makes every IPCP log in JSON lines to DIR/NAME.log
// (cmd/irm, cmdIPCPD): the grid reads the adjacency events from there.
const logDirEnv = "OURO_LOGDIR"

// cpuTimes are the machine's CPU times (/proc/stat, all cores).
type cpuTimes struct{ busy, total uint64 }

// machineCPU reads them (zero if unknown).
func machineCPU() cpuTimes {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var c cpuTimes
	for i, v := range f[1:min(len(f), 9)] { // user .. steal (guest time is in user)
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			continue
		}
		c.total += n
		if i != 3 && i != 4 { // idle, iowait
			c.busy += n
		}
	}
	return c
}

// busyPct is the share of CPU time busy between before and c.
func (c cpuTimes) busyPct(before cpuTimes) float64 {
	if c.total <= before.total {
		return 0
	}
	return 100 * float64(c.busy-before.busy) / float64(c.total-before.total)
}

// setEnv sets k to v and returns a function that restores it.
func setEnv(k, v string) func() {
	old, had := os.LookupEnv(k)
	os.Setenv(k, v)
	return func() {
		if had {
			os.Setenv(k, old)
		} else {
			os.Unsetenv(k)
		}
	}
}

// gridBuild builds the grid's topology: the IPCPs log at warn at least
// (the adjacency events are warnings).
func gridBuild(ctx context.Context, e *env, hosts []string, links [][2]string) (*topo.Topo, error) {
	lvl, _ := logging.ParseLevel(e.logLevel)
	child := e.logLevel
	if lvl > hclog.Warn || lvl == hclog.NoLevel {
		child = "warn"
	}
	return topo.Build(ctx, topo.Config{Hosts: hosts, Links: links, PerLink: true, Exe: e.irm, Types: ipcpTypes(),
		Log: logging.New("irmd", lvl, e.log), LogLevel: child})
}

// buildBounded builds the grid with its run directories under a
// directory of its own (removed on return if the build fails), giving
// up after limit or when ctx ends. topo.Build takes no context: a build
// given up on is closed by its goroutine once it returns, and its IPCP
// processes die with this process (the IRMd starts them with a parent
// death signal).
func buildBounded(ctx context.Context, e *env, hosts []string, links [][2]string, limit time.Duration) (*topo.Topo, error) {
	type built struct {
		tp  *topo.Topo
		err error
	}
	ch := make(chan built, 1)
	giveUp := make(chan struct{})
	go func() { // owned: ends when topo.Build returns (its every call is bounded)
		tp, err := gridBuild(ctx, e, hosts, links)
		select {
		case ch <- built{tp, err}:
		case <-giveUp:
			if tp != nil {
				tp.Close()
			}
		}
	}()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case b := <-ch:
		return b.tp, b.err
	case <-ctx.Done():
		close(giveUp)
		return nil, ctx.Err()
	case <-timer.C:
		close(giveUp)
		return nil, fmt.Errorf("not built in %v", limit)
	}
}

// waitRouteCtx waits until host routes to dst, or timeout, or ctx's end.
func waitRouteCtx(ctx context.Context, tp *topo.Topo, host, dst string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		st, err := tp.Status(host)
		if err == nil && topo.RouteNextHops(st, dst) >= 1 {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = errors.New("no route")
			}
			return fmt.Errorf("route %s -> %s not there after %v: %w", host, dst, timeout, err)
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// gridDowns sums the adjacency-down counters of the unicast members of
// hosts; a member that does not answer is an error (a missing count
// would hide downs).
func gridDowns(tp *topo.Topo, hosts []string) (map[string]int, error) {
	m := map[string]int{}
	for _, h := range hosts {
		st, err := tp.Status(h)
		if err != nil {
			return nil, fmt.Errorf("status of %s: %w", h, err)
		}
		m[h] = int(st.Counters.AdjDown)
	}
	return m, nil
}

// downsSince returns the downs in now that were not in before, in
// total and by host (hosts with none left out).
func downsSince(before, now map[string]int) (int, map[string]int) {
	total, by := 0, map[string]int{}
	for h, n := range now {
		if d := n - before[h]; d != 0 {
			total += d
			by[h] = d
		}
	}
	return total, by
}

// gridPing serves the bench names at p.To in a child process and
// streams pings from p.From for gc.pingFor, filling in p.
func gridPing(ctx context.Context, tp *topo.Topo, p *GridPing, gc gridConfig) error {
	if err := registerAll(tp.Hosts[p.To].Dir, "net"); err != nil {
		return err
	}
	srv, err := startChild("flow", tp.Hosts[p.To].Dir)
	if err != nil {
		return err
	}
	defer srv.Stop()
	conn, err := allocRetry(ctx, pingName, []flow.Option{tp.Hosts[p.From].Opt(), flow.WithLayer("net")})
	if err != nil {
		return err
	}
	defer conn.Close()
	type result struct {
		st  *ping.Stats
		err error
	}
	done := make(chan result, 1)
	go func(c net.Conn) { // owned: bounded by the stream's duration and the bound below
		st, err := ping.RunOn(ctx, c, ping.Config{Name: p.To, Size: 64, Interval: gc.interval, Duration: gc.pingFor})
		done <- result{st, err}
	}(conn)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	var r result
	select {
	case r = <-done:
	case <-time.After(gc.pingFor + grace):
		conn.SetDeadline(time.Now())
		r = <-done
	}
	if st := r.st; st != nil {
		p.Sent, p.Received, p.LossPct = st.Transmitted, st.Received, st.LossPct
		p.MedianMS, p.MaxMS, p.LongestGap = st.MedianMS, st.MaxMS, st.LongestGapMS
	}
	if r.err != nil {
		return fmt.Errorf("stream: %w", r.err)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return nil
}

// gridTmp points the process's temporary directory (where topo.Build
// makes the run directories) at a fresh directory and returns a
// function that removes it and restores the old setting: the run
// directories go even when a build is given up on.
func gridTmp() (string, func(), error) {
	old, had := os.LookupEnv("TMPDIR")
	dir, err := os.MkdirTemp("", "ouro-grid")
	if err != nil {
		return "", nil, err
	}
	if err := os.Setenv("TMPDIR", dir); err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	return dir, func() {
		if had {
			os.Setenv("TMPDIR", old)
		} else {
			os.Unsetenv("TMPDIR")
		}
		os.RemoveAll(dir)
	}, nil
}

// isqrt is the integer square root of a square number n.
func isqrt(n int) int {
	r := 0
	for (r+1)*(r+1) <= n {
		r++
	}
	return r
}
