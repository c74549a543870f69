package unicast_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/flow/ping"
	"github.com/ouro-net/ouro/internal/topo"
	"github.com/ouro-net/ouro/lib/qos"
)

// TestSilentFailure stops (SIGSTOP) B's unicast IPCP, joined to A by
// two parallel lower flows: the flows neither close nor report carrier
// loss (B's lower IPCPs run on), they only go silent, so A must find
// both by keepalive and take B out of its forwarding table. Once B runs
// again (SIGCONT) it is heard, and both flows come back.
func TestSilentFailure(t *testing.T) {
	tp := build(t, topo.Config{Hosts: []string{"a", "b"}, Links: [][2]string{{"b", "a"}}, Lowers: 2})
	waitRoute(t, tp, "a", "b", 2)
	ipcps, err := tp.IPCPs("b")
	if err != nil {
		t.Fatal(err)
	}
	pid := 0
	for _, i := range ipcps {
		if i.Type == "unicast" {
			pid = i.PID
		}
	}
	if pid == 0 {
		t.Fatalf("no unicast IPCP at B: %+v", ipcps)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("stop B's unicast IPCP: %v", err)
	}
	stopped := true
	cont := func() {
		if stopped {
			stopped = false
			if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
				t.Errorf("continue B's unicast IPCP: %v", err)
			}
		}
	}
	t.Cleanup(cont)
	deadline := time.Now().Add(20 * time.Second)
	n := -1
	for time.Now().Before(deadline) {
		st, err := tp.Status("a")
		if err != nil {
			t.Fatal(err)
		}
		if n = topo.RouteNextHops(st, "b"); n == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n != 0 {
		show, _ := tp.Show("a")
		t.Fatalf("A still routes to B over %d flows while B is silent\n%s", n, show)
	}
	cont()
	waitRoute(t, tp, "a", "b", 2)
}

// unicastPID returns the pid of host's unicast IPCP.
func unicastPID(t *testing.T, tp *topo.Topo, host string) int {
	t.Helper()
	ipcps, err := tp.IPCPs(host)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ipcps {
		if i.Type == "unicast" {
			return i.PID
		}
	}
	t.Fatalf("no unicast IPCP at %s: %+v", host, ipcps)
	return 0
}

// stopFor stops pid (SIGSTOP) for d and continues it (SIGCONT), also if
// the test fails meanwhile.
func stopFor(t *testing.T, pid int, d time.Duration, during func()) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("stop %d: %v", pid, err)
	}
	defer func() {
		if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
			t.Errorf("continue %d: %v", pid, err)
		}
	}()
	end := time.Now().Add(d)
	if during != nil {
		during()
	}
	time.Sleep(time.Until(end))
}

// withdrawals sums the withdrawals hosts flooded.
func withdrawals(t *testing.T, tp *topo.Topo, hosts ...string) uint64 {
	t.Helper()
	var n uint64
	for _, h := range hosts {
		n += hardening(t, tp, h).Withdrawals
	}
	return n
}

// TestStarvedHost is the SIGSTOP drill of issue 16, in the square with
// the default liveness (hello 10 ms x 3) and a 1 ms stream from A to D:
// the unicast IPCP of the neighbour X carrying the stream is stopped
// for 40 ms (its neighbours may steer around it, but must flood no
// withdrawal, and route to it again once it runs), then for 2 s (it is
// withdrawn, flooded by its neighbours, and comes back cleanly: routes
// to it and through it again). The bounds are loose: the figures are in
// `go run ./bench -stall`.
func TestStarvedHost(t *testing.T) {
	tp := build(t, topo.Config{Hosts: []string{"a", "b", "c", "d"}, Links: squareLinks, PerLink: true,
		Params: map[string]string{}})
	waitRoute(t, tp, "a", "d", 2)
	serveEcho(t, tp, "d", "echo", "a")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f, err := flow.Alloc(ctx, "echo", qos.Raw(), tp.Hosts["a"].Opt())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, before, err := tp.ActivePeer("a", []string{"b", "c"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { // ends with the stream's duration or the context
		defer close(done)
		ping.RunOn(ctx, f, ping.Config{Name: "echo", Size: 64, Interval: time.Millisecond, Duration: 8 * time.Second})
	}()
	defer func() { f.Close(); <-done }()
	time.Sleep(300 * time.Millisecond)
	x, _, err := tp.ActivePeer("a", []string{"b", "c"}, before)
	if err != nil {
		t.Fatal(err)
	}
	pid := unicastPID(t, tp, x)
	nbrs := []string{"a", "d"}

	// 40 ms: no withdrawal flooded about X, routes to X come back.
	w0 := withdrawals(t, tp, nbrs...)
	stopFor(t, pid, 40*time.Millisecond, nil)
	time.Sleep(time.Second) // well past the withdrawal hold (300 ms)
	for _, h := range nbrs {
		waitRoute(t, tp, h, x, 1)
	}
	if w := withdrawals(t, tp, nbrs...); w != w0 {
		show, _ := tp.Show("a")
		t.Fatalf("a 40 ms stall of %s made its neighbours flood %d withdrawals\n%s", x, w-w0, show)
	}

	// 2 s: withdrawn (flooded by both neighbours), then back.
	steered := false
	stopFor(t, pid, 2*time.Second, func() {
		deadline := time.Now().Add(1800 * time.Millisecond)
		for time.Now().Before(deadline) && !steered {
			st, err := tp.Status("a")
			steered = err == nil && topo.RouteNextHops(st, x) == 0
			time.Sleep(20 * time.Millisecond)
		}
	})
	if !steered {
		t.Errorf("A still routed to %s over its flow while %s was stopped for 2 s", x, x)
	}
	if w := withdrawals(t, tp, nbrs...); w < w0+2 {
		show, _ := tp.Show("a")
		t.Fatalf("a 2 s stall of %s: %d withdrawals flooded by its neighbours, want 2\n%s", x, w-w0, show)
	}
	for _, h := range nbrs {
		waitRoute(t, tp, h, x, 1)
	}
	waitRoute(t, tp, "a", "d", 2)
	waitRoute(t, tp, "d", "a", 2)
}
