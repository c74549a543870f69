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

// BalanceIPCP is an IPCP at address 1 with two equal-cost adjacencies
// (ids 7 and 8) towards address 2, on the real clock, to which the
// test adds local endpoints (readApp runs on each, and the first starts
// the balancer).
type BalanceIPCP struct {
	u      *IPCP
	cancel context.CancelFunc
}

// NewBalanceIPCP makes the IPCP over lowers (ids 7 and 8).
func NewBalanceIPCP(lowers [2]*flow.Flow) *BalanceIPCP {
	ctx, cancel := context.WithCancel(context.Background())
	u := &IPCP{layout: dt.DefaultLayout(), addr: 1, fib: dt.NewFIB(1), clk: clock.Real(), ctx: ctx,
		log: hclog.NewNullLogger()}
	u.cfg.TTL = 16
	adjs := map[uint64]*adj{7: {id: 7, f: lowers[0]}, 8: {id: 8, f: lowers[1]}}
	u.adjs.Store(&adjs)
	u.fib.Set(2, dt.Entry{Primary: []dt.NextHop{{ID: 7}, {ID: 8}}})
	return &BalanceIPCP{u: u, cancel: cancel}
}

// AddFlow serves a flow of ours with endpoint id eid (also the far
// end's) whose application end is the other end of ipcpEnd.
func (b *BalanceIPCP) AddFlow(eid uint64, ipcpEnd *pipe.Pipe) {
	ep := &endpoint{eid: eid, f: &ipcpd.Flow{Pipe: ipcpEnd}, remoteAddr: 2, remoteEID: eid, mtu: 1400}
	b.u.eps.Store(eid, ep)
	b.u.wg.Add(1)
	go b.u.readApp(ep)
}

// Hop returns the adjacency (0 for id 7, 1 for id 8) the FIB picks for
// flow eid on label.
func (b *BalanceIPCP) Hop(eid uint64, label uint8) int {
	id, _ := b.u.fib.LookupLabel(2, eid, 0, label)
	return int(id - 7)
}

// EIDsOn returns n endpoint ids whose label 0 hashes onto adjacency hop.
func (b *BalanceIPCP) EIDsOn(hop, n int) []uint64 {
	var out []uint64
	for e := uint64(100); len(out) < n; e++ {
		if b.Hop(e, 0) == hop {
			out = append(out, e)
		}
	}
	return out
}

// LabelOn returns a non-zero label that hashes flow eid onto adjacency
// hop.
func (b *BalanceIPCP) LabelOn(eid uint64, hop int) uint8 {
	for l := uint8(1); l <= dt.MaxLabel; l++ {
		if b.Hop(eid, l) == hop {
			return l
		}
	}
	return 0
}

// Moves returns the balancer's moves and the IPCP's bends (label
// changes stamped, whoever asked).
func (b *BalanceIPCP) Moves() (moves, bends uint64) {
	b.u.bal.mu.Lock()
	defer b.u.bal.mu.Unlock()
	return b.u.bal.moves, b.u.stats.bends.Load()
}

// FlowPath returns what flow eid's flow list entry shows: the label
// its packets carry and its bends.
func (b *BalanceIPCP) FlowPath(eid uint64) (label uint8, bends uint64) {
	v, ok := b.u.eps.Load(eid)
	if !ok {
		return 0, 0
	}
	f := v.(*endpoint).f
	return uint8(f.Label.Load()), f.LabelBends.Load()
}

// Wait stops the readers (the test closes the application ends) and
// the balancer.
func (b *BalanceIPCP) Wait() {
	b.cancel()
	b.u.wg.Wait()
}

// PacketEID returns the endpoint id of a frame read from a lower flow.
func PacketEID(frame []byte) uint64 {
	v, _ := dt.DefaultLayout().EID(frame[1:])
	return v
}
