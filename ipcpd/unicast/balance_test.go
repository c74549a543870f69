package unicast

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/ouro-net/ouro/dt"
)

// The balancer in virtual time: a simulated member with two equal-cost
// next hops (ids 7 and 8) to member 2, each a 100 Mbit/s bottleneck
// shared max-min fairly by the flows hashed onto it (plus transit load
// that is not ours), measured the way the IPCP measures them.

const simCap = 100e6 / 8 // bytes/s of each next hop

type simFlow struct {
	eid    uint64
	label  uint8
	demand float64 // bytes/s; 0 = as much as it gets
	bytes  float64
	moves  []time.Time
}

type balSim struct {
	t        *testing.T
	b        balancer
	fib      *dt.FIB
	now      time.Time
	flows    []*simFlow
	transit  map[uint64]float64 // bytes/s on a next hop that are not ours
	hopBytes map[uint64]float64
	rng      *rand.Rand
	noise    float64 // each flow's share varies by up to this fraction per step
}

func newBalSim(t *testing.T, seed uint64) *balSim {
	fib := dt.NewFIB(seed)
	fib.Set(2, dt.Entry{Primary: []dt.NextHop{{ID: 7}, {ID: 8}}})
	return &balSim{t: t, fib: fib, now: time.Unix(1000, 0), transit: map[uint64]float64{},
		hopBytes: map[uint64]float64{7: 0, 8: 0}, rng: rand.New(rand.NewPCG(seed, 1))}
}

func (s *balSim) hopOf(eid uint64, label uint8) (uint64, bool) {
	return s.fib.LookupLabel(2, eid, 0, label)
}

// eidsOn returns n endpoint ids whose label 0 hashes onto next hop id.
func (s *balSim) eidsOn(id uint64, n int) []uint64 {
	var out []uint64
	for e := uint64(100); len(out) < n; e++ {
		if h, _ := s.hopOf(e, 0); h == id {
			out = append(out, e)
		}
	}
	return out
}

// add starts a flow placed as the IPCP places it (place == false: on
// label 0, as plain hashing would).
func (s *balSim) add(eid uint64, demand float64, place bool) *simFlow {
	f := &simFlow{eid: eid, demand: demand}
	if place {
		f.label = s.b.place(s.now, func(l uint8) (uint64, bool) { return s.hopOf(eid, l) })
	}
	s.flows = append(s.flows, f)
	return f
}

func (s *balSim) hop(f *simFlow) uint64 {
	h, _ := s.hopOf(f.eid, f.label)
	return h
}

// run advances virtual time by d in 10 ms steps, with a balancer tick
// every balanceInterval.
func (s *balSim) run(d time.Duration) {
	const step = 10 * time.Millisecond
	end := s.now.Add(d)
	nextTick := s.now
	for s.now.Before(end) {
		if !s.now.Before(nextTick) {
			s.tick()
			nextTick = s.now.Add(balanceInterval)
		}
		for _, h := range []uint64{7, 8} {
			var on []*simFlow
			for _, f := range s.flows {
				if s.hop(f) == h {
					on = append(on, f)
				}
			}
			left := max(simCap-s.transit[h], 0)
			s.hopBytes[h] += min(s.transit[h], simCap) * step.Seconds()
			// Max-min fair shares: the smallest demands first.
			sort.Slice(on, func(i, j int) bool { return want(on[i]) < want(on[j]) })
			for i, f := range on {
				share := min(left/float64(len(on)-i), want(f))
				left -= share
				got := share * (1 + s.noise*(2*s.rng.Float64()-1))
				f.bytes += got * step.Seconds()
				s.hopBytes[h] += got * step.Seconds()
			}
		}
		s.now = s.now.Add(step)
	}
}

func want(f *simFlow) float64 {
	if f.demand == 0 {
		return math.Inf(1)
	}
	return f.demand
}

func (s *balSim) tick() {
	hops := []hopSample{{7, uint64(s.hopBytes[7])}, {8, uint64(s.hopBytes[8])}}
	var flows []flowSample
	for _, f := range s.flows {
		flows = append(flows, flowSample{eid: f.eid, bytes: uint64(f.bytes), label: f.label})
	}
	for _, m := range s.b.tick(s.now, hops, flows, s.hopOf) {
		for _, f := range s.flows {
			if f.eid == m.eid {
				if m.label > dt.MaxLabel || m.label == f.label {
					s.t.Fatalf("balancer asked for label %d on flow %d (label %d)", m.label, f.eid, f.label)
				}
				f.label = m.label
				f.moves = append(f.moves, s.now)
			}
		}
	}
}

func (s *balSim) moves() int {
	n := 0
	for _, f := range s.flows {
		n += len(f.moves)
	}
	return n
}

// rates measures each flow's goodput over d (Mbit/s).
func (s *balSim) rates(d time.Duration) []float64 {
	before := make([]float64, len(s.flows))
	for i, f := range s.flows {
		before[i] = f.bytes
	}
	s.run(d)
	out := make([]float64, len(s.flows))
	for i, f := range s.flows {
		out[i] = (f.bytes - before[i]) * 8 / d.Seconds() / 1e6
	}
	return out
}

