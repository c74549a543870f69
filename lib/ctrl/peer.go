package ctrl

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/vmihailenco/msgpack/v5"
)

// Handler serves one incoming request. The response value is encoded as
// the reply body; files returned are sent with the reply and then
// closed. A returned error travels to the caller as its message.
type Handler func(ctx context.Context, req *Request) (resp any, files []*os.File, err error)

// Request is one incoming request as a Handler sees it.
type Request struct {
	Op    string
	Body  msgpack.RawMessage
	Peer  *Peer
	files []*os.File
}

// Decode decodes the request body into v.
func (r *Request) Decode(v any) error {
	if err := Unmarshal(r.Body, v); err != nil {
		return fmt.Errorf("%s: %w", r.Op, err)
	}
	return nil
}

// NumFiles reports how many descriptors came with the request.
func (r *Request) NumFiles() int { return len(r.files) }

// TakeFile hands descriptor i to the caller, who must close it. Files
// not taken are closed when the handler returns.
func (r *Request) TakeFile(i int) *os.File {
	if i < 0 || i >= len(r.files) {
		return nil
	}
	f := r.files[i]
	r.files[i] = nil
	return f
}

// RemoteError is an error reported by the other end of a Peer.
type RemoteError struct{ Msg string }

func (e *RemoteError) Error() string { return e.Msg }

// ErrPeerClosed is returned by Call once the connection is gone.
var ErrPeerClosed = errors.New("control connection closed")

type result struct {
	msg   *Msg
	files []*os.File
}

// Peer multiplexes requests and replies in both directions over a Conn.
// It owns one reader goroutine and one goroutine per request in flight;
// Close stops them and Wait waits for them.
type Peer struct {
	conn *Conn
	h    Handler
	log  hclog.Logger
	lim  Limits
	// slots holds one token per request being served (nil: no cap).
	slots chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	done   chan struct{}

	mu      sync.Mutex
	next    uint64
	pending map[uint64]chan result
	// partial holds the parts received so far of split replies.
	partial map[uint64][]byte
	err     error
	bad     uint64
	refused uint64
}

// Limits bound what one peer can make this end hold. The zero value
// bounds nothing.
type Limits struct {
	// MaxInFlight caps the requests served at once. A request beyond
	// it waits for a slot up to Wait (back-pressure: the reader stops
	// reading, so the sender's socket fills and it blocks), then is
	// answered with an error without being served.
	MaxInFlight int
	Wait        time.Duration
	// SendTimeout bounds each message sent; a peer that does not read
	// its replies for that long is disconnected.
	SendTimeout time.Duration
	// MaxReply bounds a reply reassembled from parts (default
	// DefaultMaxReply); a longer one fails its call.
	MaxReply int
}

// DefaultMaxReply bounds a reply split over several records, sent or
// received.
const DefaultMaxReply = 16 << 20

// ErrBusy is the error a request refused by MaxInFlight is answered with.
var ErrBusy = errors.New("too many requests in flight")

// NewPeer starts serving c with handler h (which may be nil when the
// other end never calls).
func NewPeer(c *Conn, h Handler, log hclog.Logger) *Peer {
	return NewPeerLimited(c, h, log, Limits{})
}

// NewPeerLimited is NewPeer with limits on what the other end can make
// this end hold.
func NewPeerLimited(c *Conn, h Handler, log hclog.Logger, lim Limits) *Peer {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Peer{conn: c, h: h, log: log, lim: lim, ctx: ctx, cancel: cancel,
		done: make(chan struct{}), pending: make(map[uint64]chan result), partial: make(map[uint64][]byte)}
	if lim.MaxInFlight > 0 {
		p.slots = make(chan struct{}, lim.MaxInFlight)
	}
	if lim.SendTimeout > 0 {
		c.SetSendTimeout(lim.SendTimeout)
	}
	p.wg.Add(1)
	go p.readLoop()
	return p
}

// Conn returns the underlying connection.
func (p *Peer) Conn() *Conn { return p.conn }

// Done is closed when the connection is lost or closed.
func (p *Peer) Done() <-chan struct{} { return p.done }

// Context is cancelled when the connection is lost or closed.
func (p *Peer) Context() context.Context { return p.ctx }

