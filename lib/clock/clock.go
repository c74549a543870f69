// Package clock abstracts time so that every timer-driven component
// (keepalives, link-state ageing, hold-downs, FRCT retransmission) can
// run on the wall clock in production and on a virtual clock in tests.
//
// Components take a Clock at construction; Real() is the wall clock and
// NewFake returns a virtual clock that only moves when Advance is called.
package clock

import (
	"sort"
	"sync"
	"time"
)

// Clock tells the time and makes timers.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTimer returns a timer whose channel receives the time once d
	// has passed.
	NewTimer(d time.Duration) Timer
	// AfterFunc calls f in its own goroutine (real clock) or inside
	// Advance (fake clock) once d has passed.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a stoppable, resettable single-shot timer.
type Timer interface {
	// C is the channel the expiry time is sent on; nil for AfterFunc timers.
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it was active.
	Stop() bool
	// Reset rearms the timer to fire after d; it reports whether it was active.
	Reset(d time.Duration) bool
}

// Real returns the wall clock.
func Real() Clock { return realClock{} }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

func (realClock) AfterFunc(d time.Duration, f func()) Timer {
	return realTimer{time.AfterFunc(d, f)}
}

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time        { return r.t.C }
func (r realTimer) Stop() bool                 { return r.t.Stop() }
func (r realTimer) Reset(d time.Duration) bool { return r.t.Reset(d) }

// Fake is a virtual clock for tests. Time stands still until Advance or
// Set moves it; timers that come due fire in deadline order, AfterFunc
// callbacks run synchronously on the goroutine that called Advance.
type Fake struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
	seq    uint64
}

// NewFake returns a virtual clock that reads start.
func NewFake(start time.Time) *Fake { return &Fake{now: start} }

// Now returns the virtual time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// NewTimer returns a virtual timer with a buffered channel.
func (f *Fake) NewTimer(d time.Duration) Timer {
	t := &fakeTimer{clock: f, ch: make(chan time.Time, 1)}
	t.Reset(d)
	return t
}

// AfterFunc returns a virtual timer that calls fn when it fires.
func (f *Fake) AfterFunc(d time.Duration, fn func()) Timer {
	t := &fakeTimer{clock: f, fn: fn}
	t.Reset(d)
	return t
}

// Pending reports how many timers are armed.
func (f *Fake) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.timers)
}

// NextDeadline returns the earliest armed deadline and whether one exists.
func (f *Fake) NextDeadline() (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.timers) == 0 {
		return time.Time{}, false
	}
	f.sortLocked()
	return f.timers[0].when, true
}

// Advance moves virtual time forward by d, firing every timer that
// comes due on the way, in deadline order. Timers armed by callbacks
// fire too if they fall within the window.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	end := f.now.Add(d)
	f.mu.Unlock()
	f.runUntil(end)
}

// Set moves virtual time to t (never backwards), firing due timers.
func (f *Fake) Set(t time.Time) { f.runUntil(t) }

func (f *Fake) runUntil(end time.Time) {
	for {
		f.mu.Lock()
		f.sortLocked()
		if len(f.timers) == 0 || f.timers[0].when.After(end) {
			if end.After(f.now) {
				f.now = end
			}
			f.mu.Unlock()
			return
		}
		t := f.timers[0]
		f.timers = f.timers[1:]
		t.armed = false
		if t.when.After(f.now) {
			f.now = t.when
		}
		now := f.now
		f.mu.Unlock()
		if t.fn != nil {
			t.fn()
		} else {
			select {
			case t.ch <- now:
			default:
			}
		}
	}
}

func (f *Fake) sortLocked() {
	sort.SliceStable(f.timers, func(i, j int) bool {
		if f.timers[i].when.Equal(f.timers[j].when) {
			return f.timers[i].seq < f.timers[j].seq
		}
		return f.timers[i].when.Before(f.timers[j].when)
	})
}

type fakeTimer struct {
	clock *Fake
	ch    chan time.Time
	fn    func()
	when  time.Time
	seq   uint64
	armed bool
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	f := t.clock
	f.mu.Lock()
	defer f.mu.Unlock()
	return t.removeLocked()
}

func (t *fakeTimer) removeLocked() bool {
	if !t.armed {
		return false
	}
	f := t.clock
	for i, x := range f.timers {
		if x == t {
			f.timers = append(f.timers[:i], f.timers[i+1:]...)
			break
		}
	}
	t.armed = false
	return true
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	f := t.clock
	f.mu.Lock()
	defer f.mu.Unlock()
	was := t.removeLocked()
	f.seq++
	t.seq = f.seq
	t.when = f.now.Add(d)
	t.armed = true
	f.timers = append(f.timers, t)
	return was
}
