package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/flow/ping"
	"github.com/ouro-net/ouro/internal/topo"
	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/namehash"
	"github.com/ouro-net/ouro/lib/qos"
)

// The -flood mode: the attack of issue 10 against a udp4 IPCP. Two
// hosts a (127.0.0.1) and b (127.0.0.2) share a udp4 layer (udp1, each
// the other's configured peer) with a unicast layer (net) on top, and b
// serves the bench names. For -d (default 30 s) a stranger on
// 127.0.0.3, with no IRMd, sends alloc requests for the ping name to
// b's udp4 IPCP as fast as one socket goes, each with a new endpoint id
// and a data port, and confirms every "ok" it gets (the worst case: a
// requester that holds what it is given). Meanwhile a pings b every
// millisecond over udp1, allocates (and closes) one more flow to b each
// second, and `irm layer show udp1` is asked of b every 200 ms. The
// figures: b's udp4 IPCP's RSS and descriptors, ping loss, allocations,
// show latency, adjacency downs in net, what the flood sent and got
// back, and b's counters at the end.

// Flood verdict limits (issue 10).
const (
	floodMaxRSSKB   = 100 * 1024
	floodMaxLossPct = 1.0
	floodMaxShow    = time.Second
)

// FloodSample is one second of the flood.
type FloodSample struct {
	ElapsedS  float64 `json:"elapsed_s"`
	RSSKB     int64   `json:"rss_kb"`
	FDs       int     `json:"fds"`
	Flows     int     `json:"incoming_flows"`
	Pending   int     `json:"pending"`
	ShowMaxMS float64 `json:"show_max_ms"`
	SentPkts  uint64  `json:"flood_sent_pkts"`
}

// FloodResult is a flood run.
type FloodResult struct {
	Started     time.Time      `json:"started"`
	GoVersion   string         `json:"go_version"`
	CPUs        int            `json:"cpus"`
	DurationS   float64        `json:"duration_s"`
	Target      string         `json:"target"`
	From        string         `json:"from"`
	Sources     int            `json:"sources"`
	Ping        ping.Stats     `json:"ping"`
	AllocsOK    int            `json:"honest_allocs_ok"`
	AllocsFail  int            `json:"honest_allocs_failed"`
	AllocErrors []string       `json:"honest_alloc_errors,omitempty"`
	AllocMaxMS  float64        `json:"honest_alloc_max_ms"`
	Shows       int            `json:"shows"`
	ShowFail    int            `json:"shows_failed"`
	ShowMedMS   float64        `json:"show_median_ms"`
	ShowMaxMS   float64        `json:"show_max_ms"`
	RSSStartKB  int64          `json:"rss_start_kb"`
	RSSMaxKB    int64          `json:"rss_max_kb"`
	FDStart     int            `json:"fds_start"`
	FDMax       int            `json:"fds_max"`
	FloodSent   uint64         `json:"flood_sent_pkts"`
	FloodBytes  uint64         `json:"flood_sent_bytes"`
	FloodBack   uint64         `json:"flood_back_bytes"`
	FloodOKs    uint64         `json:"flood_oks"`
	AdjDowns    int            `json:"adjacency_downs"`
	Counters    map[string]int `json:"counters"`
	Samples     []FloodSample  `json:"samples"`
	Pass        bool           `json:"pass"`
	Verdict     string         `json:"verdict"`
}

// udpFlooder is the stranger: alloc requests (wire version 3, see
// package ipcpd/udp) from one socket, confirming every "ok".
type udpFlooder struct {
	cs                     []*net.UDPConn // one per source port
	sent, bytes, back, oks atomic.Uint64
}

const (
	udpVersion   = 3
	udpAllocReq  = 3
	udpAllocResp = 4
	udpConfirm   = 7
	udpReqLen    = 64
)

