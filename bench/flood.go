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
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/flow/ping"
	"github.com/ouro-net/ouro/internal/topo"
	"github.com/ouro-net/ouro/ipcpd/eth/frame"
	"github.com/ouro-net/ouro/ipcpd/shim/wire"
	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/namehash"
	"github.com/ouro-net/ouro/lib/qos"
)

// The -flood mode: an allocation flood against a udp4 IPCP. Two
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
//
// With -medium eth (root) the same runs on an eth-dix layer: two
// network namespaces joined by a veth pair, an IRMd process in each
// with an eth-dix IPCP on its end, b serving the bench names; the
// stranger is an AF_PACKET socket in a's namespace writing allocation
// requests from a forged MAC as fast as it can, confirming every OK.
// The honest ping then crosses the flooded IPCP (eth has no direct
// data path). There is no unicast layer, so no adjacency figure.

// Flood verdict limits (the README's bounds on a flooded IPCP).
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
	Medium      string         `json:"medium"`
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

// udpFlooder is the stranger on udp: alloc requests (wire version 3,
// see package ipcpd/udp) from its sockets in turn, confirming every "ok".
type udpFlooder struct {
	name string
	cs   []*net.UDPConn // one per source port
	st   floodStats
	wg   sync.WaitGroup
	once sync.Once
}

func (f *udpFlooder) stats() *floodStats { return &f.st }

func (f *udpFlooder) start(ctx context.Context) {
	f.wg.Add(1 + len(f.cs))
	go func() { // owned: until ctx ends
		defer f.wg.Done()
		f.run(ctx)
	}()
	for _, c := range f.cs {
		go func() { // owned: until stop closes c
			defer f.wg.Done()
			f.answer(c)
		}()
	}
}

func (f *udpFlooder) stop() {
	f.once.Do(func() {
		for _, c := range f.cs {
			c.Close()
		}
	})
	f.wg.Wait()
}

const (
	udpVersion   = wire.Version
	udpAllocReq  = 3
	udpAllocResp = 4
	udpConfirm   = 7
	udpReqLen    = 64
)

// run sends until ctx ends.
func (f *udpFlooder) run(ctx context.Context) {
	h := namehash.Of(f.name)
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
		f.st.sent.Add(1)
		f.st.bytes.Add(uint64(len(b)))
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
		f.st.back.Add(uint64(n))
		// alloc resp: eid 0, version, type, dst (4), src (4), status (1), ...
		if n == 19 && buf[5] == udpAllocResp && buf[14] == 0 {
			f.st.oks.Add(1)
			copy(conf[6:10], buf[10:14]) // their eid is our dst
			copy(conf[10:14], buf[6:10])
			c.Write(conf)
		}
	}
}

var ()

// floodVictim is the set-up the flood measures: the honest hosts'
// run directories and layer, the flooded IPCP, and the flooder.
type floodVictim struct {
	dirA, dirB, layer string
	cleanup           func()
	pid               int    // the flooded IPCP
	target, from      string // who is flooded, from where
	fl                flooder
	// downs counts the adjacency-down events so far (nil: no unicast
	// layer).
	downs func() int
}

// flooder is the stranger: start sends (until ctx ends) and answers
// what comes back; stop ends it and waits.
type flooder interface {
	start(ctx context.Context)
	stop()
	stats() *floodStats
}

// floodStats is what a flooder counts.
type floodStats struct{ sent, bytes, back, oks atomic.Uint64 }

// floodRun runs the -flood mode on medium ("udp" or "eth").
// The udp flood comes from sources sockets on 127.0.0.3 (one source by
// default; more test the strangers' share of the total caps).
func floodRun(ctx context.Context, e *env, medium string, d time.Duration, sources int, out, progress io.Writer) (*FloodResult, error) {
	res := &FloodResult{Started: time.Now(), GoVersion: runtime.Version(), CPUs: runtime.NumCPU(), DurationS: d.Seconds(),
		Sources: sources, Medium: medium, AdjDowns: -1}
	var v *floodVictim
	var err error
	switch medium {
	case "udp":
		v, err = e.udpVictim(ctx, sources, progress)
	case "eth":
		v, err = e.ethVictim(ctx, progress)
	default:
		err = fmt.Errorf("unknown medium %q (want udp or eth)", medium)
	}
	if err != nil {
		return nil, err
	}
	defer v.close()
	srv, err := startChild("flow", v.dirB)
	if err != nil {
		return nil, err
	}
	defer srv.Stop()
	res.Target, res.From = v.target, v.from
	return floodMeasure(ctx, v, res, d, out)
}

// close undoes the set-up.
func (v *floodVictim) close() {
	if v.cleanup != nil {
		v.cleanup()
	}
}

