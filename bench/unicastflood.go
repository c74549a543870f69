package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ouro-net/ouro/dt"
	"github.com/ouro-net/ouro/enroll"
	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/flow/ping"
	"github.com/ouro-net/ouro/internal/topo"
	"github.com/ouro-net/ouro/layer"
	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/qos"
)

// The -unicastflood mode: a member's flow-request flood. Three
// hosts a-b-c (udp1 under net). An intruder in this process opens an
// adjacency to b, as any member can, and for -d (default 30 s) sends b
// flow-allocation requests for a name b serves ("svc"), each with a new
// endpoint id, as fast as its lower flow takes them (from a thread at
// nice 19: the attacker models a member on another machine, not a
// process taking the honest ones' CPU), reading and dropping b's
// answers. Meanwhile a pings c ("echo", through b) every
// millisecond, allocates one flow to b's "svc" each second, and `irm
// layer show net` and `irm flow list` are asked of b every 200 ms. The
// figures: b's unicast IPCP's RSS, descriptors, goroutines, heap and
// incoming flows each second, ping loss, honest allocations, show and
// flow-list latency, and b's refusal counters.

// UnicastFloodSample is one second of the flood at b.
type UnicastFloodSample struct {
	ElapsedS   float64 `json:"elapsed_s"`
	RSSKB      int64   `json:"rss_kb"`
	FDs        int     `json:"fds"`
	Goroutines int     `json:"goroutines"`
	HeapKB     int     `json:"heap_kb"`
	Incoming   int     `json:"incoming_flows"`
	Refused    int     `json:"refused"`
	Sent       uint64  `json:"requests_sent"`
}

// UnicastFloodResult is a -unicastflood run.
type UnicastFloodResult struct {
	Started     time.Time            `json:"started"`
	GoVersion   string               `json:"go_version"`
	CPUs        int                  `json:"cpus"`
	DurationS   float64              `json:"duration_s"`
	Requests    uint64               `json:"requests_sent"`
	Ping        ping.Stats           `json:"ping"`
	AllocsOK    int                  `json:"honest_allocs_ok"`
	AllocsFail  int                  `json:"honest_allocs_failed"`
	AllocErrors []string             `json:"honest_alloc_errors,omitempty"`
	AllocMaxMS  float64              `json:"honest_alloc_max_ms"`
	Shows       int                  `json:"shows"`
	ShowFail    int                  `json:"shows_failed"`
	ShowMaxMS   float64              `json:"show_max_ms"`
	FlowListMax float64              `json:"flow_list_max_ms"`
	RSSStartKB  int64                `json:"rss_start_kb"`
	RSSMaxKB    int64                `json:"rss_max_kb"`
	FDStart     int                  `json:"fds_start"`
	FDMax       int                  `json:"fds_max"`
	GorMax      int                  `json:"goroutines_max"`
	HeapMaxKB   int                  `json:"heap_max_kb"`
	IncomingMax int                  `json:"incoming_flows_max"`
	Refused     int                  `json:"refused"`
	Samples     []UnicastFloodSample `json:"samples"`
	Pass        bool                 `json:"pass"`
	Verdict     string               `json:"verdict"`
}

