package memlink

import (
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"sync"
	"time"

	"github.com/ouro-net/ouro/lib/clock"
)

// ErrTooLarge is returned by WritePacket for a packet larger than the MTU.
var ErrTooLarge = errors.New("memlink: packet larger than MTU")

// link is the state shared by the two ends of a pair; mu guards all of
// it, including the fields of both ends and both directions.
type link struct {
	mu   sync.Mutex
	cfg  Config
	cut  bool
	ends [2]*End
	dirs [2]*direction // dirs[i] carries packets written by ends[i]
}

// direction is one way of the link: packets written by one end on their
// way to the other end's queue.
type direction struct {
	l       *link
	rng     *rand.Rand
	from    *End
	to      *End
	held    []byte
	hold    clock.Timer
	delayed []delayed
	delay   clock.Timer
	armed   bool // delay timer pending
	stats   Stats
}

type delayed struct {
	at time.Time
	p  []byte
}

// End is one endpoint of a pair. It is safe for concurrent use.
type End struct {
	l      *link
	idx    int
	queue  [][]byte
	closed bool
	notify chan struct{} // capacity 1: the queue or peer state changed
	done   chan struct{} // closed by Close
}

// NewPair returns two connected ends. It panics if cfg does not
// validate: a test double with an impossible configuration is a bug in
// the test.
func NewPair(cfg Config) (*End, *End) {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	l := &link{cfg: cfg.withDefaults()}
	for i := range l.ends {
		l.ends[i] = &End{l: l, idx: i, notify: make(chan struct{}, 1), done: make(chan struct{})}
	}
	for i := range l.dirs {
		l.dirs[i] = &direction{
			l:    l,
			rng:  rand.New(rand.NewSource(cfg.Seed + int64(i))),
			from: l.ends[i],
			to:   l.ends[1-i],
		}
	}
	return l.ends[0], l.ends[1]
}

// MTU returns the largest packet the link carries.
func (e *End) MTU() int { return e.l.cfg.MTU }

// Stats returns the counters of the packets this end has written.
func (e *End) Stats() Stats {
	e.l.mu.Lock()
	defer e.l.mu.Unlock()
	return e.l.dirs[e.idx].stats
}

// Queued returns how many packets wait in this end's receive queue.
func (e *End) Queued() int {
	e.l.mu.Lock()
	defer e.l.mu.Unlock()
	return len(e.queue)
}

// Cut drops every packet in both directions, including those queued or
// in flight, until Restore is called.
func (e *End) Cut() {
	l := e.l
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cut = true
	for _, d := range l.dirs {
		d.stats.DroppedCut += d.purge()
		d.stats.DroppedCut += uint64(len(d.to.queue))
		d.to.queue = nil
	}
}

// Restore ends a Cut.
func (e *End) Restore() {
	e.l.mu.Lock()
	e.l.cut = false
	e.l.mu.Unlock()
}

