package frct

import (
	"time"

	"github.com/ouro-net/ouro/lib/clock"
)

// ltimer is a lazily re-armed timer owned by a Conn and guarded by its
// mutex. at is the logical expiry; the underlying clock timer may fire
// earlier (after a re-arm to a later time, or a stale real-clock
// callback), in which case the callback only re-arms it. This keeps
// frequent re-arming (every ACK restarts the RTO) cheap and makes stale
// callbacks harmless.
type ltimer struct {
	c    *Conn
	t    clock.Timer
	at   time.Time // logical expiry; zero when disarmed
	phys time.Time // when the clock timer is due; zero when not pending
	fire func(now time.Time, out *outbox)
}

// armAt sets the logical expiry to at; c.mu is held.
func (lt *ltimer) armAt(now, at time.Time) {
	lt.at = at
	if !lt.phys.IsZero() && !lt.phys.After(at) {
		return // the pending clock timer fires first and re-arms
	}
	lt.phys = at
	d := at.Sub(now)
	if lt.t == nil {
		lt.t = lt.c.clk.AfterFunc(d, lt.expire)
	} else {
		lt.t.Reset(d)
	}
}

// arm sets the logical expiry to d from now; c.mu is held.
func (lt *ltimer) arm(now time.Time, d time.Duration) { lt.armAt(now, now.Add(d)) }

// armed reports whether the timer has a logical expiry; c.mu is held.
func (lt *ltimer) armed() bool { return !lt.at.IsZero() }

// disarm clears the logical expiry; the clock timer, if pending, fires
// and finds nothing to do. c.mu is held.
func (lt *ltimer) disarm() { lt.at = time.Time{} }

// stop disarms and stops the clock timer for good; c.mu is held.
func (lt *ltimer) stop() {
	lt.at = time.Time{}
	lt.phys = time.Time{}
	if lt.t != nil {
		lt.t.Stop()
	}
}

func (lt *ltimer) expire() {
	c := lt.c
	var out outbox
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	lt.phys = time.Time{}
	if lt.at.IsZero() {
		c.mu.Unlock()
		return
	}
	now := c.clk.Now()
	if now.Before(lt.at) {
		lt.armAt(now, lt.at)
		c.mu.Unlock()
		return
	}
	lt.at = time.Time{}
	lt.fire(now, &out)
	c.mu.Unlock()
	c.flush(&out)
}
