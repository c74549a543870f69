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

// failoverRun streams 1 ms pings from "a" to name at dst, cuts the
// lower IPCP under the adjacency a->peer that carries the stream, and
// returns the stats. The flow must survive with no error.
func failoverRun(t *testing.T, tp *topo.Topo, dst, peer string) *ping.Stats {
	t.Helper()
	if err := tp.Register(dst, "oping"); err != nil {
		t.Fatal(err)
	}
	l, err := flow.Listen("oping", tp.Hosts[dst].Opt())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ping.Serve(ctx, l, nil)
	defer l.Close()
	waitDirectory(t, tp, "a", "oping")

	type result struct {
		st  *ping.Stats
		err error
	}
	done := make(chan result, 1)
	_, before, err := tp.ActiveLower("a", peer, nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		st, err := ping.Run(ctx, ping.Config{Name: "oping", QoS: qos.Raw(), Count: 3000, Interval: time.Millisecond,
			Size: 64, Opts: []flow.Option{tp.Hosts["a"].Opt()}})
		done <- result{st, err}
	}()
	time.Sleep(700 * time.Millisecond)
	lower, _, err := tp.ActiveLower("a", peer, before)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := tp.LowerPID("a", lower)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cutting a's link to %s: killing the udp%d IPCP (pid %d)", peer, lower+1, pid)
	syscall.Kill(pid, syscall.SIGKILL)
	r := <-done
	if r.err != nil {
		t.Fatalf("flow failed across the cut: %v", r.err)
	}
	return r.st
}

// TestParallelLinksFailover joins A and B by two parallel adjacencies
// over two separate udp layers and cuts the one carrying a 1 ms stream.
func TestParallelLinksFailover(t *testing.T) {
	tp := build(t, topo.Config{Hosts: []string{"a", "b"}, Links: [][2]string{{"b", "a"}}, Lowers: 2})
	waitRoute(t, tp, "a", "b", 2)
	st := failoverRun(t, tp, "b", "b")
	t.Logf("parallel links: %d sent, %d lost, longest gap %.1f ms", st.Transmitted, st.Transmitted-st.Received, st.LongestGapMS)
	if lost := st.Transmitted - st.Received; lost > maxLost {
		t.Fatalf("lost %d of %d packets across the cut", lost, st.Transmitted)
	}
}

// TestSquareFailover cuts A's link on either side of the square while A
// pings D every millisecond.
func TestSquareFailover(t *testing.T) {
	for _, side := range []string{"b", "c"} {
		t.Run("cut a-"+side, func(t *testing.T) {
			tp := dualHomedSquare(t)
			if show, err := tp.WaitRoute("a", "d", 2, 20*time.Second); err != nil {
				t.Fatalf("%v\n%s", err, show)
			}
			st := failoverRun(t, tp, "d", side)
			t.Logf("square, cut a-%s: %d sent, %d lost, longest gap %.1f ms", side, st.Transmitted, st.Transmitted-st.Received, st.LongestGapMS)
			if lost := st.Transmitted - st.Received; lost > maxLost {
				t.Fatalf("lost %d of %d packets across the cut", lost, st.Transmitted)
			}
		})
	}
}

// dualHomedSquare is the square with a lower layer per link: A reaches
// B and C through two different lower IPCPs, as a host with two links.
func dualHomedSquare(t *testing.T) *topo.Topo {
	t.Helper()
	return build(t, topo.Config{Hosts: []string{"a", "b", "c", "d"}, Links: squareLinks, PerLink: true})
}

// TestPartitionReportsDown cuts the only link between A and B: A's flow
// must report DOWN (not black-hole silently), and UP once the link is
// restored.
func TestPartitionReportsDown(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tp := build(t, topo.Config{Hosts: []string{"a", "b"}, Links: [][2]string{{"b", "a"}}, PerLink: true})
	waitRoute(t, tp, "a", "b", 1)
	listenAt(t, tp, "b", "sink", "a")
	f, err := flow.Alloc(ctx, "sink", qos.Raw(), tp.Hosts["a"].Opt())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, err := f.Read(buf); err != nil {
				return
			}
		}
	}()
	expect := func(want flow.State) {
		t.Helper()
		select {
		case ev := <-f.Events():
			if ev.State != want {
				t.Fatalf("flow reported %v, want %v", ev.State, want)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("flow did not report %v", want)
		}
	}
	start := time.Now()
	if _, err := tp.Cut("a", "b", false); err != nil {
		t.Fatal(err)
	}
	expect(flow.Down)
	t.Logf("DOWN %v after the cut", time.Since(start).Round(time.Millisecond))
	if f.State() != flow.Down {
		t.Fatal("State() does not say down")
	}
	if err := tp.Restore("a", "b"); err != nil {
		t.Fatal(err)
	}
	expect(flow.Up)
	if f.State() != flow.Up {
		t.Fatal("State() does not say up after the restore")
	}
}

// maxLost bounds the packets a 1 ms stream may lose across a cut. The
// cut side learns at once; the far side by keepalive, after hello ×
// multiplier = 10 ms × 10 = 100 ms with testParams. The bound allows
// three detection times plus 300 ms for a loaded, shared machine:
// generous, but it still fails a flow that stays on a dead path.
const maxLost = 3*100 + 300
