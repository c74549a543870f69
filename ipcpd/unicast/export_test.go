package unicast

import (
	"context"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ouro-net/ouro/dt"
	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/ipcpd"
	"github.com/ouro-net/ouro/layer"
	"github.com/ouro-net/ouro/lib/clock"
	"github.com/ouro-net/ouro/lib/liveness"
	"github.com/ouro-net/ouro/lib/pipe"
	"github.com/ouro-net/ouro/routing"
)

// ForwardLoop is the forwarding loop of an IPCP at address 1 with one
// adjacency (lower) towards address 2 and one local endpoint (ep), for
// the allocation test.
type ForwardLoop struct {
	u                    *IPCP
	a                    *adj
	out                  outBatch
	buf, toOther, toSelf []byte
}

// NewForwardLoop builds the IPCP state the loop needs, no more.
func NewForwardLoop(lower *flow.Flow, ep *pipe.Pipe) (*ForwardLoop, error) {
	const self, other, hop, eid = 1, 2, 7, 9
	u := &IPCP{layout: dt.DefaultLayout(), addr: self, fib: dt.NewFIB(1), clk: clock.Real(), ctx: context.Background()}
	u.cfg.TTL = 16
	a := &adj{id: hop, f: lower}
	adjs := map[uint64]*adj{hop: a}
	u.adjs.Store(&adjs)
	u.fib.Set(other, dt.Entry{Primary: []dt.NextHop{{ID: hop}}})
	u.eps.Store(uint64(eid), &endpoint{eid: eid, f: &ipcpd.Flow{Pipe: ep}})
	l := &ForwardLoop{u: u, a: a}
	for _, p := range []struct {
		dst uint64
		b   *[]byte
	}{{other, &l.toOther}, {self, &l.toSelf}} {
		*p.b = make([]byte, 1+u.layout.Len()+64)
		(*p.b)[0] = kindDT
		if _, err := u.layout.Encode((*p.b)[1:], &dt.PCI{Dst: p.dst, TTL: 64, EID: eid}); err != nil {
			return nil, err
		}
	}
	l.buf = make([]byte, len(l.toOther))
	return l, nil
}

// Step forwards one packet to address 2 and delivers one to the local
// endpoint, as readAdj does: receiveFrame, then flush.
func (l *ForwardLoop) Step() {
	copy(l.buf, l.toOther) // forwarding decrements the TTL in place
	l.u.receiveFrame(l.a, &l.out, l.buf)
	l.u.flush(&l.out)
	l.u.receiveFrame(l.a, &l.out, l.toSelf)
	l.u.flush(&l.out)
}

// Counts returns the packets forwarded and delivered, and all dropped.
func (l *ForwardLoop) Counts() (fwd, local, dropped uint64) {
	s := &l.u.stats
	return s.fwd.Load(), s.local.Load(), s.noRoute.Load() + s.ttl.Load() + s.malformed.Load() + s.noEndpoint.Load()
}

// DeallocCopies and DeallocGap are how a deallocation is repeated.
const DeallocCopies, DeallocGap = deallocCopies, deallocGap

// UseClock sets the IPCP's clock (for the repeated deallocations).
func (l *ForwardLoop) UseClock(c clock.Clock) { l.u.clk = c }

// Await registers a pending allocation of local endpoint eid, as Alloc
// does while it waits, and returns where its answer arrives.
func (l *ForwardLoop) Await(eid uint64) <-chan layer.FAMsg {
	ch := make(chan layer.FAMsg, 1)
	l.u.mu.Lock()
	if l.u.pending == nil {
		l.u.pending = map[uint64]chan layer.FAMsg{}
	}
	l.u.pending[eid] = ch
	l.u.mu.Unlock()
	return ch
}

// Receive hands the IPCP a flow-allocation message from address 2, as
// it arrives over the adjacency.
func (l *ForwardLoop) Receive(m layer.FAMsg) error {
	body, err := layer.EncodeFA(&m)
	if err != nil {
		return err
	}
	pkt := make([]byte, 1+l.u.layout.Len()+len(body))
	pkt[0] = kindDT
	if _, err := l.u.layout.Encode(pkt[1:], &dt.PCI{Dst: l.u.addr, TTL: 16}); err != nil {
		return err
	}
	copy(pkt[1+l.u.layout.Len():], body)
	l.u.receiveFrame(l.a, &l.out, pkt)
	l.u.flush(&l.out)
	return nil
}

// Damper is the flap damping of one lower flow (adj.go suspendAs,
// revive, holdTime) on an IPCP with a second, steady lower flow, for
// tests in virtual time. The flows carry data only (component dt), so
// no routing event is involved.
type Damper struct {
	u        *IPCP
	a, other *adj
	damping  time.Duration
}

// NewDamper builds it with the given clock, hello interval, multiplier
// and damping interval.
func NewDamper(clk clock.Clock, hello time.Duration, multiplier int, damping time.Duration) (*Damper, error) {
	u := &IPCP{clk: clk, ctx: context.Background(), log: hclog.NewNullLogger(), fib: dt.NewFIB(1),
		layout: dt.DefaultLayout(), addr: 1, adjList: map[uint64]*adj{}}
	u.cfg.HelloInterval, u.cfg.HelloMultiplier, u.cfg.Damping = hello, multiplier, damping
	r, err := routing.New(routing.Config{Self: 1, Clock: clk, Send: func(uint64, []byte) {}, OnTable: func(routing.Table) {}})
	if err != nil {
		return nil, err
	}
	u.router = r
	d := &Damper{u: u, damping: damping,
		a: &adj{id: 1, peer: 2, comp: "dt", cost: 1}, other: &adj{id: 2, peer: 3, comp: "dt", cost: 1}}
	for _, a := range []*adj{d.a, d.other} {
		a.up.Store(true)
		a.carrier.Store(true)
		u.adjList[a.id] = a
	}
	u.publishAdjsLocked()
	return d, nil
}

