package routing

import (
	"cmp"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/ouro-net/ouro/lib/clock"
)

const (
	nodeA, nodeB, nodeC, nodeD = 0xa, 0xb, 0xc, 0xd
)

// square builds A-B-D-C-A with unit costs and lets it converge.
func square(t *testing.T, p Policy) *sim {
	s := newSim(t, p)
	for _, a := range []uint64{nodeA, nodeB, nodeC, nodeD} {
		s.add(a)
	}
	s.connect(nodeA, nodeB, 1, 1)
	s.connect(nodeB, nodeD, 1, 1)
	s.connect(nodeD, nodeC, 1, 1)
	s.connect(nodeC, nodeA, 1, 1)
	s.settle()
	s.checkConverged("square")
	return s
}

func TestSquareECMP(t *testing.T) {
	s := square(t, PolicyECMP)
	defer s.close()
	got := s.routers[nodeA].Table()[nodeD]
	if got.Cost != 2 || !slices.Equal(got.NextHops, []uint64{nodeB, nodeC}) {
		t.Fatalf("A->D: %+v, want cost 2 via {B, C}", got)
	}
}

func TestWithdrawalFloodedAtOnce(t *testing.T) {
	s := square(t, PolicyECMP)
	defer s.close()
	a := s.routers[nodeA]
	before := a.Stats()
	start := s.clk.Now()

	s.cut(nodeB, nodeD)
	s.drain() // no virtual time passes
	for _, addr := range []uint64{nodeA, nodeC} {
		m, ok := member(s.routers[addr], nodeB)
		if !ok || slices.ContainsFunc(m.Links, func(l Link) bool { return l.Neighbor == nodeD }) {
			t.Fatalf("router %d still sees B-D after the flood: %+v", addr, m)
		}
	}
	if got := s.routers[nodeB].Stats().Withdrawals; got != 1 {
		t.Fatalf("B originated %d withdrawals, want 1", got)
	}
	s.clk.Advance(simHoldDown)
	s.checkConverged("after cut")
	if s.clk.Now().Sub(start) != simHoldDown {
		t.Fatalf("reconverged after %v of virtual time", s.clk.Now().Sub(start))
	}
	got := a.Table()[nodeD]
	if !slices.Equal(got.NextHops, []uint64{nodeC}) {
		t.Fatalf("A->D after cut: %+v, want via C", got)
	}
	// Both ends' withdrawals arrived in one burst: one SPF run.
	if runs := a.Stats().SPFRuns - before.SPFRuns; runs != 1 {
		t.Fatalf("A ran SPF %d times for one burst, want 1", runs)
	}
	// The link comes back.
	s.connect(nodeB, nodeD, 1, 1)
	s.settle()
	s.checkConverged("after repair")
}

func TestNeighborDownPatchesTableAtOnce(t *testing.T) {
	s := newSim(t, PolicyLFA)
	var tables []Table
	for _, a := range []uint64{nodeA, nodeB, nodeC, nodeD} {
		s.add(a)
	}
	s.routers[nodeA].Close()
	a, err := New(Config{Self: nodeA, Policy: PolicyLFA, Clock: s.clk, HoldDown: simHoldDown,
		Send: func(n uint64, msg []byte) { s.queue = append(s.queue, simMsg{nodeA, n, msg}) },
		OnTable: func(t Table) {
			tables = append(tables, t)
		}})
	if err != nil {
		t.Fatal(err)
	}
	s.routers[nodeA] = a
	defer s.close()
	// A-B 1, A-C 2, B-D 1, C-D 1: A->D via B (2), C is an LFA for D.
	s.connect(nodeA, nodeB, 1, 1)
	s.connect(nodeA, nodeC, 2, 2)
	s.connect(nodeB, nodeD, 1, 1)
	s.connect(nodeC, nodeD, 1, 1)
	s.settle()
	s.checkConverged("lfa square")
	if r := a.Table()[nodeD]; !slices.Equal(r.NextHops, []uint64{nodeB}) || !slices.Equal(r.Alternates, []uint64{nodeC}) {
		t.Fatalf("A->D: %+v, want via B with alternate C", r)
	}
	n := len(tables)
	s.cut(nodeA, nodeB) // no time passes, no message delivered
	if len(tables) != n+1 {
		t.Fatalf("NeighborDown made %d tables, want 1", len(tables)-n)
	}
	if r := tables[n][nodeD]; !slices.Equal(r.NextHops, []uint64{nodeC}) || r.Alternates != nil {
		t.Fatalf("patched A->D: %+v, want via C", r)
	}
	// C was a loop-free alternate for B too (C-D-B costs 2 < 2+1).
	if r := tables[n][nodeB]; !slices.Equal(r.NextHops, []uint64{nodeC}) {
		t.Fatalf("patched A->B: %+v, want via C", r)
	}
	s.settle()
	s.checkConverged("after cut")
	if got := tables[len(tables)-1]; !got.Equal(a.Table()) {
		t.Fatal("last OnTable is not the current table")
	}
}

