package unicast

import (
	"context"

	"github.com/hashicorp/go-hclog"

	"github.com/ouro-net/ouro/dt"
	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/ipcpd"
	"github.com/ouro-net/ouro/lib/clock"
	"github.com/ouro-net/ouro/lib/pipe"
)

// BendIPCP is an IPCP at address 1 with two equal-cost adjacencies
// (ids 7 and 8) towards address 2 and one local endpoint (eid 9) whose
// application end the test writes to, with readApp running on it.
type BendIPCP struct {
	u      *IPCP
	cancel context.CancelFunc
}

// BendEID is the endpoint id of a BendIPCP's flow.
const BendEID = 9

// NewBendIPCP starts the endpoint's reader over lowers (ids 7 and 8).
func NewBendIPCP(lowers [2]*flow.Flow, ipcpEnd *pipe.Pipe) *BendIPCP {
	ctx, cancel := context.WithCancel(context.Background())
	u := &IPCP{layout: dt.DefaultLayout(), addr: 1, fib: dt.NewFIB(1), clk: clock.Real(), ctx: ctx,
		log: hclog.NewNullLogger()}
	u.cfg.TTL = 16
	adjs := map[uint64]*adj{7: {id: 7, f: lowers[0]}, 8: {id: 8, f: lowers[1]}}
	u.adjs.Store(&adjs)
	u.fib.Set(2, dt.Entry{Primary: []dt.NextHop{{ID: 7}, {ID: 8}}})
	ep := &endpoint{eid: BendEID, f: &ipcpd.Flow{Pipe: ipcpEnd}, remoteAddr: 2, remoteEID: BendEID, mtu: 1400}
	u.eps.Store(uint64(BendEID), ep)
	u.wg.Add(1)
	go u.readApp(ep)
	return &BendIPCP{u: u, cancel: cancel}
}

// Want returns the adjacency (0 for id 7, 1 for id 8) the FIB picks for
// the endpoint's flow on label.
func (b *BendIPCP) Want(label uint8) int {
	id, _ := b.u.fib.LookupLabel(2, BendEID, 0, label)
	return int(id - 7)
}

// Counters returns the IPCP's bends and bad-label drops.
func (b *BendIPCP) Counters() (bends, badLabel uint64) {
	return b.u.stats.bends.Load(), b.u.stats.badLabel.Load()
}

// Wait stops the reader once the test closed the application end.
func (b *BendIPCP) Wait() {
	b.cancel()
	b.u.wg.Wait()
}

// ForwardLabel hands the loop's IPCP a packet for address 2 carrying
// path label label on the wire, as readAdj does, and reports whether
// it was forwarded.
func (l *ForwardLoop) ForwardLabel(label uint8) bool {
	pkt := append([]byte(nil), l.toOther...)
	pkt[1+l.u.layout.AddrSize+3] = label
	before := l.u.stats.fwd.Load()
	l.u.receiveFrame(l.a, &l.out, pkt)
	l.u.flush(&l.out)
	return l.u.stats.fwd.Load() > before
}

// BadLabels returns how many packets the loop's IPCP dropped for their
// path label.
func (l *ForwardLoop) BadLabels() uint64 { return l.u.stats.badLabel.Load() }

// PacketLabel returns the path label of a frame read from a lower flow.
func PacketLabel(frame []byte) uint8 {
	v, _ := dt.DefaultLayout().Label(frame[1:])
	return v
}
