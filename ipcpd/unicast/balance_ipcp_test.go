package unicast_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/internal/testenv"
	"github.com/ouro-net/ouro/ipcpd/unicast"
	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/pipe"
	"github.com/ouro-net/ouro/lib/qos"
)

// balanceRig is a BalanceIPCP over two local lower flows whose far ends
// are read into a per-flow record of where each flow's packets left.
type balanceRig struct {
	t  *testing.T
	b  *unicast.BalanceIPCP
	mu sync.Mutex
	// last adjacency and count of packets seen per endpoint id, and
	// packets whose label disagreed with the adjacency they left by.
	last  map[uint64]int
	count map[uint64]int
	wrong int
}

func newBalanceRig(t *testing.T) *balanceRig {
	lowers, peers := lowerPairs(t, 2)
	r := &balanceRig{t: t, b: unicast.NewBalanceIPCP([2]*flow.Flow{lowers[0], lowers[1]}),
		last: map[uint64]int{}, count: map[uint64]int{}}
	t.Cleanup(r.b.Wait)
	for i, p := range peers {
		go func() {
			buf := make([]byte, 2048)
			for {
				n, err := p.Read(buf)
				if err != nil {
					return
				}
				eid, label := unicast.PacketEID(buf[:n]), unicast.PacketLabel(buf[:n])
				r.mu.Lock()
				r.last[eid] = i
				r.count[eid]++
				if r.b.Hop(eid, label) != i {
					r.wrong++
				}
				r.mu.Unlock()
			}
		}()
	}
	return r
}

// flow adds a flow of ours; its application writes ten 1000-byte
// packets every 10 ms (about 8 Mbit/s, a busy flow) until the test ends.
// bend, if non-zero, is a pipe.Bend record the application writes first.
func (r *balanceRig) flow(eid uint64, bend uint8) {
	ipcpEnd, app, err := pipe.Pair()
	if err != nil {
		r.t.Fatal(err)
	}
	r.b.AddFlow(eid, ipcpEnd)
	stop := make(chan struct{})
	done := make(chan struct{})
	r.t.Cleanup(func() {
		close(stop)
		<-done
		app.Close()
		ipcpEnd.Close()
	})
	if bend != 0 {
		if err := app.WriteKind(pipe.Bend, []byte{bend}); err != nil {
			r.t.Fatal(err)
		}
	}
	go func() {
		defer close(done)
		pkt := make([]byte, 1000)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			for range 10 {
				if app.Write(pkt) != nil {
					return
				}
			}
		}
	}()
}

// waitFor waits until a packet of flow eid left.
func (r *balanceRig) waitFor(eid uint64) {
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, n := r.where(eid); n > 0 {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("no packet of flow %d in 20 s", eid)
		}
	}
}

func (r *balanceRig) where(eid uint64) (hop, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last[eid], r.count[eid]
}

