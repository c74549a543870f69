package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/lib/clock"
)

// maxQueueBytes bounds the bytes queued for one client, whatever its
// flow's MTU (a local layer's flows take 64 KiB packets).
const maxQueueBytes = 1 << 20

// server routes IP packets between its TUN device and its clients' flows.
type server struct {
	cfg  *config
	tun  packetDev
	self netip.Prefix
	st   *counters
	rep  *reporter
	clk  clock.Clock

	mu      sync.Mutex
	flows   map[*flow.Flow]struct{} // flows being served, hello or not
	byAddr  map[netip.Addr]*client  // clients that said hello
	closing bool
	wg      sync.WaitGroup
	// lingering bounds the goroutines answering refused flows.
	lingering chan struct{}
	// setMTU, if set, is told the smallest flow MTU among the clients.
	setMTU func(int) error
}

// packetDev is the TUN device as the data path sees it.
type packetDev interface {
	io.ReadWriter
}

// client is one client's flow at the server.
type client struct {
	f       *flow.Flow
	addr    netip.Addr
	session uint64
	mtu     int
	out     chan []byte   // packets for the flow, bounded in number
	queued  atomic.Int64  // and in bytes
	done    chan struct{} // closed when the client's handler ends
	kicked  chan struct{} // closed when another flow of the same session took over
}

func newServer(cfg *config, tun packetDev, st *counters, rep *reporter) *server {
	return &server{cfg: cfg, tun: tun, self: cfg.prefix, st: st, rep: rep, clk: cfg.clock,
		byAddr: map[netip.Addr]*client{}, flows: map[*flow.Flow]struct{}{}, lingering: make(chan struct{}, 16)}
}

// serve accepts flows on l and routes until ctx ends; it then closes
// every client's flow and waits for their goroutines. fromTUN runs
// beside it, owned by the caller.
func (s *server) serve(ctx context.Context, l *flow.Listener) error {
	var err error
	for {
		f, aerr := l.Accept(ctx)
		if aerr != nil {
			if ctx.Err() == nil {
				err = fmt.Errorf("accept: %w", aerr)
			}
			break
		}
		s.mu.Lock()
		if len(s.flows) >= s.cfg.maxClients || s.closing {
			s.mu.Unlock()
			s.st.drop("refused-full")
			reason := fmt.Sprintf("server full: it takes %d clients", s.cfg.maxClients)
			select {
			case s.lingering <- struct{}{}:
				// Refuse, and answer hellos with the refusal for a while
				// (raw flows lose packets), in a bounded number of goroutines.
				s.wg.Add(1)
				go func() {
					defer s.wg.Done()
					s.refuse(f, refuseFull, reason)
					f.Close()
					<-s.lingering
				}()
			default:
				// Too many refusals at once: one answer, then let go.
				f.Write(control{Type: msgRefuse, Code: refuseFull, Reason: reason}.encode())
				f.Close()
			}
			continue
		}
		s.flows[f] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		s.st.track(f)
		go func() {
			defer s.wg.Done()
			defer s.st.retire(f)
			s.handle(f)
			s.mu.Lock()
			delete(s.flows, f)
			s.mu.Unlock()
		}()
	}
	s.mu.Lock()
	s.closing = true
	for f := range s.flows {
		f.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

// fromTUN reads packets from the TUN device and queues each for the
// client that owns its destination. It returns when the device is closed.
func (s *server) fromTUN() error {
	buf := make([]byte, maxMTU)
	for {
		n, err := s.tun.Read(buf)
		if err != nil {
			return fmt.Errorf("read TUN: %w", err)
		}
		dst, ok := ipDst(buf[:n])
		if !ok {
			s.st.drop(dropNotIP)
			continue
		}
		s.mu.Lock()
		c := s.byAddr[dst]
		s.mu.Unlock()
		if c == nil {
			s.st.drop(dropNoRoute)
			continue
		}
		s.enqueue(c, buf[:n])
	}
}

// enqueue queues a copy of p for c, or counts a drop when c's queue is full.
func (s *server) enqueue(c *client, p []byte) {
	if c.mtu > 0 && len(p) > c.mtu {
		s.st.drop(dropTooBig)
		return
	}
	if c.queued.Add(int64(len(p))) > maxQueueBytes {
		c.queued.Add(-int64(len(p)))
		s.st.drop(dropQueueFull)
		return
	}
	select {
	case c.out <- append([]byte(nil), p...):
	default:
		c.queued.Add(-int64(len(p)))
		s.st.drop(dropQueueFull)
	}
}

// handle serves one flow: hello first, then packets both ways.
func (s *server) handle(f *flow.Flow) {
	defer f.Close()
	buf := make([]byte, maxMTU)
	c, err := s.hello(f, buf)
	if err != nil {
		s.rep.emit(event{Event: "refused", Flow: f.ID(), Error: err.Error()},
			fmt.Sprintf("flow %d refused: %v", f.ID(), err))
		return
	}
	s.rep.emit(event{Event: "client-up", Peer: c.addr.String(), Flow: f.ID(), MTU: c.mtu, Clients: s.count()},
		fmt.Sprintf("client %s up on flow %d (mtu %d)", c.addr, f.ID(), c.mtu))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.toClient(c)
	}()
	why := s.fromClient(c, buf)
	close(c.done)
	f.Close() // a write blocked in toClient returns
	wg.Wait()
	s.mu.Lock()
	if s.byAddr[c.addr] == c {
		delete(s.byAddr, c.addr)
	}
	s.mu.Unlock()
	s.updateMTU()
	s.rep.emit(event{Event: "client-down", Peer: c.addr.String(), Flow: f.ID(), Error: why, Clients: s.count()},
		fmt.Sprintf("client %s down on flow %d: %s", c.addr, f.ID(), why))
}

// count returns the number of clients, for status lines.
func (s *server) count() *int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.byAddr)
	return &n
}