// udpVictim is two hosts on a udp4 layer (udp1) with a unicast layer
// (net) on top, and the udp flooder aimed at b's udp4 IPCP.
func (e *env) udpVictim(ctx context.Context, sources int, progress io.Writer) (*floodVictim, error) {
	fmt.Fprintln(progress, "bench: flood: setting up two hosts (udp1, net)")
	tp, err := e.topo(ctx, []string{"a", "b"}, [][2]string{{"a", "b"}}, false)
	if err != nil {
		return nil, fmt.Errorf("build two hosts: %w", err)
	}
	v := &floodVictim{dirA: tp.Hosts["a"].Dir, dirB: tp.Hosts["b"].Dir, layer: "udp1"}
	fl := &udpFlooder{name: pingName}
	v.cleanup = func() {
		fl.stop()
		tp.Close()
	}
	if _, err := tp.WaitRoute("a", "b", 1, 20*time.Second); err != nil {
		v.close()
		return nil, err
	}
	if err := registerAll(v.dirB, v.layer); err != nil {
		v.close()
		return nil, err
	}
	if v.pid, err = tp.LowerPID("b", 0); err != nil {
		v.close()
		return nil, err
	}
	v.target = fmt.Sprintf("%s:%d", tp.Hosts["b"].IP, tp.Ports[0])
	for range max(1, sources) {
		conn, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 3)}, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(v.target)))
		if err != nil {
			v.close()
			return nil, fmt.Errorf("flooder socket: %w", err)
		}
		fl.cs = append(fl.cs, conn)
	}
	v.from = fl.cs[0].LocalAddr().String()
	if len(fl.cs) > 1 {
		v.from = fmt.Sprintf("%d ports of 127.0.0.3", len(fl.cs))
	}
	v.fl = fl
	v.downs = func() int {
		n := 0
		for h := range tp.Hosts {
			n += adjDowns(tp, h)
		}
		return n
	}
	return v, nil
}

