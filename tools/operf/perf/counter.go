package perf

import (
	"sync"
	"time"
)

// Counter counts the data packets of one run as a receiver sees them.
// It is safe for one goroutine adding while another takes snapshots.
type Counter struct {
	mu    sync.Mutex
	start time.Time
	next  uint64 // next expected sequence number
	total Counts
	mark  Counts // total at the last snapshot
	done  bool
}

// NewCounter starts counting at start.
func NewCounter(start time.Time) *Counter {
	return &Counter{start: start}
}

// Add counts one data packet of size bytes with sequence number seq
// that took delay to arrive. A sequence number beyond the next expected
// one counts the gap as lost; one below it is late and fills a gap.
func (c *Counter) Add(seq uint64, size int, delay time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return
	}
	c.total.Packets++
	c.total.Bytes += uint64(size)
	if delay > 0 {
		c.total.DelaySum += delay
		c.total.DelayMax = max(c.total.DelayMax, delay)
	}
	switch {
	case seq >= c.next:
		c.total.Lost += seq - c.next
		c.next = seq + 1
	default:
		c.total.Late++
		if c.total.Lost > 0 {
			c.total.Lost--
		}
	}
}

// Snapshot returns the counts since the previous snapshot (or the
// start) and since the start, both up to now.
func (c *Counter) Snapshot(now time.Time) (interval, total Counts) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.snapshotLocked(now)
}

func (c *Counter) snapshotLocked(now time.Time) (interval, total Counts) {
	total = c.total
	if !c.done {
		total.Elapsed = now.Sub(c.start)
	}
	interval = total.Sub(c.mark)
	c.mark = total
	return interval, total
}

// Sub returns the counts between an earlier total prev and c. Loss can
// shrink (late packets fill gaps), so an interval's loss is never
// negative; DelayMax stays the maximum so far.
func (c Counts) Sub(prev Counts) Counts {
	return Counts{
		Elapsed:  c.Elapsed - prev.Elapsed,
		Packets:  sub(c.Packets, prev.Packets),
		Bytes:    sub(c.Bytes, prev.Bytes),
		Lost:     sub(c.Lost, prev.Lost),
		Late:     sub(c.Late, prev.Late),
		DelaySum: max(c.DelaySum-prev.DelaySum, 0),
		DelayMax: c.DelayMax,
	}
}

// Finish stops counting: the sender says it sent sent packets, so what
// did not arrive by now is lost (raw flows do not duplicate packets, so
// every packet counted is a distinct one). It returns the counts since the last
// snapshot and the totals; later calls return the same totals.
func (c *Counter) Finish(sent uint64, now time.Time) (interval, total Counts) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.done {
		c.total.Elapsed = now.Sub(c.start)
		c.total.Lost = sub(sent, c.total.Packets)
		c.done = true
	}
	return c.snapshotLocked(now)
}

// Total returns the totals so far without moving the interval mark.
func (c *Counter) Total(now time.Time) Counts {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.total
	if !c.done {
		t.Elapsed = now.Sub(c.start)
	}
	return t
}

func sub(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}