// run sends until ctx ends.
func (f *udpFlooder) run(ctx context.Context, name string) {
	h := namehash.Of(name)
	b := make([]byte, udpReqLen)
	b[4], b[5] = udpVersion, udpAllocReq
	copy(b[10:], h[:])
	binary.BigEndian.PutUint16(b[26:], 1400) // mtu
	binary.BigEndian.PutUint16(b[28:], 9)    // a data port: the victim opens a data socket
	for eid := uint32(1); ctx.Err() == nil; eid++ {
		if eid == 0 {
			eid = 1
		}
		binary.BigEndian.PutUint32(b[6:], eid)
		if _, err := f.cs[int(eid)%len(f.cs)].Write(b); err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		f.sent.Add(1)
		f.bytes.Add(uint64(len(b)))
	}
}

// answer reads what comes back to c and confirms every "ok".
func (f *udpFlooder) answer(c *net.UDPConn) {
	buf := make([]byte, 2048)
	conf := make([]byte, 14)
	conf[4], conf[5] = udpVersion, udpConfirm
	for {
		n, err := c.Read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		f.back.Add(uint64(n))
		// alloc resp: eid 0, version, type, dst (4), src (4), status (1), ...
		if n == 19 && buf[5] == udpAllocResp && buf[14] == 0 {
			f.oks.Add(1)
			copy(conf[6:10], buf[10:14]) // their eid is our dst
			copy(conf[10:14], buf[6:10])
			c.Write(conf)
		}
	}
}

var (
	limitsRE  = regexp.MustCompile(`incoming flows (\d+) of \d+ .*pending (\d+) of`)
	counterRE = regexp.MustCompile(`(?m)^\s+([a-z-]+)\s+(\d+)$`)
	adjRE     = regexp.MustCompile(`adjacencies up \d+, down (\d+)`)
)

