package frct

import (
	"sync"
	"time"

	"github.com/ouro-net/ouro/lib/clock"
)

// deadline is a settable point in time on a clock whose channel is
// closed when the time passes, as net.Conn deadlines need.
type deadline struct {
	mu      sync.Mutex
	clk     clock.Clock
	timer   clock.Timer
	ch      chan struct{}
	closed  bool
	stopped bool // the connection is gone: arm no more timers
}

func newDeadline(clk clock.Clock) *deadline {
	return &deadline{clk: clk, ch: make(chan struct{})}
}

// set moves the deadline; the zero time means none.
func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	if d.closed {
		d.ch = make(chan struct{})
		d.closed = false
	}
	if t.IsZero() || d.stopped {
		return
	}
	dur := t.Sub(d.clk.Now())
	if dur <= 0 {
		close(d.ch)
		d.closed = true
		return
	}
	ch := d.ch
	d.timer = d.clk.AfterFunc(dur, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.ch == ch && !d.closed {
			close(ch)
			d.closed = true
		}
	})
}

// done returns a channel closed once the deadline has passed.
func (d *deadline) done() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ch
}

// expired reports whether the deadline has passed.
func (d *deadline) expired() bool {
	select {
	case <-d.done():
		return true
	default:
		return false
	}
}

// stop disarms the timer for good.
func (d *deadline) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopped = true
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
}