// hello waits for a valid hello on f and registers its client, or
// refuses it. Garbage before the hello is counted and ignored until the
// hello timeout.
func (s *server) hello(f *flow.Flow, buf []byte) (*client, error) {
	f.SetReadDeadline(time.Now().Add(s.cfg.helloTimeout))
	defer f.SetReadDeadline(time.Time{})
	for {
		n, err := f.Read(buf)
		if err != nil {
			return nil, fmt.Errorf("no hello: %w", err)
		}
		m, err := decodeControl(buf[:n])
		var ve *versionError
		switch {
		case errors.Is(err, errNotControl):
			s.st.drop(dropEarly)
			continue
		case errors.As(err, &ve):
			s.refuseHello(f, refuseVersion, err.Error())
			return nil, err
		case err != nil:
			s.st.drop(dropBadControl)
			continue
		case m.Type != msgHello:
			s.st.drop(dropEarly)
			continue
		}
		c, code, err := s.admit(f, m)
		if err != nil {
			s.refuseHello(f, code, err.Error())
			return nil, err
		}
		s.welcome(c)
		return c, nil
	}
}

// admit checks a hello's address and registers its client. A client
// presenting the session of the address's current owner replaces it (it
// reconnected after its old flow died).
func (s *server) admit(f *flow.Flow, m control) (*client, byte, error) {
	a := m.Prefix.Addr()
	switch {
	case !s.self.Contains(a) || a == s.self.Addr() || !m.Prefix.IsValid():
		return nil, refuseAddress, fmt.Errorf("address %s is not a host address of this server's prefix %s other than %s",
			a, s.self.Masked(), s.self.Addr())
	case a.Is4() && s.self.Bits() < 31 && (a == s.self.Masked().Addr() || a == lastAddr(s.self)):
		return nil, refuseAddress, fmt.Errorf("address %s is the network or broadcast address of %s", a, s.self.Masked())
	}
	mtu := f.MTU()
	c := &client{f: f, addr: a, session: m.Session, mtu: mtu, out: make(chan []byte, s.cfg.queue),
		done: make(chan struct{}), kicked: make(chan struct{})}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil, refuseFull, errors.New("server closing")
	}
	if old := s.byAddr[a]; old != nil {
		if old.session != m.Session {
			s.mu.Unlock()
			s.st.drop("refused-conflict")
			return nil, refuseConflict, fmt.Errorf("address %s is in use by another client", a)
		}
		close(old.kicked)
		old.f.Close()
	}
	s.byAddr[a] = c
	s.mu.Unlock()
	s.updateMTU()
	return c, 0, nil
}

// lastAddr returns the highest address of p (IPv4 broadcast).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// updateMTU sets the TUN MTU to the smallest among the clients' flows.
func (s *server) updateMTU() {
	if s.setMTU == nil {
		return
	}
	s.mu.Lock()
	m := 0
	for _, c := range s.byAddr {
		if c.mtu > 0 && (m == 0 || c.mtu < m) {
			m = c.mtu
		}
	}
	s.mu.Unlock()
	if m > 0 {
		if err := s.setMTU(m); err != nil {
			s.rep.emit(event{Event: "error", Error: err.Error()}, fmt.Sprintf("set MTU %d: %v", m, err))
		}
	}
}

