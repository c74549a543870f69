package unicast

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/ouro-net/ouro/dt"
)

// The egress scheduler of a lower flow.
//
// A lower flow's channel is a kernel FIFO: while the lower IPCP takes
// packets as fast as we send them it stays nearly empty and packets go
// straight in (one system call per batch, no copy, no extra goroutine:
// the fast path of flush). Once it holds more than egressAbove bytes
// (the lower IPCP or its medium is slower than the traffic we forward)
// the adjacency's egress switches to a queue of its own: a dt.Scheduler
// with a bounded FIFO per QoS cube, served low latency first, then best
// effort, then bulk, with a guaranteed share for the lower classes so
// nothing starves, and ECN marking on its own queue lengths (the most
// congested hop wins, as before). A drain goroutine per adjacency
// (started the first time its egress congests, ended with the
// adjacency or the IPCP) moves packets from the scheduler into the
// channel, a batch at a time; the channel's send buffer is made small
// at that moment (egressKernel), so the writer blocks, and the backlog
// builds, in the scheduler rather than in the kernel. Once the
// scheduler is empty the egress goes back to the fast path.
//
// Packets are copied into the egress's own buffers (kept on a free list
// and reused, so the congested path does not allocate either once
// warm): the forwarding goroutines reuse theirs at once. The queue is
// bounded in packets per class (dt.Scheduler's limits) and in bytes
// (egressMaxBytes); a producer whose class is full waits for room, as
// it waited on a full channel before (so nothing is lost at our own
// egress that was not lost before). A raw flood thus fills its own
// class and holds back only its own sender, while a low-latency ping
// and the other cubes keep their turns.
//
// Management frames (routing, directory, acknowledgements: sendFrame)
// go into the scheduler's management class while the egress queues, so
// they leave ahead of all data, behind only the channel's short FIFO
// (at most egressKernel bytes); they never wait for room (a full
// management queue drops, and the management ARQ repeats). Keepalive
// hellos are not sent at all while data is queued (the data proves the
// member alive, see live.go).
const (
	egressAbove    = ecnMarkAbove // channel bytes above which the egress queues
	egressKernel   = 128 << 10    // channel send buffer while it does
	egressMaxBytes = 8 << 20      // bytes queued in one egress at most
)

// egressMarkAbove: data packets queued behind another of their class
// are marked (see queueOut).
var egressMarkAbove = [dt.NumClasses]int{1, 1, 1, 1}

// egress is the scheduler state of one adjacency (the zero value is
// ready: the scheduler is made the first time it is needed).
type egress struct {
	// active is set while packets go through the scheduler; it is only
	// changed under mu, and read without it by flush.
	active  atomic.Bool
	mu      sync.Mutex
	sched   *dt.Scheduler
	bytes   int      // bytes queued
	free    [][]byte // buffers to reuse
	started bool     // the drain goroutine runs
	closed  bool     // the adjacency ended: nothing more is queued
	wake    chan struct{}
	space   sync.Cond // signalled when the drainer freed room
}

// errMgmtQueueFull: a management frame found the management queue of a
// congested egress full (it is retransmitted like a lost one).
var errMgmtQueueFull = errors.New("management queue of the egress full")

// sendFrame writes a management frame on a's lower flow: straight in
// while its egress is not queueing, else into the scheduler's
// management class, which leaves ahead of all data. It never waits for
// the data backlog; a full management queue drops the frame (counted).
func (u *IPCP) sendFrame(a *adj, f []byte) error {
	if a.eg.active.Load() {
		e := &a.eg
		e.mu.Lock()
		if e.active.Load() && !e.closed {
			defer e.mu.Unlock()
			if e.sched.Full(dt.ClassManagement) {
				a.ctr.Drop(dt.DropQueueFull)
				return errMgmtQueueFull
			}
			b := e.buffer(len(f))
			copy(b, f)
			e.sched.Enqueue(b, dt.ClassManagement)
			e.bytes += len(b)
			return nil
		}
		e.mu.Unlock()
	}
	_, err := a.f.Write(f)
	return err
}

// egressClass returns the scheduling class of a data frame (kind byte,
// header, payload): its QoS cube's.
func (u *IPCP) egressClass(pkt []byte) dt.Class {
	_, _, cube, err := u.layout.FlowKey(pkt[1:])
	if err != nil {
		return dt.ClassBestEffort
	}
	return dt.CubeClass(cube)
}

