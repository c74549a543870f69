package unicast

import (
	"context"

	"github.com/ouro-net/ouro/dt"
	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/ipcpd"
	"github.com/ouro-net/ouro/layer"
	"github.com/ouro-net/ouro/lib/clock"
	"github.com/ouro-net/ouro/lib/pipe"
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