// TestBalancerSeparatesOwnFlows: two busy flows of one member on the
// same one of two equal-cost adjacencies (the second put there by a
// bend of its own) while the other adjacency idles: the IPCP moves one
// of them onto the idle adjacency, stamping a label that hashes there,
// and then leaves them be.
func TestBalancerSeparatesOwnFlows(t *testing.T) {
	r := newBalanceRig(t)
	e := r.b.EIDsOn(0, 2)
	r.flow(e[0], 0)
	r.waitFor(e[0])
	// Placed on its own, the second flow would take adjacency 1 at
	// once (TestBalancerPlacesNewFlow); its bend puts it beside the
	// first.
	r.flow(e[1], r.b.LabelOn(e[1], 0))
	deadline := time.Now().Add(20 * time.Second)
	for {
		h0, n0 := r.where(e[0])
		h1, n1 := r.where(e[1])
		if n0 > 0 && n1 > 0 && h0 != h1 {
			break
		}
		if time.Now().After(deadline) {
			moves, bends := r.b.Moves()
			t.Fatalf("flows still share adjacency %d after 20 s (%d and %d packets; moves %d, bends %d)", h0, n0, n1, moves, bends)
		}
		time.Sleep(50 * time.Millisecond)
	}
	moves, _ := r.b.Moves()
	if moves != 1 {
		t.Fatalf("%d moves to separate two flows, want 1", moves)
	}
	// What the flow list shows: the second flow bent once (its own
	// record), one of the two was moved once more.
	l0, b0 := r.b.FlowPath(e[0])
	l1, b1 := r.b.FlowPath(e[1])
	if b0+b1 != 2 || b1 < 1 || r.b.Hop(e[0], l0) == r.b.Hop(e[1], l1) {
		t.Fatalf("flow paths: label %d with %d bends, label %d with %d bends; want 2 bends in all, on separate adjacencies", l0, b0, l1, b1)
	}
	time.Sleep(2 * time.Second)
	if again, _ := r.b.Moves(); again != moves {
		t.Fatalf("flows on separate adjacencies moved again (%d moves)", again)
	}
	h0, _ := r.where(e[0])
	h1, _ := r.where(e[1])
	if h0 == h1 {
		t.Fatalf("flows back on one adjacency (%d)", h0)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.wrong != 0 {
		t.Fatalf("%d packets left by another adjacency than their label picks", r.wrong)
	}
}

// TestBalancerPlacesNewFlow: a flow started while another busy flow of
// ours uses one adjacency leaves by the other from its first packet.
func TestBalancerPlacesNewFlow(t *testing.T) {
	r := newBalanceRig(t)
	e := r.b.EIDsOn(0, 2)
	r.flow(e[0], 0)
	r.waitFor(e[0])
	time.Sleep(1500 * time.Millisecond) // measured (the balancer ticks every 200 ms), and placed over a second ago
	r.flow(e[1], 0)
	for {
		if h, n := r.where(e[1]); n > 0 {
			if h != 1 {
				t.Fatalf("new flow left by the busy adjacency %d", h)
			}
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if h, _ := r.where(e[0]); h != 0 {
		t.Fatalf("first flow moved to adjacency %d", h)
	}
}

// TestBalancerLeavesLoneFlow: a single busy flow is never moved.
func TestBalancerLeavesLoneFlow(t *testing.T) {
	r := newBalanceRig(t)
	e := r.b.EIDsOn(1, 1)[0]
	r.flow(e, 0)
	r.waitFor(e)
	time.Sleep(2500 * time.Millisecond)
	h, n := r.where(e)
	if n == 0 || h != 1 {
		t.Fatalf("lone flow: %d packets, last on adjacency %d; want them on 1", n, h)
	}
	if moves, bends := r.b.Moves(); moves != 0 || bends != 0 {
		t.Fatalf("lone flow moved: moves %d, bends %d", moves, bends)
	}
}

// TestFlowListShowsPath: `irm flow list` shows the path label and the
// bends of a flow in a unicast layer (text and --json), and nothing for
// a flow of a layer that does not label (the udp shim's lower flows).
func TestFlowListShowsPath(t *testing.T) {
	tp := pair(t)
	l := listenAt(t, tp, "b", "svc", "a")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f, err := flow.Alloc(ctx, "svc", qos.Raw(), tp.Hosts["a"].Opt())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	g, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	var flows []ctrl.FlowStat
	out := testenv.MustRun(t, "", tp.Hosts["a"].Dir, "irm", "flow", "list", "--json")
	if err := json.Unmarshal([]byte(out), &flows); err != nil {
		t.Fatalf("flow list --json: %v\n%s", err, out)
	}
	labelled, plain := 0, 0
	for _, s := range flows {
		switch {
		case s.Layer == "net" && s.Path != nil && s.Path.Label <= 15 && s.Path.Bends == 0:
			labelled++
		case s.Layer != "net" && s.Path == nil:
			plain++
		default:
			t.Fatalf("flow %+v (path %+v)", s, s.Path)
		}
	}
	if labelled != 1 || plain == 0 {
		t.Fatalf("flow list at a: %d labelled flows in net, %d unlabelled below; want 1 and some\n%s", labelled, plain, out)
	}
	text := testenv.MustRun(t, "", tp.Hosts["a"].Dir, "irm", "flow", "list")
	if !strings.Contains(text, "LABEL/BENDS") {
		t.Fatalf("flow list has no LABEL/BENDS column:\n%s", text)
	}
	for _, line := range strings.Split(text, "\n")[1:] {
		fields := strings.Fields(line)
		if len(fields) < 3 {
			continue
		}
		want := "-"
		if fields[2] == "net" {
			want = "/0"
		}
		if !strings.HasSuffix(fields[len(fields)-2], want) {
			t.Fatalf("flow list line %q: label/bends column is not %q", line, want)
		}
	}
}