func TestStaleAndMalformed(t *testing.T) {
	s := newSim(t, PolicyECMP)
	defer s.close()
	s.keep = true
	for _, a := range []uint64{nodeA, nodeB, nodeC, nodeD} {
		s.add(a)
	}
	s.connect(nodeA, nodeB, 1, 1)
	s.settle()
	var old []byte // A's first update to B
	for _, m := range s.log {
		if m.from == nodeA && m.to == nodeB {
			old = m.msg
			break
		}
	}
	s.connect(nodeA, nodeC, 1, 1)
	s.connect(nodeB, nodeD, 1, 1)
	s.settle()
	s.checkConverged("before replay")

	b := s.routers[nodeB]
	before, view := b.Stats(), b.Members()
	if err := b.Receive(nodeA, old); err != nil {
		t.Fatalf("stale LSU rejected with %v", err)
	}
	after := b.Stats()
	if after.LSUsStale != before.LSUsStale+1 || after.LSUsAccepted != before.LSUsAccepted {
		t.Fatalf("stale LSU not counted as stale: before %+v after %+v", before, after)
	}
	if !slices.EqualFunc(view, b.Members(), func(x, y Member) bool { return x.Seq == y.Seq }) {
		t.Fatal("stale LSU changed the database")
	}
	// B answered with its newer copy; A counts it as a duplicate.
	aBefore := s.routers[nodeA].Stats()
	s.settle()
	if d := s.routers[nodeA].Stats().LSUsDuplicate - aBefore.LSUsDuplicate; d != 1 {
		t.Fatalf("A saw %d duplicates after the reply, want 1", d)
	}
	s.checkConverged("after replay")

	for _, bad := range [][]byte{{0xc1}, nil, mp(t, []any{9, 1, []any{}})} {
		if err := b.Receive(nodeA, bad); !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownVersion) {
			t.Fatalf("malformed message %x: got %v", bad, err)
		}
	}
	if got := b.Stats().Malformed; got != 3 {
		t.Fatalf("Malformed = %d, want 3", got)
	}
	s.checkConverged("after malformed")
}

