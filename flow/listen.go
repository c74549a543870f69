package flow

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ouro-net/ouro/lib/ctrl"
)

// AcceptQueue bounds the flows waiting for Accept; beyond it new flows
// are refused (the allocating side gets an error).
const AcceptQueue = 64

// Listener yields the flows that arrive for a name. It implements
// net.Listener's Accept/Close/Addr through AcceptConn.
type Listener struct {
	name   string
	peer   *ctrl.Peer
	queue  chan *Flow
	mu     sync.Mutex
	done   bool
	direct map[uint64]*Flow // direct flows, for the IRMd's flow.down
	ends   sync.WaitGroup   // flow.end notices in flight

	// Encrypted flows' key exchanges (crypt.go): opts holds the
	// identity, shaking the flows whose exchange runs (closed by Close),
	// hs waits for their goroutines, hsFail counts failed or refused ones.
	opts    options
	shaking map[*Flow]time.Time // when each exchange began
	hs      sync.WaitGroup
	hsFail  atomic.Uint64
	hsc     hsCounters
}

// hsCounters count why server exchanges under a layer secret failed.
type hsCounters struct {
	auth, replayed, malformed, evicted atomic.Uint64
}

// HandshakeStats counts the key exchanges a Listener refused.
type HandshakeStats struct {
	// Failed counts encrypted flows dropped before Accept for any
	// reason (all below included).
	Failed uint64 `json:"failed"`
	// Auth counts hellos whose MAC was wrong (WithPSK): strangers.
	Auth uint64 `json:"auth"`
	// Replayed counts authentic hellos seen before or out of time.
	Replayed uint64 `json:"replayed"`
	// Malformed counts first messages that were no hello of the kind
	// expected (garbage, truncated, or a hello without the secret).
	Malformed uint64 `json:"malformed"`
	// Evicted counts exchanges ended to make room (WithPSK).
	Evicted uint64 `json:"evicted"`
}

// HandshakeFailures counts encrypted flows that arrived and were
// dropped before Accept: their key exchange failed or timed out, or
// MaxHandshakes were already running.
func (l *Listener) HandshakeFailures() uint64 { return l.hsFail.Load() }

// Handshakes returns the counts of refused key exchanges.
func (l *Listener) Handshakes() HandshakeStats {
	return HandshakeStats{Failed: l.hsFail.Load(), Auth: l.hsc.auth.Load(), Replayed: l.hsc.replayed.Load(),
		Malformed: l.hsc.malformed.Load(), Evicted: l.hsc.evicted.Load()}
}

// ErrListenerClosed is returned by Accept after Close.
var ErrListenerClosed = errors.New("listener closed")

// listenDialWait bounds how long Listen waits for a control connection
// made by a WithDialer function.
const listenDialWait = 10 * time.Second

// Listen binds this process to name and starts taking its flows.
func Listen(name string, opts ...Option) (*Listener, error) {
	o := collect(opts)
	ctx, cancel := context.WithTimeout(context.Background(), listenDialWait)
	conn, err := o.connect(ctx)
	cancel()
	if err != nil {
		return nil, err
	}
	l := &Listener{name: name, queue: make(chan *Flow, AcceptQueue), direct: map[uint64]*Flow{},
		opts: o, shaking: map[*Flow]time.Time{}}
	l.peer = ctrl.NewPeer(conn, l.handle, nil)
	if _, err := l.peer.Call(context.Background(), ctrl.OpFlowListen, ctrl.FlowListen{Name: name}, nil); err != nil {
		l.peer.Close()
		l.peer.Wait()
		return nil, fmt.Errorf("listen on %q: %w", name, err)
	}
	return l, nil
}