// unicastFloodRun runs the -unicastflood mode.
func unicastFloodRun(ctx context.Context, e *env, d time.Duration, out, progress io.Writer) (*UnicastFloodResult, error) {
	res := &UnicastFloodResult{Started: time.Now(), GoVersion: runtime.Version(), CPUs: runtime.NumCPU(), DurationS: d.Seconds()}
	fmt.Fprintln(progress, "bench: unicastflood: setting up a-b-c (udp1, net)")
	tp, err := e.topo(ctx, []string{"a", "b", "c"}, [][2]string{{"b", "a"}, {"c", "b"}}, false)
	if err != nil {
		return nil, err
	}
	defer tp.Close()
	if _, err := tp.WaitRoute("a", "c", 1, 20*time.Second); err != nil {
		return nil, err
	}
	sctx, stopServers := context.WithCancel(ctx)
	defer stopServers()
	for _, s := range [][2]string{{"b", "svc"}, {"c", "echo"}} {
		if err := tp.Register(s[0], s[1]); err != nil {
			return nil, err
		}
		l, err := flow.Listen(s[1], tp.Hosts[s[0]].Opt())
		if err != nil {
			return nil, err
		}
		defer l.Close()
		go ping.Serve(sctx, l, nil)
	}
	dirB := tp.Hosts["b"].Dir
	show := func() (ctrl.LayerInfo, time.Duration, error) {
		start := time.Now()
		var info ctrl.LayerInfo
		err := topo.Call(dirB, ctrl.OpLayerShow, ctrl.LayerShow{Layer: "net"}, &info)
		return info, time.Since(start), err
	}
	info, _, err := show()
	if err != nil {
		return nil, err
	}
	u, err := topo.UnicastOf(info)
	if err != nil {
		return nil, err
	}
	self := u.Self()
	if self.Addr == 0 {
		return nil, fmt.Errorf("no address for b in:\n%s", info.Render())
	}
	bAddr := self.Addr
	var pid int
	ipcps, err := tp.IPCPs("b")
	if err != nil {
		return nil, err
	}
	for _, i := range ipcps {
		if i.Name == "b" {
			pid = i.PID
		}
	}
	optsA := []flow.Option{tp.Hosts["a"].Opt()}
	for _, n := range []string{"svc", "echo"} {
		c, err := allocRetry(ctx, n, optsA)
		if err != nil {
			return nil, err
		}
		c.Close()
	}
	res.RSSStartKB, _ = readRSS(pid)
	res.FDStart = countFDs(pid)

	// The intruder.
	actx, cancel := context.WithTimeout(ctx, 20*time.Second)
	f, err := flow.Alloc(actx, "b", qos.Raw(), tp.Hosts["a"].Opt(), flow.WithLayer("udp1"))
	if err != nil {
		cancel()
		return nil, err
	}
	defer f.Close()
	const intruder = 0xabcd
	var reply enroll.Hello
	err = enroll.Exchange(actx, f, 1, enroll.Hello{V: enroll.Version, Addr: intruder, IPCP: "intruder", Layer: "net"}, &reply)
	cancel()
	if err != nil || reply.Err != "" {
		return nil, fmt.Errorf("intruder hello: %v %s", err, reply.Err)
	}
	fmt.Fprintf(progress, "bench: unicastflood: flooding b with flow requests for %v\n", d)
	fctx, stopFlood := context.WithTimeout(ctx, d)
	defer stopFlood()
	var sent atomic.Uint64
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { // keepalive and answers
		defer wg.Done()
		tk := time.NewTicker(5 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-fctx.Done():
				return
			case <-tk.C:
				f.Write([]byte{1})
			}
		}
	}()
	go func() {
		defer wg.Done()
		buf := make([]byte, 65536)
		for fctx.Err() == nil {
			f.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			f.Read(buf)
		}
	}()
	go func() {
		defer wg.Done()
		// The attacker runs on this machine's CPUs, but models a member
		// elsewhere: its thread runs at the lowest priority, so that
		// what it measures is what the flood does to b, not how much
		// CPU the flooder takes from the honest processes.
		runtime.LockOSThread()
		unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), 19)
		layout := dt.DefaultLayout()
		for eid := uint64(1); fctx.Err() == nil; eid++ {
			body, _ := layer.EncodeFA(&layer.FAMsg{Type: layer.FARequest, SrcAddr: intruder, SrcEID: eid, Name: "svc", QoS: qos.Raw()})
			pkt := make([]byte, 1+layout.Len(), 1+layout.Len()+len(body))
			layout.Encode(pkt[1:], &dt.PCI{Dst: bAddr, TTL: 60})
			f.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			if _, err := f.Write(append(pkt, body...)); err == nil {
				sent.Add(1)
			}
		}
	}()

	pinged := make(chan error, 1)
	go func() {
		st, err := ping.Run(fctx, ping.Config{Name: "echo", QoS: qos.Raw(), Count: int(d / time.Millisecond), Interval: time.Millisecond,
			Opts: optsA})
		if st != nil {
			res.Ping = *st
		}
		pinged <- err
	}()
	var shows, lists []time.Duration
	start := time.Now()
	nextSample, nextAlloc := start.Add(time.Second), start.Add(time.Second)
	for fctx.Err() == nil {
		time.Sleep(200 * time.Millisecond)
		info, took, err := show()
		res.Shows++
		if err != nil {
			res.ShowFail++
		}
		shows = append(shows, took)
		t0 := time.Now()
		var fl ctrl.FlowList
		if topo.Call(dirB, ctrl.OpFlowList, nil, &fl) == nil {
			lists = append(lists, time.Since(t0))
		}
		now := time.Now()
		if now.After(nextAlloc) {
			nextAlloc = nextAlloc.Add(time.Second)
			actx, cancel := context.WithTimeout(ctx, 10*time.Second)
			c, err := flow.Alloc(actx, "svc", qos.Raw(), optsA...)
			cancel()
			if err != nil {
				res.AllocsFail++
				res.AllocErrors = append(res.AllocErrors, err.Error())
			} else {
				res.AllocsOK++
				c.Close()
			}
			res.AllocMaxMS = max(res.AllocMaxMS, ms(time.Since(now)))
		}
		if now.After(nextSample) {
			nextSample = nextSample.Add(time.Second)
			s := UnicastFloodSample{ElapsedS: now.Sub(start).Seconds(), FDs: countFDs(pid), Sent: sent.Load()}
			s.RSSKB, _ = readRSS(pid)
			if u, err := topo.UnicastOf(info); err == nil {
				s.Refused = int(u.Counters.FARefused)
				s.Incoming = u.Counters.IncomingFlows
				s.Goroutines = info.Status.Process.Goroutines
				s.HeapKB = int(info.Status.Process.HeapBytes >> 10)
			}
			res.Samples = append(res.Samples, s)
			fmt.Fprintf(progress, "bench: unicastflood: %4.0fs sent %d, refused %d, incoming %d, rss %.1f MiB, fds %d, goroutines %d, show %.1f ms\n",
				s.ElapsedS, s.Sent, s.Refused, s.Incoming, mib(s.RSSKB), s.FDs, s.Goroutines, ms(took))
		}
	}
	stopFlood()
	wg.Wait()
	<-pinged
	res.Requests = sent.Load()
	sort.Slice(shows, func(i, j int) bool { return shows[i] < shows[j] })
	sort.Slice(lists, func(i, j int) bool { return lists[i] < lists[j] })
	if len(shows) > 0 {
		res.ShowMaxMS = ms(shows[len(shows)-1])
	}
	if len(lists) > 0 {
		res.FlowListMax = ms(lists[len(lists)-1])
	}
	for _, s := range res.Samples {
		res.RSSMaxKB = max(res.RSSMaxKB, s.RSSKB)
		res.FDMax = max(res.FDMax, s.FDs)
		res.GorMax = max(res.GorMax, s.Goroutines)
		res.HeapMaxKB = max(res.HeapMaxKB, s.HeapKB)
		res.IncomingMax = max(res.IncomingMax, s.Incoming)
		res.Refused = max(res.Refused, s.Refused)
	}
	res.judge()
	res.print(out)
	return res, nil
}

