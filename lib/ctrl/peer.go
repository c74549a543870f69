package ctrl

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

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

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	done   chan struct{}

	mu      sync.Mutex
	next    uint64
	pending map[uint64]chan result
	err     error
	bad     uint64
}

// NewPeer starts serving c with handler h (which may be nil when the
// other end never calls).
func NewPeer(c *Conn, h Handler, log hclog.Logger) *Peer {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Peer{conn: c, h: h, log: log, ctx: ctx, cancel: cancel,
		done: make(chan struct{}), pending: make(map[uint64]chan result)}
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
			p.mu.Lock()
			ch, ok := p.pending[m.ID]
			p.mu.Unlock()
			if !ok {
				closeFiles(files)
				continue
			}
			ch <- result{msg: m, files: files}
		case KindRequest:
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

func (p *Peer) serve(m *Msg, files []*os.File) {
	defer p.wg.Done()
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
		} else {
			reply.Body = body
		}
	}
	if err := p.conn.Send(reply, out...); err != nil {
		p.log.Debug("reply not sent", "op", m.Op, "error", err)
	}
	closeFiles(out)
}