// Close stops the router.
func (d *Damper) Close() { d.u.router.Close() }

// Suspend takes the damped flow out of service: hard for carrier loss,
// otherwise for silence.
func (d *Damper) Suspend(hard bool) { d.u.suspendAs(d.a, "test", hard) }

// Revive puts it back.
func (d *Damper) Revive() { d.u.revive(d.a, "test") }

// HoldTime is how long the damped flow must now stay down.
func (d *Damper) HoldTime() time.Duration { return d.u.holdTime(d.a, d.damping) }

// Flaps is its flap count.
func (d *Damper) Flaps() int {
	d.u.mu.Lock()
	defer d.u.mu.Unlock()
	return d.a.flaps
}

// SetOther sets the steady flow up or down.
func (d *Damper) SetOther(up bool) {
	d.other.up.Store(up)
	d.u.mu.Lock()
	d.u.publishAdjsLocked()
	d.u.mu.Unlock()
}

// LiveProbe is the keepalive of one lower flow (live.go tickAdj) on an
// IPCP in virtual time, hello 10 ms x 3, with a second lower flow to
// another peer (so that a suspension is allowed), for tests. The peer
// at the far end of lower never answers a poll: it is as silent as a
// loaded peer that answers late.
type LiveProbe struct {
	u        *IPCP
	a, other *adj
	data     []byte
}

// NewLiveProbe builds it over lower, with the given clock.
func NewLiveProbe(clk clock.Clock, lower *flow.Flow) (*LiveProbe, error) {
	u := &IPCP{clk: clk, ctx: context.Background(), log: hclog.NewNullLogger(), fib: dt.NewFIB(1),
		layout: dt.DefaultLayout(), addr: 1, adjList: map[uint64]*adj{}}
	u.cfg.HelloInterval, u.cfg.HelloMultiplier, u.cfg.TTL = 10*time.Millisecond, 3, 16
	r, err := routing.New(routing.Config{Self: 1, Clock: clk, Send: func(uint64, []byte) {}, OnTable: func(routing.Table) {}})
	if err != nil {
		return nil, err
	}
	u.router = r
	p := &LiveProbe{u: u,
		a:     &adj{id: 1, peer: 2, f: lower, cost: 1, hello: make(chan struct{}, 1), done: make(chan struct{})},
		other: &adj{id: 2, peer: 3, comp: "dt", cost: 1, hello: make(chan struct{}, 1), done: make(chan struct{})}}
	for _, a := range []*adj{p.a, p.other} {
		a.up.Store(true)
		a.carrier.Store(true)
		u.adjList[a.id] = a
	}
	u.publishAdjsLocked()
	u.fib.Set(2, dt.Entry{Primary: []dt.NextHop{{ID: p.a.id}}})
	p.data = make([]byte, 1+u.layout.Len()+64)
	p.data[0] = kindDT
	if _, err := u.layout.Encode(p.data[1:], &dt.PCI{Dst: 2, TTL: 16, EID: 9}); err != nil {
		return nil, err
	}
	p.Heard()
	return p, nil
}

// Close stops the router.
func (p *LiveProbe) Close() { p.u.router.Close() }

// Heard stamps an arrival from the peer now, as the flow's reader does.
func (p *LiveProbe) Heard() { p.a.lastRx.Store(p.u.clk.Now().UnixNano()) }

// SendMgmt sends the peer a management frame (an acknowledgement, as
// for each routing or directory update the peer floods).
func (p *LiveProbe) SendMgmt() { p.u.ackMgmt(p.a, make([]byte, mgmtSeqLen)) }

// SendData forwards one data packet through the peer.
func (p *LiveProbe) SendData() bool {
	return p.u.forward(append([]byte(nil), p.data...), 2, 9, 0)
}

// Tick runs one keepalive round of the flow now, on time, and returns
// how long it may wait for the next.
func (p *LiveProbe) Tick() time.Duration {
	var otherRx int64
	if p.other.peer == p.a.peer {
		otherRx = p.other.lastRx.Load()
	}
	return p.u.tickAdj(p.a, p.u.clk.Now(), 0, otherRx)
}

// SiblingToSamePeer makes the second lower flow go to the same peer,
// last heard at heard (an idle one: a hello every Idle).
func (p *LiveProbe) SiblingToSamePeer(heard time.Time) {
	p.other.peer = p.a.peer
	p.other.lastRx.Store(heard.UnixNano())
}

// SiblingPolled reports whether a poll was asked on the second flow
// since the last call, and forgets it.
func (p *LiveProbe) SiblingPolled() bool {
	f := p.other.live.flags.Swap(0)
	select {
	case <-p.other.hello:
	default:
	}
	return f&liveness.Poll != 0
}

// SiblingHeard stamps an arrival from the peer on the second flow now.
func (p *LiveProbe) SiblingHeard() { p.other.lastRx.Store(p.u.clk.Now().UnixNano()) }

// Up says whether the flow is in service.
func (p *LiveProbe) Up() bool { return p.a.up.Load() }