// TestBalanceSeparatesFlows: two bulk flows hashed onto the same one of
// two next hops (as plain hashing does half the time) are separated
// with one move, and stay separated; each then gets a whole path.
func TestBalanceSeparatesFlows(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		s := newBalSim(t, seed)
		e := s.eidsOn(7, 2)
		a := s.add(e[0], 0, false)
		s.run(500 * time.Millisecond)
		b := s.add(e[1], 0, false)
		s.run(5 * time.Second)
		if s.hop(a) == s.hop(b) {
			t.Fatalf("seed %d: both flows still on next hop %d after 5 s (moves %d)", seed, s.hop(a), s.moves())
		}
		r := s.rates(30 * time.Second)
		if s.moves() != 1 {
			t.Fatalf("seed %d: %d moves, want exactly 1 (%v, %v)", seed, s.moves(), a.moves, b.moves)
		}
		if seed == 1 {
			t.Logf("seed 1: moved at %v, then %.1f + %.1f Mbit/s", a.moves, r[0], r[1])
		}
		for i, x := range r {
			if x < 95 {
				t.Fatalf("seed %d: flow %d got %.1f Mbit/s after the split, want a whole path", seed, i, x)
			}
		}
	}
}

// TestBalancePlacesNewFlow: a flow started while another fills one
// next hop is placed on the other at once (no move needed); flows
// started together on idle next hops split; with nothing busy a flow
// keeps label 0.
func TestBalancePlacesNewFlow(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		s := newBalSim(t, seed)
		e := s.eidsOn(7, 3)
		a := s.add(e[0], 0, true)
		if a.label != 0 {
			t.Fatalf("seed %d: first flow on idle next hops got label %d, want 0", seed, a.label)
		}
		s.run(time.Second)
		b := s.add(e[1], 0, true)
		if s.hop(a) == s.hop(b) {
			t.Fatalf("seed %d: second flow placed on the busy next hop %d", seed, s.hop(b))
		}
		s.run(5 * time.Second)
		if s.moves() != 0 {
			t.Fatalf("seed %d: %d moves after a good placement", seed, s.moves())
		}

		// Two flows started in the same instant on idle next hops.
		s = newBalSim(t, seed)
		e = s.eidsOn(8, 2)
		a = s.add(e[0], 0, true)
		b = s.add(e[1], 0, true)
		if s.hop(a) == s.hop(b) {
			t.Fatalf("seed %d: two flows started together both placed on %d", seed, s.hop(a))
		}
	}
}

// TestBalanceLoneFlowStays: one bulk flow fills its path and is never
// moved, however long it runs, nor is a flow that shares its next hop
// with transit traffic when the other next hop carries as much.
func TestBalanceLoneFlowStays(t *testing.T) {
	s := newBalSim(t, 3)
	s.noise = 0.2
	s.add(s.eidsOn(7, 1)[0], 0, false)
	s.run(2 * time.Minute)
	if s.moves() != 0 {
		t.Fatalf("a lone flow moved %d times", s.moves())
	}

	s = newBalSim(t, 4)
	s.noise = 0.2
	s.transit[7], s.transit[8] = simCap/2, simCap*0.9
	s.add(s.eidsOn(7, 1)[0], 0, false)
	s.run(time.Minute)
	if s.moves() != 0 {
		t.Fatalf("a flow sharing its next hop with transit moved %d times to a busier one", s.moves())
	}
}

// TestBalanceNoFlapping: with both next hops equally loaded (one flow
// each, two each, or two and one, shares varying by 20% at every step)
// nothing moves in two minutes.
func TestBalanceNoFlapping(t *testing.T) {
	for _, c := range []struct{ on7, on8 int }{{1, 1}, {2, 2}, {2, 1}, {3, 3}} {
		s := newBalSim(t, uint64(10+c.on7*10+c.on8))
		s.noise = 0.2
		for _, e := range s.eidsOn(7, c.on7) {
			s.add(e, 0, false)
		}
		for _, e := range s.eidsOn(8, c.on8) {
			s.add(e, 0, false)
		}
		s.run(2 * time.Minute)
		if s.moves() != 0 {
			t.Fatalf("%d+%d flows: %d moves between equally loaded next hops", c.on7, c.on8, s.moves())
		}
	}
}

// TestBalanceRateLimited: transit load that swaps between the two next
// hops every 1.5 s would have a flow chase it for ever (each time, the
// other next hop is idle); the hold makes each move wait at least
// balanceHold, doubling while the flow keeps moving.
func TestBalanceRateLimited(t *testing.T) {
	s := newBalSim(t, 5)
	f := s.add(s.eidsOn(7, 1)[0], simCap/6, false)
	heavy := uint64(7)
	for range 40 { // 60 s
		s.transit[heavy], s.transit[15-heavy] = simCap*0.8, 0
		heavy = 15 - heavy
		s.run(1500 * time.Millisecond)
	}
	t.Logf("moves at %v", f.moves)
	if n := len(f.moves); n < 2 || n > 6 {
		t.Fatalf("%d moves in 60 s of swapping transit load, want a handful (unlimited: ~40)", n)
	}
	for i := 1; i < len(f.moves); i++ {
		gap := f.moves[i].Sub(f.moves[i-1])
		if gap < balanceHold {
			t.Fatalf("flow moved again after %v (< %v)", gap, balanceHold)
		}
		if i > 1 && gap < f.moves[i-1].Sub(f.moves[i-2]) {
			t.Fatalf("hold did not grow: gaps %v then %v", f.moves[i-1].Sub(f.moves[i-2]), gap)
		}
	}
}

// TestBalanceSmallFlowsStay: flows below balanceBusy (a ping, an
// acknowledgement stream) are never moved.
func TestBalanceSmallFlowsStay(t *testing.T) {
	s := newBalSim(t, 6)
	for _, e := range s.eidsOn(7, 4) {
		s.add(e, balanceBusy/2, false)
	}
	s.transit[7] = simCap / 2
	s.run(time.Minute)
	if s.moves() != 0 {
		t.Fatalf("%d moves of flows below the busy threshold", s.moves())
	}
}