func TestDeadMemberAgesOut(t *testing.T) {
	s := newSim(t, PolicyECMP)
	defer s.close()
	// A ring of six; X = 6 dies.
	for a := uint64(1); a <= 6; a++ {
		s.add(a)
	}
	for a := uint64(1); a <= 6; a++ {
		s.connect(a, a%6+1, 1, 1)
	}
	s.settle()
	s.checkConverged("ring")
	const x = 6
	s.routers[x].Close()
	delete(s.routers, x)
	s.cut2(x, 1)
	s.cut2(x, 5)
	s.settle()
	s.checkConverged("after death") // routing did not wait for ageing
	if _, ok := member(s.routers[3], x); !ok {
		t.Fatal("dead member gone before MaxAge")
	}
	step := simRefresh / 4
	s.advance(simMaxAge-2*step, step)
	if _, ok := member(s.routers[3], x); !ok {
		t.Fatal("dead member gone before MaxAge")
	}
	s.advance(3*step, step)
	for a, r := range s.routers {
		ms := r.Members()
		if len(ms) != 5 || slices.ContainsFunc(ms, func(m Member) bool { return m.Addr == x }) {
			t.Fatalf("router %d members after MaxAge: %+v", a, ms)
		}
		if r.Stats().AgedOut != 1 {
			t.Fatalf("router %d aged out %d members, want 1", a, r.Stats().AgedOut)
		}
		for _, m := range ms {
			if m.Age >= simRefresh {
				t.Fatalf("router %d: member %d not refreshed (age %v)", a, m.Addr, m.Age)
			}
		}
	}
	s.settle()
	s.checkConverged("after ageing")
}

// cut2 takes down the link a-b where a is gone: only b notices.
func (s *sim) cut2(a, b uint64) {
	delete(s.cost, [2]uint64{a, b})
	delete(s.cost, [2]uint64{b, a})
	s.routers[b].NeighborDown(a)
}

func TestRestartedRouterJumpsSequence(t *testing.T) {
	s := square(t, PolicyECMP)
	defer s.close()
	for i := 0; i < 4; i++ { // the old incarnation goes well past seq 3
		s.routers[nodeA].SetCost(nodeB, uint32(2-i%2))
	}
	s.settle()
	old, _ := member(s.routers[nodeD], nodeA)
	s.routers[nodeA].Close()
	s.cut2(nodeA, nodeB)
	s.cut2(nodeA, nodeC)
	s.settle()
	a := s.add(nodeA) // restarts at sequence 1
	s.connect(nodeA, nodeB, 1, 1)
	s.connect(nodeA, nodeC, 1, 1)
	s.settle()
	s.checkConverged("after restart")
	m, _ := member(s.routers[nodeD], nodeA)
	if m.Seq <= old.Seq || len(m.Links) != 2 {
		t.Fatalf("D sees A at %+v, old incarnation was %+v", m, old)
	}
	if got, _ := member(a, nodeA); got.Seq != m.Seq {
		t.Fatalf("A is at %d, D sees %d", got.Seq, m.Seq)
	}
}

func TestSetCost(t *testing.T) {
	s := square(t, PolicyECMP)
	defer s.close()
	s.cost[[2]uint64{nodeA, nodeB}] = 5
	s.routers[nodeA].SetCost(nodeB, 5)
	s.settle()
	s.checkConverged("after SetCost")
	if r := s.routers[nodeA].Table()[nodeD]; !slices.Equal(r.NextHops, []uint64{nodeC}) {
		t.Fatalf("A->D: %+v, want via C", r)
	}
	if r := s.routers[nodeD].Table()[nodeA]; !slices.Equal(r.NextHops, []uint64{nodeB, nodeC}) {
		t.Fatalf("D->A: %+v, want via B and C (B->A still costs 1)", r)
	}
	seq := s.routers[nodeA].Stats().Originated
	s.routers[nodeA].SetCost(nodeB, 5) // unchanged
	s.routers[nodeA].SetCost(0x99, 7)  // not a neighbour
	s.routers[nodeA].NeighborUp(0, 1)  // invalid
	s.routers[nodeA].NeighborUp(nodeA, 1)
	if got := s.routers[nodeA].Stats().Originated; got != seq {
		t.Fatalf("no-op events originated %d LSUs", got-seq)
	}
}