// refuseHello refuses a flow whose hello was not admitted. A refused
// flow is no client: it stops counting against --max-clients at once,
// so that a client arriving while the server still answers the refused
// one's hellos is not told the server is full. It lingers with its
// answer only within the bound on lingering refusals, as a flow refused
// for a full server does; past it, one answer.
func (s *server) refuseHello(f *flow.Flow, code byte, reason string) {
	s.mu.Lock()
	delete(s.flows, f)
	s.mu.Unlock()
	select {
	case s.lingering <- struct{}{}:
		s.refuse(f, code, reason)
		<-s.lingering
	default:
		f.Write(control{Type: msgRefuse, Code: code, Reason: reason}.encode())
	}
}

// refuse answers f with the refusal, and answers its hellos again for
// refuseLinger.
func (s *server) refuse(f *flow.Flow, code byte, reason string) {
	f.Write(control{Type: msgRefuse, Code: code, Reason: reason}.encode())
	// Raw flows lose packets: answer again briefly, so that a refusal
	// reaches a client that keeps saying hello.
	f.SetReadDeadline(time.Now().Add(s.cfg.refuseLinger))
	buf := make([]byte, 512)
	for {
		n, err := f.Read(buf)
		if err != nil {
			return
		}
		if m, err := decodeControl(buf[:n]); err == nil && m.Type == msgHello {
			f.Write(control{Type: msgRefuse, Code: code, Reason: reason}.encode())
		}
	}
}

func (s *server) welcome(c *client) {
	c.f.Write(control{Type: msgWelcome, Prefix: s.self, MTU: c.mtu}.encode())
}

// fromClient reads c's flow until it fails, is replaced, or stays silent
// for the dead interval, and returns why it stopped.
func (s *server) fromClient(c *client, buf []byte) string {
	var armed time.Time
	for {
		// Flow deadlines are wall-clock; rearming on every packet would
		// cost a timer update each, so rearm when a quarter has passed.
		if now := time.Now(); now.Sub(armed) > s.cfg.dead/4 {
			c.f.SetReadDeadline(now.Add(s.cfg.dead))
			armed = now
		}
		n, err := c.f.Read(buf)
		if err != nil {
			select {
			case <-c.kicked:
				return "replaced by a new flow of the same client"
			default:
			}
			if errors.Is(err, io.EOF) {
				return "client closed the flow"
			}
			if isTimeout(err) {
				return fmt.Sprintf("silent for %v", s.cfg.dead)
			}
			return err.Error()
		}
		p := buf[:n]
		if isControl(p) {
			m, err := decodeControl(p)
			switch {
			case err != nil:
				s.st.drop(dropBadControl)
			case m.Type == msgHello && m.Session == c.session && m.Prefix.Addr() == c.addr:
				s.welcome(c) // our welcome was lost
			case m.Type == msgKeepalive:
			default:
				s.st.drop(dropBadControl)
			}
			continue
		}
		src, ok := ipSrc(p)
		if !ok {
			s.st.drop(dropNotIP)
			continue
		}
		if src != c.addr {
			s.st.drop(dropSpoofed)
			continue
		}
		dst, _ := ipDst(p)
		s.mu.Lock()
		other := s.byAddr[dst]
		s.mu.Unlock()
		if other != nil && other != c {
			// Client to client: straight across, not through the kernel.
			s.st.in(n)
			s.enqueue(other, p)
			continue
		}
		if _, err := s.tun.Write(p); err != nil {
			s.st.drop(dropWrite)
			continue
		}
		s.st.in(n)
	}
}

// toClient writes c's queued packets to its flow, and a keepalive when
// nothing else went for a keepalive interval, until c's handler ends.
func (s *server) toClient(c *client) {
	t := s.clk.NewTimer(s.cfg.keepalive)
	defer t.Stop()
	sent := false
	ka := control{Type: msgKeepalive}.encode()
	for {
		select {
		case <-c.done:
			return
		case p := <-c.out:
			c.queued.Add(-int64(len(p)))
			if _, err := c.f.Write(p); err != nil {
				if errors.Is(err, flow.ErrTooBig) {
					s.st.drop(dropTooBig)
				} else {
					s.st.drop(dropWrite)
				}
				continue
			}
			s.st.out(len(p))
			sent = true
		case <-t.C():
			if !sent {
				c.f.Write(ka)
			}
			sent = false
			t.Reset(s.cfg.keepalive)
		}
	}
}

// isTimeout reports a deadline error.
func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}
