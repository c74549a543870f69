package dt

import (
	"errors"
	"fmt"
	"sync"
)

// Class is a scheduling class of an egress: management first, then
// the QoS cubes in the order the layer serves them.
type Class uint8

// Classes, highest priority first.
const (
	ClassManagement Class = iota // hellos, routing, directory, allocation
	ClassLowLatency              // qos.CubeLowLatency
	ClassBestEffort              // qos.CubeBestEffort
	ClassBulk                    // qos.CubeBulk
	NumClasses
)

var classNames = [NumClasses]string{"management", "low-latency", "best-effort", "bulk"}

// String names the class.
func (c Class) String() string {
	if c < NumClasses {
		return classNames[c]
	}
	return fmt.Sprintf("class(%d)", uint8(c))
}

// CubeClass maps a QoS cube number (lib/qos) to its class; unknown
// cubes are served as best effort.
func CubeClass(cube uint8) Class {
	switch cube {
	case 1:
		return ClassLowLatency
	case 2:
		return ClassBulk
	}
	return ClassBestEffort
}

// SchedConfig sizes a Scheduler. Zero fields take the defaults.
type SchedConfig struct {
	// Limit bounds each class's queue, in packets (default 256;
	// management 64).
	Limit [NumClasses]int
	// MarkAbove is the queue length, in packets, above which data
	// packets are marked congestion experienced as they are queued
	// (default Limit/8; management is never marked).
	MarkAbove [NumClasses]int
	// Guarantee gives each data class below the first a share of the
	// dequeues whatever the classes above it send: a class that waited
	// while Guarantee[c] packets of higher classes left is served next
	// (default: best effort 4, bulk 8, so they keep at least 1/5 and
	// 1/9 of a saturated egress).
	Guarantee [NumClasses]int
	// Mark sets the congestion mark on a queued packet, given the level
	// (1..255, growing with the queue); nil marks nothing. The
	// scheduler does not know the packet format.
	Mark func(pkt []byte, level uint8)
}

// ErrSchedConfig is wrapped by every SchedConfig validation error.
var ErrSchedConfig = errors.New("dt: invalid scheduler config")

func (c SchedConfig) withDefaults() (SchedConfig, error) {
	for k := Class(0); k < NumClasses; k++ {
		if c.Limit[k] == 0 {
			c.Limit[k] = 256
			if k == ClassManagement {
				c.Limit[k] = 64
			}
		}
		if c.MarkAbove[k] == 0 {
			c.MarkAbove[k] = max(1, c.Limit[k]/8)
		}
		if c.Guarantee[k] == 0 {
			switch k {
			case ClassBestEffort:
				c.Guarantee[k] = 4
			case ClassBulk:
				c.Guarantee[k] = 8
			}
		}
		switch {
		case c.Limit[k] < 1 || c.Limit[k] > 1<<16:
			return c, fmt.Errorf("%w: %v limit %d outside [1, 65536]", ErrSchedConfig, k, c.Limit[k])
		case c.MarkAbove[k] < 1:
			return c, fmt.Errorf("%w: %v marks above %d packets", ErrSchedConfig, k, c.MarkAbove[k])
		case c.Guarantee[k] < 0:
			return c, fmt.Errorf("%w: %v guarantee %d", ErrSchedConfig, k, c.Guarantee[k])
		}
	}
	return c, nil
}

// SchedStats are a Scheduler's counters, per class.
type SchedStats struct {
	Queued   [NumClasses]uint64 // packets accepted
	Dropped  [NumClasses]uint64 // packets refused, queue full
	Marked   [NumClasses]uint64 // packets marked congestion experienced
	Sent     [NumClasses]uint64 // packets dequeued
	MaxDepth [NumClasses]int    // longest queue seen
	Depth    [NumClasses]int    // queue now
}

// Scheduler is the egress queue of one lower flow: a bounded FIFO per
// class, served by priority (management, low latency, best effort,
// bulk) except that a lower data class that waited Guarantee packets
// is served next, so none starves. Data packets queued behind more
// than MarkAbove packets of their class are marked. It is safe for
// concurrent use; the caller owns the goroutine that drains it.
type Scheduler struct {
	cfg   SchedConfig
	mu    sync.Mutex
	q     [NumClasses]ring
	wait  [NumClasses]int // higher-class packets sent while this class waited
	stats SchedStats
}