// WritePacket sends a copy of b to the peer. Loss, a cut link and a full
// queue drop silently; writing on a closed end returns net.ErrClosed and
// writing to a closed peer io.ErrClosedPipe.
func (e *End) WritePacket(b []byte) error {
	l := e.l
	if len(b) > l.cfg.MTU {
		return fmt.Errorf("memlink: write %d bytes over MTU %d: %w", len(b), l.cfg.MTU, ErrTooLarge)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if e.closed {
		return fmt.Errorf("memlink: write: %w", net.ErrClosed)
	}
	d := l.dirs[e.idx]
	d.stats.Sent++
	// Draw every impairment for every packet so that the random sequence
	// depends only on the number of packets written.
	lost := d.rng.Float64() < l.cfg.Loss
	dup := d.rng.Float64() < l.cfg.Dup
	reorder := d.rng.Float64() < l.cfg.Reorder
	switch {
	case d.to.closed:
		d.stats.DroppedClosed++
		return fmt.Errorf("memlink: write: %w", io.ErrClosedPipe)
	case l.cut:
		d.stats.DroppedCut++
		return nil
	case lost:
		d.stats.DroppedLoss++
		return nil
	}
	p := append([]byte(nil), b...)
	d.route(p, reorder)
	if dup {
		d.stats.Duplicated++
		d.route(p, false)
	}
	return nil
}

// ReadPacket blocks until a packet arrives and copies it into b. A
// packet longer than b is truncated and io.ErrShortBuffer returned with
// the bytes that fit. It returns io.EOF once the peer is closed and
// everything it wrote has been read, and net.ErrClosed after Close.
func (e *End) ReadPacket(b []byte) (int, error) {
	l := e.l
	for {
		l.mu.Lock()
		if e.closed {
			l.mu.Unlock()
			return 0, fmt.Errorf("memlink: read: %w", net.ErrClosed)
		}
		if len(e.queue) > 0 {
			p := e.queue[0]
			e.queue[0] = nil
			e.queue = e.queue[1:]
			more := len(e.queue) > 0
			l.dirs[1-e.idx].stats.Delivered++
			l.mu.Unlock()
			if more {
				e.signal() // pass the wake-up on to another reader
			}
			n := copy(b, p)
			if n < len(p) {
				return n, io.ErrShortBuffer
			}
			return n, nil
		}
		in := l.dirs[1-e.idx]
		if in.from.closed && in.held == nil && len(in.delayed) == 0 {
			l.mu.Unlock()
			e.signal() // other readers waiting on this end see EOF too
			return 0, io.EOF
		}
		l.mu.Unlock()
		select {
		case <-e.notify:
		case <-e.done:
		}
	}
}

// Close closes this end: its blocked ReadPacket returns, packets queued
// for it are dropped, and the peer reads io.EOF after the packets already
// written by this end. Close is idempotent.
func (e *End) Close() error {
	l := e.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	close(e.done)
	in := l.dirs[1-e.idx]
	in.stats.DroppedClosed += in.purge() + uint64(len(e.queue))
	e.queue = nil
	if l.ends[1-e.idx].closed {
		out := l.dirs[e.idx]
		out.stats.DroppedClosed += out.purge()
	}
	l.ends[1-e.idx].signal()
	return nil
}

func (e *End) signal() {
	select {
	case e.notify <- struct{}{}:
	default:
	}
}

// route applies reordering to p and passes it on; l.mu is held.
func (d *direction) route(p []byte, reorder bool) {
	switch {
	case d.held != nil:
		held := d.held
		d.held = nil
		d.hold.Stop()
		d.schedule(p)
		d.schedule(held)
	case reorder:
		d.stats.Reordered++
		d.held = p
		if d.hold == nil {
			d.hold = d.l.cfg.Clock.AfterFunc(d.l.cfg.ReorderHold, d.releaseHeld)
		} else {
			d.hold.Reset(d.l.cfg.ReorderHold)
		}
	default:
		d.schedule(p)
	}
}

func (d *direction) releaseHeld() {
	d.l.mu.Lock()
	defer d.l.mu.Unlock()
	if d.held != nil {
		p := d.held
		d.held = nil
		d.schedule(p)
		d.to.signal()
	}
}

// schedule delivers p now or after the configured delay; l.mu is held.
func (d *direction) schedule(p []byte) {
	cfg := &d.l.cfg
	if cfg.Delay <= 0 {
		d.enqueue(p)
		return
	}
	if len(d.delayed) >= cfg.QueueLen {
		d.stats.DroppedQueueFull++
		return
	}
	d.delayed = append(d.delayed, delayed{at: cfg.Clock.Now().Add(cfg.Delay), p: p})
	if !d.armed {
		d.armed = true
		if d.delay == nil {
			d.delay = cfg.Clock.AfterFunc(cfg.Delay, d.deliverDue)
		} else {
			d.delay.Reset(cfg.Delay)
		}
	}
}

// deliverDue moves the packets whose delay has passed to the queue.
func (d *direction) deliverDue() {
	d.l.mu.Lock()
	defer d.l.mu.Unlock()
	now := d.l.cfg.Clock.Now()
	i := 0
	for ; i < len(d.delayed) && !d.delayed[i].at.After(now); i++ {
		d.enqueue(d.delayed[i].p)
		d.delayed[i].p = nil
	}
	d.delayed = d.delayed[i:]
	if len(d.delayed) > 0 {
		d.delay.Reset(d.delayed[0].at.Sub(now))
	} else {
		d.armed = false
	}
	d.to.signal()
}

// enqueue appends p to the receiver's queue; l.mu is held.
func (d *direction) enqueue(p []byte) {
	switch {
	case d.to.closed:
		d.stats.DroppedClosed++
	case d.l.cut:
		d.stats.DroppedCut++
	case len(d.to.queue) >= d.l.cfg.QueueLen:
		d.stats.DroppedQueueFull++
	default:
		d.to.queue = append(d.to.queue, p)
		d.to.signal()
	}
}

// purge drops held and delayed packets, stops the timers and returns how
// many packets were dropped; l.mu is held.
func (d *direction) purge() uint64 {
	n := uint64(len(d.delayed))
	if d.held != nil {
		n++
	}
	d.held = nil
	d.delayed = nil
	d.armed = false
	if d.hold != nil {
		d.hold.Stop()
	}
	if d.delay != nil {
		d.delay.Stop()
	}
	return n
}