// queueOut puts data frames bound for a into its egress scheduler
// (copies: the caller keeps pkts) and makes sure the drainer runs.
func (u *IPCP) queueOut(a *adj, pkts [][]byte) {
	e := &a.eg
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.sched == nil {
		// Every class marks from its first queued packet on: the
		// channel under the scheduler is already past egressAbove
		// while the egress queues (the mark level grows with the
		// class's queue, as before with the channel's).
		s, err := dt.NewScheduler(dt.SchedConfig{MarkAbove: egressMarkAbove, Mark: func(p []byte, level uint8) {
			if _, err := u.layout.RaiseECN(p[1:], level); err == nil {
				a.ctr.Mark()
			}
		}})
		if err != nil {
			// The default configuration is valid; were it not, the
			// packets would be lost, counted, rather than the IPCP.
			for range pkts {
				a.ctr.Drop(dt.DropQueueFull)
			}
			return
		}
		e.sched, e.wake = s, make(chan struct{}, 1)
		e.space.L = &e.mu
	}
	if !e.started {
		e.started = true
		// The kernel's FIFO under the scheduler is kept short from
		// now on (see the comment at the top).
		a.f.SetSendBuffer(egressKernel / 2)
		u.wg.Add(1)
		go u.drainEgress(a)
	}
	if !e.active.Load() {
		e.active.Store(true)
		select {
		case e.wake <- struct{}{}:
		default:
		}
	}
	for _, p := range pkts {
		c := u.egressClass(p)
		// A full class holds its producer back, as a full channel
		// did before: the reader of the flow (or adjacency) that
		// sends too much waits, the other classes keep their turns.
		for !e.closed && (e.sched.Full(c) || (e.bytes > 0 && e.bytes+len(p) > egressMaxBytes)) {
			e.space.Wait()
		}
		if e.closed {
			a.ctr.Drop(dt.DropQueueFull)
			continue
		}
		b := e.buffer(len(p))
		copy(b, p)
		if !e.sched.Enqueue(b, c) {
			e.free = append(e.free, b)
			a.ctr.Drop(dt.DropQueueFull)
			continue
		}
		e.bytes += len(b)
	}
}

// buffer returns a buffer of n bytes, reused if one is free (the caller
// holds e.mu).
func (e *egress) buffer(n int) []byte {
	for len(e.free) > 0 {
		b := e.free[len(e.free)-1]
		e.free = e.free[:len(e.free)-1]
		if cap(b) >= n {
			return b[:n]
		}
	}
	return make([]byte, n, max(n, 2048))
}

// drainEgress moves a's queued packets into its lower flow until the
// adjacency or the IPCP ends.
func (u *IPCP) drainEgress(a *adj) {
	defer u.wg.Done()
	e := &a.eg
	var batch [fwdBatch][]byte
	for {
		n := e.sched.DequeueBatch(batch[:])
		if n == 0 {
			e.mu.Lock()
			idle := e.sched.Len() == 0
			if idle {
				e.active.Store(false)
			}
			e.mu.Unlock()
			if !idle {
				continue
			}
			select {
			case <-e.wake:
				continue
			case <-a.done:
			case <-u.ctx.Done():
			}
			u.dropEgress(a)
			return
		}
		w, _ := a.f.WriteBatch(batch[:n])
		fwd := 0
		for _, p := range batch[:w] {
			// Management frames were counted by their sender.
			if p[0] == kindDT {
				a.ctr.Out(len(p))
				fwd++
			}
		}
		for range n - w {
			a.ctr.Drop(dt.DropQueueFull)
		}
		a.live.dataOut.Add(uint64(fwd))
		u.stats.fwd.Add(uint64(fwd))
		e.mu.Lock()
		for i, p := range batch[:n] {
			e.bytes -= len(p)
			if len(e.free) < 2*fwdBatch+64 {
				e.free = append(e.free, p)
			}
			batch[i] = nil
		}
		e.space.Broadcast()
		e.mu.Unlock()
		if w < n {
			// The lower flow refused the rest (closed): keep draining
			// (and dropping) until the adjacency is told to end.
			select {
			case <-a.done:
				u.dropEgress(a)
				return
			case <-u.ctx.Done():
				u.dropEgress(a)
				return
			default:
			}
		}
	}
}

// dropEgress empties a's scheduler (the adjacency ended), counting what
// it held as dropped.
func (u *IPCP) dropEgress(a *adj) {
	e := &a.eg
	e.mu.Lock()
	defer e.mu.Unlock()
	for {
		_, _, ok := e.sched.Dequeue()
		if !ok {
			break
		}
		a.ctr.Drop(dt.DropQueueFull)
	}
	e.bytes, e.free = 0, nil
	e.closed = true
	e.space.Broadcast()
}