// ring is a FIFO of packets.
type ring struct {
	buf        [][]byte
	head, size int
}

func (r *ring) push(p []byte) {
	if r.size == len(r.buf) {
		n := max(8, 2*len(r.buf))
		nb := make([][]byte, n)
		for i := 0; i < r.size; i++ {
			nb[i] = r.buf[(r.head+i)%len(r.buf)]
		}
		r.buf, r.head = nb, 0
	}
	r.buf[(r.head+r.size)%len(r.buf)] = p
	r.size++
}

func (r *ring) pop() []byte {
	p := r.buf[r.head]
	r.buf[r.head] = nil
	r.head = (r.head + 1) % len(r.buf)
	r.size--
	return p
}

// NewScheduler returns an empty scheduler.
func NewScheduler(cfg SchedConfig) (*Scheduler, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Scheduler{cfg: cfg}, nil
}

// Enqueue queues pkt (which the scheduler keeps until dequeued) in
// class c; it reports false, counting a drop, when that queue is full
// or c is unknown.
func (s *Scheduler) Enqueue(pkt []byte, c Class) bool {
	if c >= NumClasses {
		c = ClassBestEffort
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q := &s.q[c]
	if q.size >= s.cfg.Limit[c] {
		s.stats.Dropped[c]++
		return false
	}
	if c != ClassManagement && s.cfg.Mark != nil && q.size >= s.cfg.MarkAbove[c] {
		span := max(1, s.cfg.Limit[c]-s.cfg.MarkAbove[c])
		level := 1 + (q.size-s.cfg.MarkAbove[c])*254/span
		s.cfg.Mark(pkt, uint8(min(level, 255)))
		s.stats.Marked[c]++
	}
	q.push(pkt)
	s.stats.Queued[c]++
	s.stats.MaxDepth[c] = max(s.stats.MaxDepth[c], q.size)
	return true
}

// Full reports whether class c's queue is at its limit (Enqueue would
// refuse a packet), so that a producer may wait instead of dropping.
func (s *Scheduler) Full(c Class) bool {
	if c >= NumClasses {
		c = ClassBestEffort
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.q[c].size >= s.cfg.Limit[c]
}

// Dequeue removes the next packet to send; ok is false when every
// queue is empty.
func (s *Scheduler) Dequeue() (pkt []byte, c Class, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dequeueLocked()
}

// DequeueBatch fills dst with up to len(dst) packets in sending order
// and returns how many.
func (s *Scheduler) DequeueBatch(dst [][]byte) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for n < len(dst) {
		p, _, ok := s.dequeueLocked()
		if !ok {
			break
		}
		dst[n] = p
		n++
	}
	return n
}

func (s *Scheduler) dequeueLocked() ([]byte, Class, bool) {
	pick := NumClasses
	// Management always first: it is small and keeps the layer alive.
	if s.q[ClassManagement].size > 0 {
		pick = ClassManagement
	} else {
		// The lowest data class owed its guaranteed turn, else the
		// highest non-empty one.
		for c := NumClasses - 1; c > ClassLowLatency; c-- {
			if g := s.cfg.Guarantee[c]; g > 0 && s.q[c].size > 0 && s.wait[c] >= g {
				pick = c
				break
			}
		}
		if pick == NumClasses {
			for c := ClassLowLatency; c < NumClasses; c++ {
				if s.q[c].size > 0 {
					pick = c
					break
				}
			}
		}
	}
	if pick == NumClasses {
		return nil, 0, false
	}
	for c := pick + 1; c < NumClasses; c++ {
		if s.q[c].size > 0 && pick != ClassManagement {
			s.wait[c]++
		}
	}
	s.wait[pick] = 0
	s.stats.Sent[pick]++
	return s.q[pick].pop(), pick, true
}

// Len returns the packets queued in all classes.
func (s *Scheduler) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for i := range s.q {
		n += s.q[i].size
	}
	return n
}

// Stats returns a snapshot of the counters.
func (s *Scheduler) Stats() SchedStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	for i := range s.q {
		st.Depth[i] = s.q[i].size
	}
	return st
}