// Err reports why the connection ended.
func (p *Peer) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Malformed reports how many bad messages were received and dropped.
func (p *Peer) Malformed() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.bad
}

// Refused reports how many requests were answered ErrBusy unserved, or
// ended the connection because their reply could not be delivered.
func (p *Peer) Refused() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.refused
}

// Close shuts the connection; calls in flight fail. It does not wait.
func (p *Peer) Close() error {
	p.cancel()
	return p.conn.Close()
}

// Wait blocks until the reader and every handler have returned.
func (p *Peer) Wait() { p.wg.Wait() }

// Call sends a request and waits for its reply, decoding the reply body
// into resp (if non-nil). The caller keeps ownership of files and owns
// the descriptors returned.
func (p *Peer) Call(ctx context.Context, op string, req, resp any, files ...*os.File) ([]*os.File, error) {
	body, err := Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("%s: encode: %w", op, err)
	}
	ch := make(chan result, 1)
	p.mu.Lock()
	if p.err != nil {
		err := p.err
		p.mu.Unlock()
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	p.next++
	id := p.next
	p.pending[id] = ch
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.pending, id)
		delete(p.partial, id)
		p.mu.Unlock()
	}()
	if err := p.conn.Send(&Msg{Kind: KindRequest, ID: id, Op: op, Body: body}, files...); err != nil {
		return nil, err
	}
	select {
	case r := <-ch:
		if r.msg == nil {
			return nil, fmt.Errorf("%s: %w", op, ErrPeerClosed)
		}
		if r.msg.Err != "" {
			closeFiles(r.files)
			return nil, &RemoteError{Msg: r.msg.Err}
		}
		if err := Unmarshal(r.msg.Body, resp); err != nil {
			closeFiles(r.files)
			return nil, fmt.Errorf("%s: reply: %w", op, err)
		}
		return r.files, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: %w", op, ctx.Err())
	case <-p.done:
		// A reply may have raced with the close.
		select {
		case r := <-ch:
			if r.msg != nil && r.msg.Err == "" {
				if err := Unmarshal(r.msg.Body, resp); err == nil {
					return r.files, nil
				}
			}
			closeFiles(r.files)
		default:
		}
		return nil, fmt.Errorf("%s: %w", op, ErrPeerClosed)
	}
}

func (p *Peer) readLoop() {
	defer p.wg.Done()
	var err error
	for {
		var m *Msg
		var files []*os.File
		m, files, err = p.conn.Recv()
		if err != nil {
			if IsRecoverable(err) {
				p.mu.Lock()
				p.bad++
				p.mu.Unlock()
				p.log.Warn("dropped control message", "error", err)
				if m != nil && m.Kind == KindRequest && m.ID != 0 {
					p.conn.Send(&Msg{Kind: KindReply, ID: m.ID, Op: m.Op, Err: err.Error()})
				}
				continue
			}
			break
		}
		switch m.Kind {
		case KindReply:
			p.reply(m, files)
		case KindRequest:
			if !p.acquire() {
				closeFiles(files)
				p.refuse(&Msg{Kind: KindReply, ID: m.ID, Op: m.Op,
					Err: fmt.Sprintf("%s: %v (at most %d at once): request refused", m.Op, ErrBusy, p.lim.MaxInFlight)})
				continue
			}
			p.wg.Add(1)
			go p.serve(m, files)
		}
	}
	p.mu.Lock()
	if p.err == nil {
		p.err = fmt.Errorf("%w: %v", ErrPeerClosed, err)
	}
	p.mu.Unlock()
	p.cancel()
	close(p.done)
}

