package unicast_test

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/flow/ping"
	"github.com/ouro-net/ouro/internal/testenv"
	"github.com/ouro-net/ouro/internal/topo"
	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/qos"
)

// flapFigures are the figures the flapping test compares before and
// after: goroutines, heap (KiB), SPF runs and adjacencies up.
func flapFigures(t *testing.T, dir string) (g, h, spf, up int) {
	t.Helper()
	st, u := netStatus(t, dir, "net")
	return st.Process.Goroutines, int(st.Process.HeapBytes >> 10), int(u.Counters.SPFRuns), int(u.Counters.AdjUp)
}

// TestFlappingLinkNetns flaps one of two parallel veth links between A
// and B every ~10 ms for 10 s (carrier loss each time) while A pings B:
// the table must stay usable (the other link carries on), damping must
// hold the flapping flow out (it returns a handful of times, not once per
// flap) and keep SPF runs few, and the unicast IPCP's goroutines and heap
// flat.
func TestFlappingLinkNetns(t *testing.T) {
	testenv.RequireRoot(t)
	nsA, nsB := testenv.NetNS(t), testenv.NetNS(t)
	a1, b1 := testenv.Veth(t, nsA, nsB)
	a2, b2 := testenv.Veth(t, nsA, nsB)
	dirA, _ := testenv.StartDaemon(t, nsA)
	dirB, _ := testenv.StartDaemon(t, nsB)
	irm := func(ns, dir string, args ...string) { testenv.MustRun(t, ns, dir, "irm", args...) }
	irm(nsA, dirA, "ipcp", "bootstrap", "type", "eth-dix", "name", "ea1", "layer", "l1", "dev", a1)
	irm(nsA, dirA, "ipcp", "bootstrap", "type", "eth-dix", "name", "ea2", "layer", "l2", "dev", a2)
	irm(nsB, dirB, "ipcp", "bootstrap", "type", "eth-dix", "name", "eb1", "layer", "l1", "dev", b1)
	irm(nsB, dirB, "ipcp", "bootstrap", "type", "eth-dix", "name", "eb2", "layer", "l2", "dev", b2)
	irm(nsA, dirA, "ipcp", "bootstrap", "type", "unicast", "name", "a", "layer", "net", "autobind", "multiplier", "10")
	irm(nsA, dirA, "name", "register", "a", "layer", "l1", "layer", "l2")
	irm(nsA, dirA, "name", "register", "net", "layer", "l1", "layer", "l2")
	irm(nsB, dirB, "ipcp", "create", "type", "unicast", "name", "b")
	irm(nsB, dirB, "ipcp", "enroll", "name", "b", "layer", "net", "dst", "a", "autobind")
	irm(nsB, dirB, "name", "register", "b", "layer", "l1", "layer", "l2")
	irm(nsB, dirB, "ipcp", "connect", "name", "b", "dst", "a")
	irm(nsB, dirB, "name", "register", "oping", "layer", "net")

	deadline := time.Now().Add(20 * time.Second)
	var u *ctrl.UnicastStatus
	for time.Now().Before(deadline) {
		_, u = netStatus(t, dirA, "net")
		if topo.RouteNextHops(u, "b") == 2 && knowsName(u, "oping") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if topo.RouteNextHops(u, "b") != 2 {
		info, _ := layerInfo(dirA, "net")
		t.Fatalf("no two parallel next hops:\n%s", info.Render())
	}
	l, err := flow.Listen("oping", flow.WithRunDir(dirB))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ping.Serve(ctx, l, nil)

	// Warm up, then take the baseline.
	if _, err := ping.Run(ctx, ping.Config{Name: "oping", QoS: qos.Raw(), Count: 200, Interval: time.Millisecond,
		Opts: []flow.Option{flow.WithRunDir(dirA)}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	g0, h0, spf0, up0 := flapFigures(t, dirA)

	type result struct {
		st  *ping.Stats
		err error
	}
	done := make(chan result, 1)
	go func() {
		st, err := ping.Run(ctx, ping.Config{Name: "oping", QoS: qos.Raw(), Count: 11000, Interval: time.Millisecond,
			Opts: []flow.Option{flow.WithRunDir(dirA)}})
		done <- result{st, err}
	}()
	flaps := 0
	end := time.Now().Add(10 * time.Second)
	for time.Now().Before(end) {
		for _, state := range []string{"down", "up"} {
			if out, err := exec.Command("ip", "-n", nsA, "link", "set", a1, state).CombinedOutput(); err != nil {
				t.Fatalf("flap: %v %s", err, out)
			}
			time.Sleep(5 * time.Millisecond)
		}
		flaps++
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("flow failed while a parallel link flapped: %v", r.err)
	}
	time.Sleep(2 * time.Second)
	g1, h1, spf1, up1 := flapFigures(t, dirA)
	lost := r.st.Transmitted - r.st.Received
	t.Logf("%d flaps in 10 s: ping %d sent, %d lost, longest gap %.1f ms; SPF runs %d; adjacency returns %d; goroutines %d -> %d; heap %d -> %d KiB",
		flaps, r.st.Transmitted, lost, r.st.LongestGapMS, spf1-spf0, up1-up0, g0, g1, h0, h1)
	// Damping holds the flapping flow back 1, 2, 4, 8 s after its first
	// flaps: in 10 s it may return a handful of times, not once per flap
	// (without damping it returns after every one).
	if up1-up0 > 20 {
		t.Errorf("the flapping lower flow returned %d times in %d flaps: damping did not hold it out", up1-up0, flaps)
	}
	if lost > r.st.Transmitted/10 {
		t.Errorf("lost %d of %d while one of two links flapped", lost, r.st.Transmitted)
	}
	if spf1-spf0 > flaps/4+20 {
		t.Errorf("%d SPF runs for %d flaps: damping did not hold the flapping link out", spf1-spf0, flaps)
	}
	if g1 > g0+10 {
		t.Errorf("goroutines grew from %d to %d", g0, g1)
	}
	if h1 > 2*h0+4096 {
		t.Errorf("heap grew from %d to %d KiB", h0, h1)
	}
}
