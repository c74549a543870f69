// Package bottleneck simulates a network bottleneck in virtual time, to
// test congestion control without wall-clock timing: a discrete-event
// loop (Sim) that drives a clock.Fake, and one-way links (Link) with a
// serialisation rate, a drop-tail queue, a propagation delay and
// optional ECN marking above a queue threshold.
//
// Everything runs on the goroutine that calls Sim.Run: events and the
// fake clock's timers fire in time order, so a test is deterministic.
// Components under test take Sim.Clock() as their clock and hand their
// packets to Link.Send.
package bottleneck

import (
	"container/heap"
	"time"

	"github.com/ouro-net/ouro/lib/clock"
)

// Sim is a discrete-event loop on a virtual clock.
type Sim struct {
	clk *clock.Fake
	q   events
	seq uint64
}

// New returns a simulator whose clock reads start.
func New(start time.Time) *Sim { return &Sim{clk: clock.NewFake(start)} }

// Clock is the virtual clock; its timers fire inside Run, in order with
// the events.
func (s *Sim) Clock() *clock.Fake { return s.clk }

// Now is the virtual time.
func (s *Sim) Now() time.Time { return s.clk.Now() }

// At schedules fn at t (at once if t is past).
func (s *Sim) At(t time.Time, fn func()) {
	s.seq++
	heap.Push(&s.q, event{at: t, seq: s.seq, fn: fn})
}

// After schedules fn d from now.
func (s *Sim) After(d time.Duration, fn func()) { s.At(s.Now().Add(d), fn) }

// Run processes events and clock timers in time order until end.
func (s *Sim) Run(end time.Time) {
	for {
		tc, okc := s.clk.NextDeadline()
		var te time.Time
		oke := len(s.q) > 0
		if oke {
			te = s.q[0].at
		}
		if okc && !tc.After(end) && (!oke || !tc.After(te)) {
			s.clk.Set(tc) // fires the clock's due timers
			continue
		}
		if !oke || te.After(end) {
			s.clk.Set(end)
			return
		}
		ev := heap.Pop(&s.q).(event)
		s.clk.Set(ev.at)
		ev.fn()
	}
}

// RunFor runs for d of virtual time.
func (s *Sim) RunFor(d time.Duration) { s.Run(s.Now().Add(d)) }

type event struct {
	at  time.Time
	seq uint64
	fn  func()
}

type events []event

func (e events) Len() int { return len(e) }
func (e events) Less(i, j int) bool {
	if e[i].at.Equal(e[j].at) {
		return e[i].seq < e[j].seq
	}
	return e[i].at.Before(e[j].at)
}
func (e events) Swap(i, j int) { e[i], e[j] = e[j], e[i] }
func (e *events) Push(x any)   { *e = append(*e, x.(event)) }
func (e *events) Pop() any {
	old := *e
	x := old[len(old)-1]
	old[len(old)-1] = event{}
	*e = old[:len(old)-1]
	return x
}

// Link is a one-way link: packets queue in FIFO order behind a
// serialiser of Rate bits per second (0: infinitely fast), are dropped
// when the queue would exceed Limit bytes (0: unbounded), are marked
// congestion experienced when the queue holds more than MarkAbove
// bytes as they arrive (0: never), and arrive Delay after leaving the
// serialiser. Drop, if set, drops the packets it returns true for (loss
// bursts, outages). Packets offered before HoldUntil wait for it (a
// stalled path that loses nothing), in order.
type Link struct {
	Sim       *Sim
	Rate      int64
	Limit     int
	MarkAbove int
	Delay     time.Duration
	Drop      func(now time.Time) bool
	HoldUntil time.Time

	busyUntil time.Time // when the serialiser has sent everything queued
	stats     Stats
}

// Stats are a link's counters.
type Stats struct {
	Sent, Dropped, Marked uint64 // packets offered, dropped, marked
	Bytes                 uint64 // bytes that passed the queue
	QueueDelaySum         time.Duration
	QueueDelayMax         time.Duration
	Queued                uint64 // packets that passed the queue (for the mean)
}

// MeanQueueDelay is the average time a packet that got through waited
// in the queue.
func (s Stats) MeanQueueDelay() time.Duration {
	if s.Queued == 0 {
		return 0
	}
	return s.QueueDelaySum / time.Duration(s.Queued)
}

// Stats returns the counters; ResetStats clears them (the queue stays).
func (l *Link) Stats() Stats { return l.stats }

// ResetStats clears the counters.
func (l *Link) ResetStats() { l.stats = Stats{} }

// Backlog returns the bytes queued now.
func (l *Link) Backlog() int {
	if l.Rate == 0 {
		return 0
	}
	d := l.busyUntil.Sub(l.Sim.Now())
	if d <= 0 {
		return 0
	}
	return int(d.Seconds() * float64(l.Rate) / 8)
}

// Send offers a packet of size bytes; deliver runs when it arrives,
// with ce set if it was marked. It reports whether the packet was
// queued.
func (l *Link) Send(size int, deliver func(ce bool)) bool {
	now := l.Sim.Now()
	l.stats.Sent++
	if l.Drop != nil && l.Drop(now) {
		l.stats.Dropped++
		return false
	}
	backlog := l.Backlog()
	if l.Limit > 0 && backlog+size > l.Limit {
		l.stats.Dropped++
		return false
	}
	ce := l.MarkAbove > 0 && backlog > l.MarkAbove
	if ce {
		l.stats.Marked++
	}
	start := now
	if l.busyUntil.After(start) {
		start = l.busyUntil
	}
	if l.HoldUntil.After(start) {
		start = l.HoldUntil
	}
	done := start
	if l.Rate > 0 {
		done = start.Add(time.Duration(float64(size*8) / float64(l.Rate) * float64(time.Second)))
	}
	l.busyUntil = done
	wait := start.Sub(now)
	l.stats.Queued++
	l.stats.Bytes += uint64(size)
	l.stats.QueueDelaySum += wait
	l.stats.QueueDelayMax = max(l.stats.QueueDelayMax, wait)
	l.Sim.At(done.Add(l.Delay), func() { deliver(ce) })
	return true
}
