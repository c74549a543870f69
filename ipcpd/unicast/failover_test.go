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
//
// With peers (A's neighbours towards dst, as in the square) the stream
// is first steered onto peer (flows are hashed onto next hops, so a
// flow is allocated until one goes through peer), and the test checks
// from A's per-adjacency counters that the stream really was on peer
// before the cut and on another neighbour after it: the cut hit the
// link carrying the stream, not an idle one.
func failoverRun(t *testing.T, tp *topo.Topo, dst, peer string, peers ...string) *ping.Stats {
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

	var f *flow.Flow
	if len(peers) > 0 {
		f = flowThrough(ctx, t, tp, peer, peers)
	} else {
		actx, acancel := context.WithTimeout(ctx, 10*time.Second)
		f, err = flow.Alloc(actx, "oping", qos.Raw(), tp.Hosts["a"].Opt())
		acancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	defer f.Close()

	type result struct {
		st  *ping.Stats
		err error
	}
	done := make(chan result, 1)
	_, before, err := tp.ActiveLower("a", peer, nil)
	if err != nil {
		t.Fatal(err)
	}
	var byPeer map[string]uint64
	if len(peers) > 0 {
		_, byPeer, _ = tp.ActivePeer("a", peers, nil)
	}
	go func() {
		st, err := ping.RunOn(ctx, f, ping.Config{Name: "oping", QoS: qos.Raw(), Count: 3000, Interval: time.Millisecond, Size: 64})
		done <- result{st, err}
	}()
	time.Sleep(700 * time.Millisecond)
	if len(peers) > 0 {
		on, now, err := tp.ActivePeer("a", peers, byPeer)
		if err != nil {
			t.Fatal(err)
		}
		if on != peer || now[peer]-byPeer[peer] < 200 {
			t.Fatalf("before the cut the stream is on %s (%d packets out via %s in 700 ms), not on %s", on, now[peer]-byPeer[peer], peer, peer)
		}
		byPeer = now
	}
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
	if len(peers) > 0 {
		// The cut adjacency is gone from the counters (or back, counting
		// from zero): count what every neighbour sent since the cut.
		_, now, err := tp.ActivePeer("a", peers, nil)
		if err != nil {
			t.Fatal(err)
		}
		on, most := "", uint64(0)
		for _, p := range peers {
			d := now[p]
			if d >= byPeer[p] {
				d -= byPeer[p]
			}
			if on == "" || d > most {
				on, most = p, d
			}
		}
		if on == peer || most < 1000 {
			t.Fatalf("after the cut the stream went via %s (%d packets out), want another neighbour than %s", on, most, peer)
		}
		t.Logf("the stream moved from %s to %s (%d packets out via %s after the cut)", peer, on, most, on)
	}
	return r.st
}

// flowThrough allocates a raw flow from A to "oping" that A's forwarding
// table sends through peer (one of peers): it writes a burst of
// non-probe packets (the server ignores them) on each new flow and keeps
// the one whose packets left through peer.
func flowThrough(ctx context.Context, t *testing.T, tp *topo.Topo, peer string, peers []string) *flow.Flow {
	t.Helper()
	junk := make([]byte, ping.HeaderSize) // type 0: not a probe, not echoed
	for try := 1; try <= 12; try++ {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		f, err := flow.Alloc(actx, "oping", qos.Raw(), tp.Hosts["a"].Opt())
		cancel()
		if err != nil {
			t.Fatalf("allocate oping from A: %v", err)
		}
		_, before, err := tp.ActivePeer("a", peers, nil)
		if err != nil {
			t.Fatal(err)
		}
		for range 200 {
			if _, err := f.Write(junk); err != nil {
				t.Fatalf("write: %v", err)
			}
		}
		time.Sleep(50 * time.Millisecond)
		on, now, err := tp.ActivePeer("a", peers, before)
		if err != nil {
			t.Fatal(err)
		}
		if on == peer && now[peer]-before[peer] >= 150 {
			t.Logf("flow %d goes through %s (try %d)", f.ID(), peer, try)
			return f
		}
		f.Close()
	}
	t.Fatalf("no flow from A hashed through %s in 12 tries", peer)
	return nil
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
// pings D every millisecond, each time with the stream steered onto the
// side cut (and checked to be there before, and elsewhere after).
func TestSquareFailover(t *testing.T) {
	for _, side := range []string{"b", "c"} {
		t.Run("cut a-"+side, func(t *testing.T) {
			tp := dualHomedSquare(t)
			if show, err := tp.WaitRoute("a", "d", 2, 20*time.Second); err != nil {
				t.Fatalf("%v\n%s", err, show)
			}
			st := failoverRun(t, tp, "d", side, "b", "c")
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