// floodRun runs the -flood mode.
// The flood comes from sources sockets on 127.0.0.3 (one source by
// default: the attack; more test the strangers' share of the
// total caps).
func floodRun(ctx context.Context, e *env, d time.Duration, sources int, out, progress io.Writer) (*FloodResult, error) {
	res := &FloodResult{Started: time.Now(), GoVersion: runtime.Version(), CPUs: runtime.NumCPU(), DurationS: d.Seconds(),
		Sources: sources}
	fmt.Fprintln(progress, "bench: flood: setting up two hosts (udp1, net)")
	tp, err := e.topo(ctx, []string{"a", "b"}, [][2]string{{"a", "b"}}, false)
	if err != nil {
		return nil, fmt.Errorf("build two hosts: %w", err)
	}
	defer tp.Close()
	if _, err := tp.WaitRoute("a", "b", 1, 20*time.Second); err != nil {
		return nil, err
	}
	dirA, dirB := tp.Hosts["a"].Dir, tp.Hosts["b"].Dir
	if err := registerAll(dirB, "udp1"); err != nil {
		return nil, err
	}
	srv, err := startChild("flow", dirB)
	if err != nil {
		return nil, err
	}
	defer srv.Stop()
	pid, err := tp.LowerPID("b", 0)
	if err != nil {
		return nil, err
	}
	victim := fmt.Sprintf("%s:%d", tp.Hosts["b"].IP, tp.Ports[0])
	res.Target = victim
	show := func() (string, time.Duration, error) {
		start := time.Now()
		var info ctrl.LayerInfo
		err := topo.Call(dirB, ctrl.OpLayerShow, ctrl.LayerShow{Layer: "udp1"}, &info)
		return info.Text, time.Since(start), err
	}
	downs := func() int {
		n := 0
		for h := range tp.Hosts {
			s, _ := tp.Show(h)
			if m := adjRE.FindStringSubmatch(s); m != nil {
				k, _ := strconv.Atoi(m[1])
				n += k
			}
		}
		return n
	}
	opts := []flow.Option{flow.WithRunDir(dirA), flow.WithLayer("udp1")}
	// One allocation before the flood: the name is resolved and cached.
	if c, err := allocRetry(ctx, pingName, opts); err != nil {
		return nil, err
	} else {
		c.Close()
	}
	res.RSSStartKB, _ = readRSS(pid)
	res.FDStart = countFDs(pid)
	downs0 := downs()

	fl := &udpFlooder{}
	defer func() {
		for _, c := range fl.cs {
			c.Close()
		}
	}()
	for range max(1, sources) {
		conn, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 3)}, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(victim)))
		if err != nil {
			return nil, fmt.Errorf("flooder socket: %w", err)
		}
		fl.cs = append(fl.cs, conn)
	}
	res.From = fl.cs[0].LocalAddr().String()
	if len(fl.cs) > 1 {
		res.From = fmt.Sprintf("%d ports of 127.0.0.3", len(fl.cs))
	}
	fmt.Fprintf(out, "flood: %s (no IRMd) floods b's udp4 IPCP %s with confirmed alloc requests for %v;\n"+
		"a pings b every 1 ms over udp1, allocates one flow a second, and b's `irm layer show udp1` is timed every 200 ms\n\n",
		res.From, victim, d)
	fmt.Fprintln(out, "     t   sent pkt/s   RSS MiB   fds   flows  pending   show max ms")

	fctx, stop := context.WithTimeout(ctx, d)
	defer stop()
	var wg sync.WaitGroup
	wg.Add(3 + len(fl.cs))
	go func() { // owned: the flood, until fctx ends
		defer wg.Done()
		fl.run(fctx, pingName)
	}()
	for _, c := range fl.cs {
		go func() { // owned: ends when c closes (below)
			defer wg.Done()
			fl.answer(c)
		}()
	}
	var pingErr error
	go func() { // owned: the honest ping, for d
		defer wg.Done()
		st, err := ping.Run(ctx, ping.Config{Name: pingName, QoS: qos.Raw(), Interval: time.Millisecond,
			Count: int(d / time.Millisecond), Size: 64, Wait: 2 * time.Second, Opts: opts})
		if st != nil {
			res.Ping = *st
		}
		pingErr = err
	}()
	go func() { // owned: one honest allocation a second, until fctx ends
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-fctx.Done():
				return
			case <-t.C:
			}
			start := time.Now()
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			f, err := flow.Alloc(actx, pingName, qos.Raw(), opts...)
			cancel()
			if err != nil {
				res.AllocsFail++
				if len(res.AllocErrors) < 5 {
					res.AllocErrors = append(res.AllocErrors, err.Error())
				}
				continue
			}
			res.AllocsOK++
			res.AllocMaxMS = max(res.AllocMaxMS, ms(time.Since(start)))
			f.Close()
		}
	}()

	// The sampler: show every 200 ms, RSS and fds every second.
	var shows []time.Duration
	start := time.Now()
	tick := time.NewTicker(200 * time.Millisecond)
	var lastSent uint64
	var secMax time.Duration
	for k := 1; ; k++ {
		select {
		case <-fctx.Done():
		case <-tick.C:
		}
		if fctx.Err() != nil {
			break
		}
		text, lat, err := show()
		shows = append(shows, lat)
		secMax = max(secMax, lat)
		if err != nil {
			res.ShowFail++
		}
		if k%5 != 0 {
			continue
		}
		smp := FloodSample{ElapsedS: time.Since(start).Seconds(), FDs: countFDs(pid), ShowMaxMS: ms(secMax)}
		smp.RSSKB, _ = readRSS(pid)
		if m := limitsRE.FindStringSubmatch(text); m != nil {
			smp.Flows, _ = strconv.Atoi(m[1])
			smp.Pending, _ = strconv.Atoi(m[2])
		}
		smp.SentPkts = fl.sent.Load()
		res.Samples = append(res.Samples, smp)
		fmt.Fprintf(out, "%5.0f s %12d %9.1f %5d %7d %8d %13.1f\n", smp.ElapsedS, smp.SentPkts-lastSent,
			mib(smp.RSSKB), smp.FDs, smp.Flows, smp.Pending, smp.ShowMaxMS)
		lastSent, secMax = smp.SentPkts, 0
	}
	tick.Stop()
	for _, c := range fl.cs {
		c.Close()
	}
	wg.Wait()
	res.FloodSent, res.FloodBytes, res.FloodBack, res.FloodOKs = fl.sent.Load(), fl.bytes.Load(), fl.back.Load(), fl.oks.Load()
	res.AdjDowns = downs() - downs0
	res.Shows = len(shows)
	sort.Slice(shows, func(i, j int) bool { return shows[i] < shows[j] })
	if len(shows) > 0 {
		res.ShowMedMS, res.ShowMaxMS = ms(shows[len(shows)/2]), ms(shows[len(shows)-1])
	}
	for _, s := range res.Samples {
		res.RSSMaxKB = max(res.RSSMaxKB, s.RSSKB)
		res.FDMax = max(res.FDMax, s.FDs)
	}
	if text, _, err := show(); err == nil {
		res.Counters = map[string]int{}
		if i := strings.Index(text, "  counters\n"); i >= 0 {
			text = text[i:]
		}
		for _, m := range counterRE.FindAllStringSubmatch(text, -1) {
			if n, _ := strconv.Atoi(m[2]); n != 0 {
				res.Counters[m[1]] = n
			}
		}
	}
	if pingErr != nil && res.Ping.Error == "" {
		res.Ping.Error = pingErr.Error()
	}
	res.judge()
	res.print(out)
	return res, nil
}