// floodMeasure floods v for d while the honest hosts ping, allocate and
// ask for show, and fills res.
func floodMeasure(ctx context.Context, v *floodVictim, res *FloodResult, d time.Duration, out io.Writer) (*FloodResult, error) {
	pid, fl := v.pid, v.fl
	// show asks for the flooded IPCP's layer show and returns its
	// status as data (an empty one if the answer has none).
	show := func() (*ctrl.ShimStatus, time.Duration, error) {
		start := time.Now()
		var info ctrl.LayerInfo
		err := topo.Call(v.dirB, ctrl.OpLayerShow, ctrl.LayerShow{Layer: v.layer}, &info)
		lat := time.Since(start)
		if err == nil && (info.Status == nil || info.Status.Shim == nil) {
			err = fmt.Errorf("layer %s: no shim status in the answer", v.layer)
		}
		if err != nil {
			return &ctrl.ShimStatus{}, lat, err
		}
		return info.Status.Shim, lat, nil
	}
	opts := []flow.Option{flow.WithRunDir(v.dirA), flow.WithLayer(v.layer)}
	// One allocation before the flood: the name is resolved and cached.
	if c, err := allocRetry(ctx, pingName, opts); err != nil {
		return nil, err
	} else {
		c.Close()
	}
	res.RSSStartKB, _ = readRSS(pid)
	res.FDStart = countFDs(pid)
	downs0 := 0
	if v.downs != nil {
		downs0 = v.downs()
	}
	fmt.Fprintf(out, "flood: %s (no IRMd) floods b's %s IPCP %s with confirmed allocation requests for %v;\n"+
		"a pings b every 1 ms over %s, allocates one flow a second, and b's `irm layer show %s` is timed every 200 ms\n\n",
		res.From, res.Medium, res.Target, d, v.layer, v.layer)
	fmt.Fprintln(out, "     t   sent pkt/s   RSS MiB   fds   flows  pending   show max ms")

	fctx, stop := context.WithTimeout(ctx, d)
	defer stop()
	var wg sync.WaitGroup
	wg.Add(2)
	fl.start(fctx)
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
		st, lat, err := show()
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
		smp.Flows, smp.Pending = st.Limits.Flows, st.Limits.Pending
		smp.SentPkts = fl.stats().sent.Load()
		res.Samples = append(res.Samples, smp)
		fmt.Fprintf(out, "%5.0f s %12d %9.1f %5d %7d %8d %13.1f\n", smp.ElapsedS, smp.SentPkts-lastSent,
			mib(smp.RSSKB), smp.FDs, smp.Flows, smp.Pending, smp.ShowMaxMS)
		lastSent, secMax = smp.SentPkts, 0
	}
	tick.Stop()
	fl.stop()
	wg.Wait()
	st := fl.stats()
	res.FloodSent, res.FloodBytes, res.FloodBack, res.FloodOKs = st.sent.Load(), st.bytes.Load(), st.back.Load(), st.oks.Load()
	if v.downs != nil {
		res.AdjDowns = v.downs() - downs0
	}
	res.Shows = len(shows)
	sort.Slice(shows, func(i, j int) bool { return shows[i] < shows[j] })
	if len(shows) > 0 {
		res.ShowMedMS, res.ShowMaxMS = ms(shows[len(shows)/2]), ms(shows[len(shows)-1])
	}
	for _, s := range res.Samples {
		res.RSSMaxKB = max(res.RSSMaxKB, s.RSSKB)
		res.FDMax = max(res.FDMax, s.FDs)
	}
	if st, _, err := show(); err == nil {
		res.Counters = map[string]int{}
		for k, n := range st.Counters {
			if n != 0 {
				res.Counters[k] = int(n)
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

// judge applies the flood verdict limits.
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
	if r.AdjDowns >= 0 {
		fmt.Fprintf(w, "net:     %d adjacency downs\n", r.AdjDowns)
	}
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

// ethVictim is two network namespaces joined by a veth pair, an IRMd
// process in each with an eth-dix IPCP (layer eth) on its end, and the
// eth flooder: an AF_PACKET socket in a's namespace. Root only.
func (e *env) ethVictim(ctx context.Context, progress io.Writer) (*floodVictim, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("-medium eth needs root (network namespaces, veth, AF_PACKET)")
	}
	fmt.Fprintln(progress, "bench: flood: setting up two namespaces on a veth pair (eth)")
	tag := strconv.Itoa(os.Getpid() % 100000)
	nsA, nsB, devA, devB := "ouroflooda"+tag, "ourofloodb"+tag, "ofa"+tag, "ofb"+tag
	var undo []func()
	v := &floodVictim{layer: "eth"}
	v.cleanup = func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	fail := func(err error) (*floodVictim, error) {
		v.close()
		return nil, err
	}
	ip := func(args ...string) error {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	for _, ns := range []string{nsA, nsB} {
		if err := ip("netns", "add", ns); err != nil {
			return fail(err)
		}
		undo = append(undo, func() { ip("netns", "del", ns) })
		if err := ip("-n", ns, "link", "set", "lo", "up"); err != nil {
			return fail(err)
		}
	}
	if err := ip("link", "add", devA, "type", "veth", "peer", "name", devB); err != nil {
		return fail(err)
	}
	undo = append(undo, func() { ip("link", "del", devA); ip("-n", nsA, "link", "del", devA) })
	for _, c := range [][]string{{"link", "set", devA, "netns", nsA}, {"link", "set", devB, "netns", nsB},
		{"-n", nsA, "link", "set", devA, "up"}, {"-n", nsB, "link", "set", devB, "up"}} {
		if err := ip(c...); err != nil {
			return fail(err)
		}
	}
	for i, ns := range []string{nsA, nsB} {
		dir, err := os.MkdirTemp("", "ouro-flood")
		if err != nil {
			return fail(err)
		}
		undo = append(undo, func() { os.RemoveAll(dir) })
		cmd := exec.Command("ip", "netns", "exec", ns, e.irm, "daemon", "--rundir", dir, "--log-level", e.logLevel)
		cmd.Stderr = e.log
		if err := cmd.Start(); err != nil {
			return fail(fmt.Errorf("start irm daemon in %s: %w", ns, err))
		}
		exited := make(chan struct{})
		go func() { // owned: ends when the daemon exits
			cmd.Wait()
			close(exited)
		}()
		undo = append(undo, func() {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
				<-exited
			}
		})
		deadline := time.Now().Add(10 * time.Second)
		for topo.Call(dir, ctrl.OpIPCPList, nil, &ctrl.IPCPList{}) != nil {
			if time.Now().After(deadline) {
				return fail(fmt.Errorf("irm daemon in %s does not answer", ns))
			}
			time.Sleep(20 * time.Millisecond)
		}
		name, dev := "ea", devA
		if i == 1 {
			name, dev = "eb", devB
			v.dirB = dir
		} else {
			v.dirA = dir
		}
		if err := topo.Call(dir, ctrl.OpIPCPBootstrap, ctrl.IPCPBootstrap{Type: "eth-dix", Name: name, Layer: "eth",
			Params: map[string]string{"dev": dev}}, nil); err != nil {
			return fail(fmt.Errorf("bootstrap eth-dix on %s: %w", dev, err))
		}
	}
	if err := registerAll(v.dirB, v.layer); err != nil {
		return fail(err)
	}
	var l ctrl.IPCPList
	if err := topo.Call(v.dirB, ctrl.OpIPCPList, nil, &l); err != nil || len(l.IPCPs) == 0 {
		return fail(fmt.Errorf("list b's IPCPs: %v", err))
	}
	v.pid = l.IPCPs[0].PID
	out, err := exec.Command("ip", "netns", "exec", nsB, "cat", "/sys/class/net/"+devB+"/address").Output()
	if err != nil {
		return fail(fmt.Errorf("b's MAC: %w", err))
	}
	hw, err := net.ParseMAC(strings.TrimSpace(string(out)))
	if err != nil {
		return fail(err)
	}
	fl := &ethFlooder{name: pingName, src: frame.MAC{0x02, 0xf1, 0x00, 0xd0, 0x00, 0x01}}
	fl.dst, _ = frame.MACFrom(hw)
	if fl.fd, err = packetSocketIn(nsA, devA); err != nil {
		return fail(err)
	}
	undo = append(undo, func() {
		fl.stop()
		unix.Close(fl.fd)
	})
	v.fl = fl
	v.target = fmt.Sprintf("%s (%s, in %s)", fl.dst, devB, nsB)
	v.from = fmt.Sprintf("%s (forged, on %s in %s)", fl.src, devA, nsA)
	return v, nil
}

// packetSocketIn opens an AF_PACKET socket for the default EtherType on
// dev inside network namespace ns; the socket stays in ns, the thread
// comes back (or, if it cannot, dies with its locked goroutine).
func packetSocketIn(ns, dev string) (int, error) {
	type result struct {
		fd  int
		err error
	}
	ch := make(chan result, 1)
	go func() { // owned: one socket, then returns
		runtime.LockOSThread()
		self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{-1, err}
			return
		}
		defer self.Close()
		target, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{-1, err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{-1, fmt.Errorf("setns %s: %w", ns, err)}
			return
		}
		fd, serr := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		ifi, ierr := net.InterfaceByName(dev)
		if unix.Setns(int(self.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		} // else: the thread ends with this goroutine, still locked
		if serr != nil || ierr != nil {
			if serr == nil {
				unix.Close(fd)
			}
			ch <- result{-1, fmt.Errorf("packet socket on %s in %s: %v %v", dev, ns, serr, ierr)}
			return
		}
		p := frame.DefaultEtherType
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: uint16(p>>8 | p<<8&0xff00), Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			ch <- result{-1, fmt.Errorf("bind packet socket: %w", err)}
			return
		}
		// Reads wake up now and then, so that stop needs no close.
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100000})
		ch <- result{fd, nil}
	}()
	r := <-ch
	return r.fd, r.err
}