func (l *Listener) handle(_ context.Context, req *ctrl.Request) (any, []*os.File, error) {
	if req.Op == ctrl.OpFlowDown {
		var e ctrl.IPCPFlowEnd
		if err := req.Decode(&e); err != nil {
			return nil, nil, err
		}
		l.mu.Lock()
		f := l.direct[e.ID]
		l.mu.Unlock()
		if f != nil {
			f.forceDown()
		}
		return nil, nil, nil
	}
	if req.Op != ctrl.OpFlowArrive {
		return nil, nil, fmt.Errorf("listener: unexpected %q", req.Op)
	}
	var fi ctrl.FlowInfo
	if err := req.Decode(&fi); err != nil {
		return nil, nil, err
	}
	file := req.TakeFile(0)
	if file == nil {
		return nil, nil, errors.New("flow arrived without a descriptor")
	}
	f, err := fromFiles(fi, []*os.File{file})
	if err != nil {
		return nil, nil, err
	}
	if l.opts.fwd {
		f.setForwarding()
	}
	if fi.Direct {
		id := fi.ID
		f.onClose = func() {
			l.mu.Lock()
			delete(l.direct, id)
			done := l.done
			if !done {
				l.ends.Add(1)
			}
			l.mu.Unlock()
			if done {
				return
			}
			// Tell the IRMd without holding up Close.
			go func() {
				defer l.ends.Done()
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				l.peer.Call(ctx, ctrl.OpFlowEnd, ctrl.IPCPFlowEnd{ID: id}, nil)
			}()
		}
	}
	if fi.QoS.Encrypt {
		l.mu.Lock()
		var victim *Flow
		if !l.done && len(l.shaking) >= MaxHandshakes && l.opts.pskNow() != nil {
			victim = l.evictOldestLocked()
		}
		if victim != nil {
			defer victim.closeRaw() // not under l.mu: a direct flow's onClose takes it
		}
		if l.done || len(l.shaking) >= MaxHandshakes {
			done := l.done
			l.mu.Unlock()
			f.closeRaw()
			if done {
				return nil, nil, ErrListenerClosed
			}
			l.hsFail.Add(1)
			return nil, nil, fmt.Errorf("%q: too many key exchanges running", l.name)
		}
		l.shaking[f] = time.Now()
		l.hs.Add(1)
		l.mu.Unlock()
		go func() {
			defer l.hs.Done()
			err := f.start(func() error { return f.serverHandshake(l.opts, &l.hsc) })
			l.mu.Lock()
			delete(l.shaking, f)
			l.mu.Unlock()
			if err != nil {
				l.hsFail.Add(1)
				return
			}
			l.enqueue(f, fi)
		}()
		return nil, nil, nil
	}
	return nil, nil, l.enqueue(f, fi)
}

// evictOldestLocked takes the oldest key exchange in progress out of
// the table and returns its flow, for the caller to close once it has
// let go of l.mu (the exchange's goroutine then sees the flow closed
// and counts the failure).
func (l *Listener) evictOldestLocked() *Flow {
	var old *Flow
	var at time.Time
	for f, t := range l.shaking {
		if old == nil || t.Before(at) {
			old, at = f, t
		}
	}
	if old != nil {
		delete(l.shaking, old)
		l.hsc.evicted.Add(1)
	}
	return old
}

// enqueue offers a ready flow to Accept.
func (l *Listener) enqueue(f *Flow, fi ctrl.FlowInfo) error {
	l.mu.Lock()
	if l.done {
		l.mu.Unlock()
		f.Close()
		return ErrListenerClosed
	}
	select {
	case l.queue <- f:
		if fi.Direct {
			l.direct[fi.ID] = f
		}
		l.mu.Unlock()
		return nil
	default:
		l.mu.Unlock()
		f.Close()
		return fmt.Errorf("accept queue of %q is full", l.name)
	}
}

// Accept waits for the next flow.
func (l *Listener) Accept(ctx context.Context) (*Flow, error) {
	select {
	case f, ok := <-l.queue:
		if !ok {
			return nil, ErrListenerClosed
		}
		return f, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-l.peer.Done():
		select {
		case f, ok := <-l.queue:
			if ok {
				return f, nil
			}
		default:
		}
		l.mu.Lock()
		closed := l.done
		l.mu.Unlock()
		if closed {
			return nil, ErrListenerClosed
		}
		return nil, fmt.Errorf("listen on %q: IRMd connection lost", l.name)
	}
}

// AcceptConn waits for the next flow as a net.Conn.
func (l *Listener) AcceptConn() (net.Conn, error) { return l.Accept(context.Background()) }

// Name returns the name listened on.
func (l *Listener) Name() string { return l.name }

// Addr returns the name as a net.Addr.
func (l *Listener) Addr() net.Addr { return Addr{Name: l.name} }

// Close stops taking flows; flows not yet accepted are deallocated.
func (l *Listener) Close() error {
	l.mu.Lock()
	if l.done {
		l.mu.Unlock()
		return nil
	}
	l.done = true
	var shaking []*Flow
	for f := range l.shaking {
		shaking = append(shaking, f)
	}
	l.mu.Unlock()
	for _, f := range shaking {
		f.closeRaw() // ends its key exchange
	}
	l.hs.Wait()
	l.ends.Wait()
	l.peer.Close()
	l.peer.Wait()
	close(l.queue)
	for f := range l.queue {
		f.Close()
	}
	return nil
}

// Serve accepts flows and runs handle for each in its own goroutine,
// closing the flow when handle returns, until ctx ends or Accept fails.
// It then closes the flows still open (their handlers' Reads and Writes
// return) and waits for every handler. It returns nil when ctx ended,
// or Accept's error.
func (l *Listener) Serve(ctx context.Context, handle func(f *Flow)) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	var mu sync.Mutex
	open := map[*Flow]bool{}
	defer func() {
		mu.Lock()
		for f := range open {
			f.Close()
		}
		mu.Unlock()
	}()
	for {
		f, err := l.Accept(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		mu.Lock()
		open[f] = true
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			handle(f)
			mu.Lock()
			delete(open, f)
			mu.Unlock()
			f.Close()
		}()
	}
}