// reply delivers a reply (or one part of a split reply) to its caller;
// readLoop only. A reply nobody waits for is dropped; each caller gets
// exactly one result, so a peer answering twice cannot block the reader.
func (p *Peer) reply(m *Msg, files []*os.File) {
	p.mu.Lock()
	ch, ok := p.pending[m.ID]
	if !ok {
		delete(p.partial, m.ID)
		p.mu.Unlock()
		closeFiles(files)
		return
	}
	if m.More || len(m.Part) > 0 || p.partial[m.ID] != nil {
		buf := append(p.partial[m.ID], m.Part...)
		if max := p.maxReply(); len(buf) > max {
			delete(p.partial, m.ID)
			delete(p.pending, m.ID)
			p.mu.Unlock()
			closeFiles(files)
			ch <- result{msg: &Msg{Kind: KindReply, ID: m.ID, Op: m.Op,
				Err: fmt.Sprintf("%s: reply over %d bytes refused", m.Op, max)}}
			return
		}
		if m.More {
			p.partial[m.ID] = buf
			p.mu.Unlock()
			closeFiles(files)
			return
		}
		delete(p.partial, m.ID)
		m.Body, m.Part = buf, nil
	}
	delete(p.pending, m.ID)
	p.mu.Unlock()
	ch <- result{msg: m, files: files}
}

func (p *Peer) maxReply() int {
	if p.lim.MaxReply > 0 {
		return p.lim.MaxReply
	}
	return DefaultMaxReply
}

// acquire takes a serving slot, waiting up to lim.Wait; it reports
// false if none came free.
func (p *Peer) acquire() bool {
	if p.slots == nil {
		return true
	}
	select {
	case p.slots <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(p.lim.Wait)
	defer t.Stop()
	select {
	case p.slots <- struct{}{}:
		return true
	case <-t.C:
	case <-p.ctx.Done():
	}
	return false
}

// refuse counts a refused request and answers it.
func (p *Peer) refuse(reply *Msg) {
	p.mu.Lock()
	p.refused++
	n := p.refused
	p.mu.Unlock()
	if n&(n-1) == 0 { // 1, 2, 4, 8...: a flood does not flood the log
		p.log.Warn("request refused", "op", reply.Op, "refused", n, "reason", reply.Err)
	}
	p.send(reply)
}

// send sends a reply; a reply the other end does not take within the
// send timeout ends the connection (it is not reading).
func (p *Peer) send(reply *Msg, files ...*os.File) bool {
	err := p.conn.Send(reply, files...)
	if err == nil {
		return true
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		p.mu.Lock()
		p.refused++
		p.mu.Unlock()
		p.log.Warn("peer does not read its replies: disconnecting", "op", reply.Op, "timeout", p.lim.SendTimeout)
		p.Close()
		return false
	}
	if errors.Is(err, ErrTooBig) && reply.Kind == KindReply {
		// An oversized envelope (a huge op name echoed back): answer
		// with the bare error rather than leave the caller waiting.
		return p.send(&Msg{Kind: KindReply, ID: reply.ID, Err: "reply too big for one control record"})
	}
	p.log.Debug("reply not sent", "op", reply.Op, "error", err)
	return false
}

func (p *Peer) serve(m *Msg, files []*os.File) {
	defer p.wg.Done()
	if p.slots != nil {
		defer func() { <-p.slots }()
	}
	req := &Request{Op: m.Op, Body: m.Body, Peer: p, files: files}
	defer closeFiles(req.files)
	reply := &Msg{Kind: KindReply, ID: m.ID, Op: m.Op}
	var out []*os.File
	if p.h == nil {
		reply.Err = "no handler for " + m.Op
	} else {
		resp, fs, err := p.h(p.ctx, req)
		out = fs
		if err != nil {
			reply.Err = err.Error()
		} else if body, err := Marshal(resp); err != nil {
			reply.Err = "encode reply: " + err.Error()
		} else if len(body) > DefaultMaxReply {
			// Never dropped silently: the caller learns why.
			reply.Err = fmt.Sprintf("%s: reply of %d bytes is too big (at most %d)", m.Op, len(body), DefaultMaxReply)
			closeFiles(out)
			out = nil
		} else if len(body) > MaxBody {
			// Too big for one record: send it in parts, the
			// descriptors with the last.
			for len(body) > MaxBody {
				if !p.send(&Msg{Kind: KindReply, ID: m.ID, Op: m.Op, Part: body[:MaxBody], More: true}) {
					closeFiles(out)
					return
				}
				body = body[MaxBody:]
			}
			reply.Part = body
		} else {
			reply.Body = body
		}
	}
	p.send(reply, out...)
	closeFiles(out)
}