// judge applies the flood verdict limits (as -flood does).
func (r *UnicastFloodResult) judge() {
	var bad []string
	if r.Ping.Transmitted == 0 || r.Ping.LossPct >= floodMaxLossPct {
		bad = append(bad, fmt.Sprintf("ping loss %.2f%% of %d", r.Ping.LossPct, r.Ping.Transmitted))
	}
	if r.RSSMaxKB >= floodMaxRSSKB {
		bad = append(bad, fmt.Sprintf("RSS %.1f MiB", mib(r.RSSMaxKB)))
	}
	if r.ShowMaxMS >= ms(floodMaxShow) || r.ShowFail > 0 || r.FlowListMax >= ms(floodMaxShow) {
		bad = append(bad, fmt.Sprintf("show max %.1f ms (%d failed), flow list max %.1f ms", r.ShowMaxMS, r.ShowFail, r.FlowListMax))
	}
	if r.AllocsFail > 0 {
		bad = append(bad, fmt.Sprintf("%d honest allocations failed", r.AllocsFail))
	}
	r.Pass = len(bad) == 0
	r.Verdict = "PASS"
	if !r.Pass {
		r.Verdict = "FAIL: " + fmt.Sprint(bad)
	}
}

func (r *UnicastFloodResult) print(w io.Writer) {
	fmt.Fprintf(w, "\nunicast flood: %d flow requests in %.0f s (%.0f/s) from one member\n", r.Requests, r.DurationS,
		float64(r.Requests)/r.DurationS)
	fmt.Fprintf(w, "b:       refused %d, incoming flows max %d, RSS %.1f -> %.1f MiB max, fds %d -> %d max, goroutines max %d, heap max %.1f MiB\n",
		r.Refused, r.IncomingMax, mib(r.RSSStartKB), mib(r.RSSMaxKB), r.FDStart, r.FDMax, r.GorMax, float64(r.HeapMaxKB)/1024)
	fmt.Fprintf(w, "ping:    a to c through b: %d sent, %d received, %.3f%% loss, rtt median %.3f ms p99 %.3f ms\n",
		r.Ping.Transmitted, r.Ping.Received, r.Ping.LossPct, r.Ping.MedianMS, r.Ping.P99MS)
	fmt.Fprintf(w, "allocs:  a to b's name: %d ok, %d failed (slowest %.1f ms) %v\n", r.AllocsOK, r.AllocsFail, r.AllocMaxMS, r.AllocErrors)
	fmt.Fprintf(w, "show:    %d asked, %d failed, max %.1f ms; flow list max %.1f ms\n\n%s\n", r.Shows, r.ShowFail, r.ShowMaxMS,
		r.FlowListMax, r.Verdict)
}