// judge applies the limits.
func (r *FloodResult) judge() {
	var bad []string
	if r.Ping.Transmitted == 0 || r.Ping.LossPct >= floodMaxLossPct || r.Ping.Error != "" {
		bad = append(bad, fmt.Sprintf("ping loss %.2f%% of %d (limit %.0f%%) %s", r.Ping.LossPct, r.Ping.Transmitted,
			floodMaxLossPct, r.Ping.Error))
	}
	if r.RSSMaxKB >= floodMaxRSSKB {
		bad = append(bad, fmt.Sprintf("RSS %.1f MiB (limit %d)", mib(r.RSSMaxKB), floodMaxRSSKB/1024))
	}
	if r.ShowMaxMS >= ms(floodMaxShow) || r.ShowFail > 0 {
		bad = append(bad, fmt.Sprintf("show max %.1f ms, %d failed", r.ShowMaxMS, r.ShowFail))
	}
	if r.AllocsFail > 0 {
		bad = append(bad, fmt.Sprintf("%d honest allocations failed", r.AllocsFail))
	}
	if r.FloodBack > r.FloodBytes {
		bad = append(bad, fmt.Sprintf("amplification: %d B sent, %d B back", r.FloodBytes, r.FloodBack))
	}
	r.Pass = len(bad) == 0
	r.Verdict = "PASS"
	if !r.Pass {
		r.Verdict = "FAIL: " + fmt.Sprint(bad)
	}
}

func (r *FloodResult) print(w io.Writer) {
	fmt.Fprintf(w, "\nflood:   %d requests (%.0f/s, %d B) from %s, %d B back, %d \"ok\" confirmed\n", r.FloodSent,
		float64(r.FloodSent)/r.DurationS, r.FloodBytes, r.From, r.FloodBack, r.FloodOKs)
	fmt.Fprintf(w, "victim:  RSS %.1f MiB at start, %.1f MiB max; fds %d at start, %d max\n", mib(r.RSSStartKB),
		mib(r.RSSMaxKB), r.FDStart, r.FDMax)
	fmt.Fprintf(w, "ping:    %d sent, %d received, %.3f%% loss, rtt median %.3f ms p99 %.3f ms max %.3f ms\n",
		r.Ping.Transmitted, r.Ping.Received, r.Ping.LossPct, r.Ping.MedianMS, r.Ping.P99MS, r.Ping.MaxMS)
	fmt.Fprintf(w, "allocs:  %d ok, %d failed (slowest %.1f ms) %v\n", r.AllocsOK, r.AllocsFail, r.AllocMaxMS, r.AllocErrors)
	fmt.Fprintf(w, "show:    %d asked, %d failed, median %.1f ms, max %.1f ms\n", r.Shows, r.ShowFail, r.ShowMedMS, r.ShowMaxMS)
	fmt.Fprintf(w, "net:     %d adjacency downs\n", r.AdjDowns)
	keys := make([]string, 0, len(r.Counters))
	for k := range r.Counters {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprint(w, "counters:")
	for _, k := range keys {
		fmt.Fprintf(w, " %s %d", k, r.Counters[k])
	}
	fmt.Fprintf(w, "\n\n%s\n", r.Verdict)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// countFDs counts the open descriptors of pid (-1 if unreadable).
func countFDs(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(ents)
}