// ethFlooder is the stranger on Ethernet: allocation requests from a
// forged MAC through an AF_PACKET socket, confirming every OK.
type ethFlooder struct {
	name     string
	fd       int
	src, dst frame.MAC
	st       floodStats
	quit     atomic.Bool
	wg       sync.WaitGroup
}

func (f *ethFlooder) stats() *floodStats { return &f.st }

func (f *ethFlooder) start(ctx context.Context) {
	f.wg.Add(2)
	go func() { // owned: until ctx ends
		defer f.wg.Done()
		h := frame.Header{Dst: f.dst, Src: f.src, EtherType: frame.DefaultEtherType}
		for eid := uint16(1); ctx.Err() == nil && !f.quit.Load(); eid++ {
			if eid == 0 {
				eid = 1
			}
			m := wire.Msg{Type: wire.AllocReq, Src: uint32(eid), Hash: namehash.Of(f.name), MTU: 1400, QoS: qos.Raw()}
			b := frame.Append(nil, h, m.Append(nil))
			if _, err := unix.Write(f.fd, b); err == nil {
				f.st.sent.Add(1)
				f.st.bytes.Add(uint64(len(b)))
			}
		}
	}()
	go func() { // owned: until stop
		defer f.wg.Done()
		buf := make([]byte, 2048)
		h := frame.Header{Dst: f.dst, Src: f.src, EtherType: frame.DefaultEtherType}
		for !f.quit.Load() {
			n, err := unix.Read(f.fd, buf)
			if err != nil {
				continue
			}
			hd, p, err := frame.Decode(buf[:n])
			if err != nil || hd.Dst != f.src {
				continue
			}
			f.st.back.Add(uint64(n))
			var m wire.Msg
			if err := m.Decode(p); err != nil || m.Type != wire.AllocResp || m.Status != wire.OK {
				continue
			}
			f.st.oks.Add(1)
			c := wire.Msg{Type: wire.Confirm, Src: m.Dst, Dst: m.Src}
			unix.Write(f.fd, frame.Append(nil, h, c.Append(nil)))
		}
	}()
}

func (f *ethFlooder) stop() {
	f.quit.Store(true)
	f.wg.Wait()
}
