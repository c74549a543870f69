package routing

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ouro-net/ouro/lib/clock"
)

const (
	simHoldDown = 5 * time.Millisecond
	simRefresh  = 10 * time.Second
	simMaxAge   = 40 * time.Second
)

// sim wires Routers together in one process on one fake clock. Send
// queues messages; drain delivers them in order, dropping those on links
// that are down (as a dead lower flow would).
type sim struct {
	t       testing.TB
	clk     *clock.Fake
	policy  Policy
	maxMsg  int
	routers map[uint64]*Router
	cost    map[[2]uint64]uint32 // live links, per direction

	mu    sync.Mutex
	queue []simMsg
	log   []simMsg // every message sent, for replay
	keep  bool     // fill log
	sent  int      // largest message sent
}

type simMsg struct {
	from, to uint64
	msg      []byte
}

func newSim(t testing.TB, policy Policy) *sim {
	return &sim{
		t:       t,
		clk:     clock.NewFake(time.Unix(1000, 0)),
		policy:  policy,
		routers: map[uint64]*Router{},
		cost:    map[[2]uint64]uint32{},
	}
}

// add starts a router at address a (replacing a closed one).
func (s *sim) add(a uint64) *Router {
	r, err := New(Config{
		Self: a, Policy: s.policy, Clock: s.clk, MaxMessage: s.maxMsg,
		HoldDown: simHoldDown, RefreshInterval: simRefresh, MaxAge: simMaxAge,
		Send: func(n uint64, msg []byte) {
			s.mu.Lock()
			defer s.mu.Unlock()
			m := simMsg{from: a, to: n, msg: msg}
			s.queue = append(s.queue, m)
			s.sent = max(s.sent, len(msg))
			if s.keep {
				s.log = append(s.log, m)
			}
		},
	})
	if err != nil {
		s.t.Fatal(err)
	}
	s.routers[a] = r
	return r
}

func (s *sim) connect(a, b uint64, ab, ba uint32) {
	s.cost[[2]uint64{a, b}], s.cost[[2]uint64{b, a}] = ab, ba
	s.routers[a].NeighborUp(b, ab)
	s.routers[b].NeighborUp(a, ba)
}

func (s *sim) cut(a, b uint64) {
	delete(s.cost, [2]uint64{a, b})
	delete(s.cost, [2]uint64{b, a})
	s.routers[a].NeighborDown(b)
	s.routers[b].NeighborDown(a)
}

// drain delivers queued messages until none are left and returns how
// many were delivered.
func (s *sim) drain() int {
	n := 0
	for {
		s.mu.Lock()
		if len(s.queue) == 0 {
			s.mu.Unlock()
			return n
		}
		m := s.queue[0]
		s.queue = s.queue[1:]
		s.mu.Unlock()
		if _, up := s.cost[[2]uint64{m.from, m.to}]; !up {
			continue
		}
		n++
		if err := s.routers[m.to].Receive(m.from, m.msg); err != nil {
			s.t.Fatalf("%d -> %d: %v", m.from, m.to, err)
		}
	}
}

// settle floods everything, then lets the hold-downs expire.
func (s *sim) settle() {
	for s.drain() > 0 {
		s.clk.Advance(simHoldDown)
	}
	s.clk.Advance(simHoldDown)
}

// advance moves the clock by d in small steps, draining in between.
func (s *sim) advance(d, step time.Duration) {
	for ; d > 0; d -= step {
		s.clk.Advance(min(step, d))
		s.drain()
	}
}

// truth is the SPF of the live topology, as every router should see it.
func (s *sim) truth(a uint64) Table {
	links := map[uint64][]Link{}
	for p, c := range s.cost {
		links[p[0]] = append(links[p[0]], Link{Neighbor: p[1], Cost: c})
	}
	var lsus []LSU
	for o, l := range links {
		lsus = append(lsus, LSU{Origin: o, Seq: 1, Links: l})
	}
	return SPF(NewGraph(lsus), a, s.policy)
}

// checkConverged fails unless every router's table is the truth.
func (s *sim) checkConverged(when string) {
	s.t.Helper()
	addrs := make([]uint64, 0, len(s.routers))
	for a := range s.routers {
		addrs = append(addrs, a)
	}
	slices.Sort(addrs)
	for _, a := range addrs {
		if d := diffTables(s.routers[a].Table(), s.truth(a)); d != "" {
			s.t.Fatalf("%s: router %d: %s", when, a, d)
		}
	}
}

func (s *sim) close() {
	for _, r := range s.routers {
		r.Close()
	}
}

// member returns a's view of origin o.
func member(r *Router, o uint64) (Member, bool) {
	for _, m := range r.Members() {
		if m.Addr == o {
			return m, true
		}
	}
	return Member{}, false
}
