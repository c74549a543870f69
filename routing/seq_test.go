package routing

import (
	"testing"
	"time"
)

// These tests are forged-sequence attacks on link-state
// routing: one member (here address 1, a neighbour of 3) sends frames
// about another member (2). Each must leave the layer converged within
// a second of virtual time, with the update rate back at its idle
// figure, and be counted.

// drainAtMost delivers queued messages as drain does, but at most max of
// them (an update storm must fail the test, not hang it); it reports
// how many it delivered.
func (s *sim) drainAtMost(max int) int {
	n := 0
	for n < max {
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
	return n
}

// countOver advances virtual time by d in steps of 1 ms and returns how
// many messages were delivered meanwhile, failing past limit.
func (s *sim) countOver(d time.Duration, limit int) int {
	s.t.Helper()
	total := 0
	for ; d > 0; d -= time.Millisecond {
		s.clk.Advance(time.Millisecond)
		total += s.drainAtMost(limit + 1 - total)
		if total > limit {
			s.t.Fatalf("update storm: more than %d messages", limit)
		}
	}
	return total
}

// seqSquare is the square 1-2-4-3-1, converged.
func seqSquare(t *testing.T) *sim {
	s := newSim(t, PolicyECMP)
	for _, a := range []uint64{1, 2, 3, 4} {
		s.add(a)
	}
	s.connect(1, 2, 1, 1)
	s.connect(2, 4, 1, 1)
	s.connect(4, 3, 1, 1)
	s.connect(3, 1, 1, 1)
	s.settle()
	s.checkConverged("before")
	return s
}

// inject hands router to a message from neighbour from.
func (s *sim) inject(from, to uint64, lsus ...LSU) {
	s.t.Helper()
	b, err := Encode(Message{Kind: KindUpdate, LSUs: lsus})
	if err != nil {
		s.t.Fatal(err)
	}
	if err := s.routers[to].Receive(from, b); err != nil {
		s.t.Fatal(err)
	}
}

func TestForgedSequenceAttacks(t *testing.T) {
	cases := []struct {
		name string
		// forge is what member 1 sends to 3 (or to 2 itself: to2).
		forge func(s *sim) []LSU
		to2   bool
		// flushes is how many flushes 2 must make.
		flushes uint64
		// atMax: 2 is left at MaxSeq (legitimately: it was only asked
		// to go one above MaxSeq-1), and flushes at its next change.
		atMax bool
	}{
		{name: "max seq for another member", flushes: 1, forge: func(*sim) []LSU {
			return []LSU{{Origin: 2, Seq: MaxSeq, Links: []Link{{Neighbor: 4, Cost: 1}}}}
		}},
		{name: "max seq minus one", flushes: 0, atMax: true, forge: func(*sim) []LSU {
			return []LSU{{Origin: 2, Seq: MaxSeq - 1}}
		}},
		{name: "max seq to the member itself", to2: true, flushes: 1, forge: func(*sim) []LSU {
			return []LSU{{Origin: 2, Seq: MaxSeq}}
		}},
		{name: "flush of the current instance", flushes: 0, forge: func(s *sim) []LSU {
			m, _ := member(s.routers[3], 2)
			return []LSU{{Origin: 2, Seq: m.Seq, Age: simMaxAge}}
		}},
		{name: "flush at max seq", flushes: 0, forge: func(*sim) []LSU {
			return []LSU{{Origin: 2, Seq: MaxSeq, Age: simMaxAge}}
		}},
		{name: "max seq for two members", flushes: 1, forge: func(*sim) []LSU {
			return []LSU{{Origin: 2, Seq: MaxSeq}, {Origin: 4, Seq: MaxSeq}}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := seqSquare(t)
			defer s.close()
			// The idle rate: messages over 2 s with nothing happening.
			idle := s.countOver(2*time.Second, 1000)
			to := uint64(3)
			if c.to2 {
				to = 2
			}
			s.inject(1, to, c.forge(s)...)
			s.countOver(time.Second, 1000)
			s.checkConverged("a second after the forged frame")
			for a, r := range s.routers {
				if m, ok := member(r, 2); !ok || (m.Seq == MaxSeq) != c.atMax {
					t.Fatalf("router %d: member 2 %+v %v", a, m, ok)
				}
			}
			if after := s.countOver(2*time.Second, 1000); after > idle {
				t.Fatalf("%d messages in 2 s after the attack, %d when idle", after, idle)
			}
			st := s.routers[2].Stats()
			if st.Flushes != c.flushes || st.Restarts != c.flushes {
				t.Fatalf("router 2 flushed %d times, restarted %d, want %d", st.Flushes, st.Restarts, c.flushes)
			}
			if c.flushes > 0 && st.OwnNewer == 0 {
				t.Fatalf("the newer copy of 2's own LSU was not counted: %+v", st)
			}
			// The layer still works: a link change is routed around.
			s.cut(1, 2)
			s.countOver(time.Second, 1000)
			s.checkConverged("after a cut")
			if c.atMax {
				if st := s.routers[2].Stats(); st.Flushes != 1 || st.Restarts != 1 {
					t.Fatalf("2 at MaxSeq: flushed %d, restarted %d at its next change, want 1 1", st.Flushes, st.Restarts)
				}
			}
		})
	}
}

// TestSeqNeverWraps drives a router to MaxSeq through its own events:
// it flushes and restarts at 1 instead of wrapping to 0, and its
// neighbour ends with the restarted LSU.
func TestSeqNeverWraps(t *testing.T) {
	s := newSim(t, PolicyECMP)
	defer s.close()
	r1, r2 := s.add(1), s.add(2)
	r1.mu.Lock()
	r1.seq = MaxSeq - 2
	r1.mu.Unlock()
	s.connect(1, 2, 1, 1)
	s.settle()
	for i := 0; i < 3; i++ {
		r1.SetCost(2, uint32(2+i))
		s.cost[[2]uint64{1, 2}] = uint32(2 + i)
		s.countOver(10*time.Millisecond, 1000)
	}
	s.countOver(time.Second, 1000)
	if st := r1.Stats(); st.Flushes != 1 || st.Restarts != 1 {
		t.Fatalf("flushes %d restarts %d, want 1 1", st.Flushes, st.Restarts)
	}
	m, ok := member(r2, 1)
	if !ok || m.Seq != 1 || len(m.Links) != 1 || m.Links[0].Cost != 4 {
		t.Fatalf("router 2 holds %+v %v, want 1's restarted LSU at seq 1 with cost 4", m, ok)
	}
	s.checkConverged("after the restart")
}

// TestLSDBFlush checks the database's flush rules one by one.
func TestLSDBFlush(t *testing.T) {
	t0 := time.Unix(100, 0)
	db := newLSDB(1, time.Minute)
	l := func(seq uint64, age time.Duration, links ...Link) LSU {
		return LSU{Origin: 2, Seq: seq, Age: age, Links: links}
	}
	steps := []struct {
		lsu LSU
		v   verdict
	}{
		{l(5, 0, Link{1, 1}), accepted},
		{l(9, time.Minute), expired}, // a flush of an instance we do not hold
		{l(4, time.Minute), stale},   // a flush older than ours
		{l(5, time.Minute), purged},  // our instance: now a tombstone
		{l(5, time.Minute), duplicate},
		{l(5, 0, Link{1, 1}), duplicate}, // a late copy of the flushed instance
		{l(1, 0, Link{1, 1}), accepted},  // the restart replaces the tombstone
		{l(5, time.Minute), expired},     // a late flush cannot remove it
	}
	for i, s := range steps {
		if v, _ := db.install(s.lsu, t0); v != s.v {
			t.Fatalf("step %d: got %v, want %v", i, v, s.v)
		}
	}
	db.install(l(1, time.Minute), t0)
	if all := db.all(t0); len(all) != 0 {
		t.Fatalf("a tombstone in all: %+v", all)
	}
	if got := db.list(t0, true); len(got) != 1 || got[0].Age != time.Minute {
		t.Fatalf("tombstone export %+v, want one flush", got)
	}
	if gone := db.expire(t0.Add(time.Hour)); len(gone) != 0 || len(db.entries) != 0 {
		t.Fatalf("tombstone expiry: gone %v, left %d", gone, len(db.entries))
	}
}