func TestRandomNetwork(t *testing.T) {
	// ecmp on ~200 nodes, lfa (the same engine plus alternates) on 60.
	for _, c := range []struct {
		n int
		p Policy
	}{{200, PolicyECMP}, {60, PolicyLFA}} {
		rng := rand.New(rand.NewPCG(5, uint64(c.n)))
		tg := randomGraph(rng, c.n, 3, 3)
		s := newSim(t, c.p)
		for _, a := range tg.addrs {
			s.add(a)
		}
		var links [][2]uint64
		for e, cost := range tg.cost {
			if e[0] < e[1] {
				a, b := tg.addrs[e[0]], tg.addrs[e[1]]
				links = append(links, [2]uint64{a, b})
				s.connect(a, b, cost, tg.cost[[2]int{e[1], e[0]}])
			}
		}
		s.settle()
		s.checkConverged("random network")
		slices.SortFunc(links, func(x, y [2]uint64) int { return cmp.Compare(x[0]^x[1], y[0]^y[1]) })
		for _, l := range links[:5] {
			s.cut(l[0], l[1])
		}
		s.settle()
		s.checkConverged("after cutting 5 links")
		var msgs, runs uint64
		for _, r := range s.routers {
			msgs += r.Stats().MessagesReceived
			runs += r.Stats().SPFRuns
		}
		t.Logf("%v on %d nodes, %d links: %d messages, %d SPF runs", c.p, c.n, len(links), msgs, runs)
		s.close()
	}
}

func TestSyncSplitsMessages(t *testing.T) {
	s := newSim(t, PolicyECMP)
	defer s.close()
	s.maxMsg = 150
	for a := uint64(1); a <= 12; a++ {
		s.add(a)
	}
	for a := uint64(1); a < 12; a++ {
		s.connect(a, a%11+1, 1, 1)
	}
	s.settle()
	syncs := s.routers[12].Stats()
	s.connect(12, 5, 1, 1)
	s.settle()
	s.checkConverged("after the late joiner")
	if got := s.routers[12].Stats().MessagesReceived - syncs.MessagesReceived; got < 6 { // two 2-link LSUs fit in 150 bytes
		t.Fatalf("sync of 11 LSUs came in %d messages", got)
	}
	if s.sent > s.maxMsg {
		t.Fatalf("sent a %d-byte message, limit %d", s.sent, s.maxMsg)
	}
}

func TestDirectDeliveryReentrant(t *testing.T) {
	// Send calls the peer's Receive synchronously and OnTable calls back
	// into the router: callbacks must run without locks held.
	clk := clock.NewFake(time.Unix(0, 0))
	routers := map[uint64]*Router{}
	cost := map[[2]uint64]bool{}
	for _, a := range []uint64{nodeA, nodeB, nodeC, nodeD} {
		var r *Router
		r, err := New(Config{Self: a, Clock: clk,
			Send: func(n uint64, msg []byte) {
				if cost[[2]uint64{a, n}] {
					if err := routers[n].Receive(a, msg); err != nil {
						t.Error(err)
					}
				}
			},
			OnTable: func(Table) { _ = r.Table(); _ = r.Stats(); _ = r.Members() },
		})
		if err != nil {
			t.Fatal(err)
		}
		routers[a] = r
		defer r.Close()
	}
	for _, l := range [][2]uint64{{nodeA, nodeB}, {nodeB, nodeD}, {nodeD, nodeC}, {nodeC, nodeA}} {
		cost[l], cost[[2]uint64{l[1], l[0]}] = true, true
		routers[l[0]].NeighborUp(l[1], 1)
		routers[l[1]].NeighborUp(l[0], 1)
	}
	clk.Advance(time.Second)
	if r := routers[nodeA].Table()[nodeD]; !slices.Equal(r.NextHops, []uint64{nodeB, nodeC}) {
		t.Fatalf("A->D: %+v", r)
	}
}

func TestNewValidates(t *testing.T) {
	for _, c := range []Config{
		{},
		{Self: 1, Policy: 9},
		{Self: 1, RefreshInterval: time.Minute, MaxAge: time.Minute},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
	r, err := New(Config{Self: 1, RefreshInterval: time.Hour, Clock: clock.NewFake(time.Unix(0, 0))})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	r.Close()
	if err := r.Receive(2, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Receive after Close: %v", err)
	}
}
