package unicast

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ouro-net/ouro/dt"
	"github.com/ouro-net/ouro/ipcpd"
	"github.com/ouro-net/ouro/layer"
	"github.com/ouro-net/ouro/lib/pipe"
)

// allocTimeout bounds a flow allocation across the layer.
const allocTimeout = 10 * time.Second

// endpoint is one N+1 flow served by this IPCP.
type endpoint struct {
	eid        uint64
	f          *ipcpd.Flow
	remoteAddr uint64
	remoteEID  uint64
	cube       uint8

	// unreachable is the path state last computed; told is the state
	// last written to the application (guarded by tellMu).
	unreachable atomic.Bool
	tellMu      sync.Mutex
	told        bool
}

// checkEndpoints tells applications whose far end became unreachable
// (a partition) that their flow is DOWN, instead of black-holing their
// packets silently, and UP again once a route returns.
func (u *IPCP) checkEndpoints() {
	if u.fib == nil {
		return
	}
	u.eps.Range(func(_, v any) bool {
		ep := v.(*endpoint)
		_, ok := u.fib.Lookup(ep.remoteAddr, ep.remoteEID, ep.cube)
		unreachable := !ok && ep.remoteAddr != u.addr
		if ep.unreachable.Swap(unreachable) != unreachable {
			u.wg.Add(1)
			go u.tell(ep)
		}
		return true
	})
}

// tell writes the endpoint's current path state to its application if
// it differs from what it was last told; writes are serialised so a
// quick DOWN-UP sequence arrives in order.
func (u *IPCP) tell(ep *endpoint) {
	defer u.wg.Done()
	ep.tellMu.Lock()
	defer ep.tellMu.Unlock()
	now := ep.unreachable.Load()
	if now == ep.told {
		return
	}
	kind := pipe.Up
	if now {
		kind = pipe.Down
	}
	ep.f.MarkState(kind)
	if err := ep.f.Pipe.WriteKind(kind, nil); err == nil {
		ep.told = now
		u.log.Info("flow path state", "flow", ep.f.ID, "name", ep.f.Name, "down", now)
	}
}

// newEID returns an unused non-zero endpoint id.
func (u *IPCP) newEID() uint64 {
	max := u.cfg.MaxEID()
	for {
		e := rand.Uint64() & max
		if e == 0 {
			continue
		}
		if _, taken := u.eps.Load(e); !taken {
			return e
		}
	}
}

// Alloc allocates a flow across the layer to the nearest member where
// f.Name is registered.
func (u *IPCP) Alloc(ctx context.Context, f *ipcpd.Flow) (int, error) {
	if !u.isJoined() {
		return 0, errors.New("IPCP is not in a layer")
	}
	addrs := u.dir.Lookup(f.Name)
	if len(addrs) == 0 {
		return 0, fmt.Errorf("name %q is not registered in layer %s", f.Name, u.cfg.Name)
	}
	dst := u.nearest(addrs)
	ep := &endpoint{eid: u.newEID(), f: f, remoteAddr: dst, cube: uint8(f.QoS.Cube)}
	ch := make(chan layer.FAMsg, 1)
	u.mu.Lock()
	u.pending[ep.eid] = ch
	u.mu.Unlock()
	defer func() {
		u.mu.Lock()
		delete(u.pending, ep.eid)
		u.mu.Unlock()
	}()
	req := layer.FAMsg{Type: layer.FARequest, SrcAddr: u.addr, SrcEID: ep.eid, Name: f.Name, QoS: f.QoS}
	if err := u.sendFA(dst, 0, &req); err != nil {
		return 0, err
	}
	actx, cancel := context.WithTimeout(ctx, allocTimeout)
	defer cancel()
	select {
	case resp := <-ch:
		if resp.Err != "" {
			return 0, fmt.Errorf("%s at %s: %s", f.Name, u.cfg.FormatAddr(dst), resp.Err)
		}
		ep.remoteEID = resp.SrcEID
	case <-actx.Done():
		return 0, fmt.Errorf("no answer from %s (member %s) within %v", f.Name, u.cfg.FormatAddr(dst), allocTimeout)
	}
	u.eps.Store(ep.eid, ep)
	u.wg.Add(1)
	go u.readApp(ep)
	return u.mtu(), nil
}

// nearest picks the address with the cheapest route (ourselves first).
func (u *IPCP) nearest(addrs []uint64) uint64 {
	table := u.router.Table()
	best, bestCost := addrs[0], ^uint64(0)
	for _, a := range addrs {
		c := ^uint64(0) - 1
		if a == u.addr {
			c = 0
		} else if r, ok := table[a]; ok {
			c = r.Cost
		}
		if c < bestCost {
			best, bestCost = a, c
		}
	}
	return best
}

// sendFA sends a flow-allocation message to endpoint eid of dst.
func (u *IPCP) sendFA(dst, eid uint64, m *layer.FAMsg) error {
	body, err := layer.EncodeFA(m)
	if err != nil {
		return err
	}
	hdr := 1 + u.layout.Len()
	pkt := make([]byte, hdr+len(body))
	copy(pkt[hdr:], body)
	pci := dt.PCI{Dst: dst, TTL: u.cfg.TTL, EID: eid}
	pkt[0] = kindDT
	if _, err := u.layout.Encode(pkt[1:], &pci); err != nil {
		return err
	}
	if !u.forward(pkt, dst, eid, 0) {
		return fmt.Errorf("no route to member %s", u.cfg.FormatAddr(dst))
	}
	return nil
}

// readApp moves packets from an application's flow into the layer.
func (u *IPCP) readApp(ep *endpoint) {
	defer u.wg.Done()
	hdr := 1 + u.layout.Len()
	buf := make([]byte, hdr+65536)
	pci := dt.PCI{Dst: ep.remoteAddr, QoS: ep.cube, TTL: u.cfg.TTL, EID: ep.remoteEID}
	buf[0] = kindDT
	u.layout.Encode(buf[1:hdr], &pci)
	for {
		n, k, err := ep.f.Pipe.Read(buf[hdr:])
		if err != nil && !errors.Is(err, io.ErrShortBuffer) {
			// The application died: tell the far end.
			u.endEndpoint(ep, true)
			return
		}
		switch k {
		case pipe.Data:
			if err != nil {
				ep.f.Drops.Add(1)
				continue
			}
			ep.f.PktsIn.Add(1)
			ep.f.BytesIn.Add(uint64(n))
			if !u.forward(buf[:hdr+n], ep.remoteAddr, ep.remoteEID, ep.cube) {
				ep.f.Drops.Add(1)
			}
		case pipe.Dealloc:
			u.endEndpoint(ep, true)
			return
		}
	}
}

// endEndpoint removes a local endpoint; tellPeer sends a deallocation.
func (u *IPCP) endEndpoint(ep *endpoint, tellPeer bool) {
	if _, ok := u.eps.LoadAndDelete(ep.eid); !ok {
		return
	}
	if tellPeer && u.ctx.Err() == nil {
		m := layer.FAMsg{Type: layer.FADealloc, SrcAddr: u.addr, SrcEID: ep.eid, DstEID: ep.remoteEID}
		u.sendFA(ep.remoteAddr, 0, &m)
		ep.f.End(false)
		return
	}
	ep.f.End(true)
}

// forward sends a framed packet (kind byte + header + payload) towards
// dst. It reports whether the packet left (or was delivered locally).
func (u *IPCP) forward(pkt []byte, dst, eid uint64, cube uint8) bool {
	if dst == u.addr {
		u.deliver(pkt)
		return true
	}
	id, ok := u.fib.Lookup(dst, eid, cube)
	if !ok {
		u.stats.noRoute.Add(1)
		return false
	}
	a := (*u.adjs.Load())[id]
	if a == nil {
		u.stats.noRoute.Add(1)
		return false
	}
	if _, err := a.f.Write(pkt); err != nil {
		a.ctr.Drop(dt.DropQueueFull)
		return false
	}
	a.ctr.Out(len(pkt))
	u.stats.fwd.Add(1)
	return true
}

// receiveDT handles a data-transfer packet from a lower flow.
func (u *IPCP) receiveDT(pkt []byte) {
	dst, err := u.layout.Dst(pkt[1:])
	if err != nil {
		u.stats.malformed.Add(1)
		return
	}
	if dst == u.addr {
		u.deliver(pkt)
		return
	}
	if _, err := u.layout.DecTTL(pkt[1:]); err != nil {
		u.stats.ttl.Add(1)
		return
	}
	_, eid, cube, err := u.layout.FlowKey(pkt[1:])
	if err != nil {
		u.stats.malformed.Add(1)
		return
	}
	u.forward(pkt, dst, eid, cube)
}

// deliver hands a packet addressed to us to its endpoint.
func (u *IPCP) deliver(pkt []byte) {
	pci, payload, err := u.layout.Decode(pkt[1:])
	if err != nil {
		u.stats.malformed.Add(1)
		return
	}
	if pci.EID == 0 {
		m, err := layer.DecodeFA(payload)
		if err != nil {
			u.stats.malformed.Add(1)
			return
		}
		u.handleFA(m)
		return
	}
	v, ok := u.eps.Load(pci.EID)
	if !ok {
		u.stats.noEndpoint.Add(1)
		return
	}
	ep := v.(*endpoint)
	if err := ep.f.Pipe.Write(payload); err != nil {
		ep.f.Drops.Add(1)
		return
	}
	u.stats.local.Add(1)
	ep.f.PktsOut.Add(1)
	ep.f.BytesOut.Add(uint64(len(payload)))
}

// handleFA serves flow-allocation messages addressed to this member.
func (u *IPCP) handleFA(m layer.FAMsg) {
	switch m.Type {
	case layer.FARequest:
		// Asking the IRMd for an acceptor may take a while: not on the
		// lower flow's reader.
		u.wg.Add(1)
		go func() {
			defer u.wg.Done()
			u.acceptFlow(m)
		}()
	case layer.FAResponse:
		u.mu.Lock()
		ch := u.pending[m.DstEID]
		u.mu.Unlock()
		if ch != nil {
			select {
			case ch <- m:
			default:
			}
		}
	case layer.FADealloc:
		if v, ok := u.eps.Load(m.DstEID); ok {
			u.endEndpoint(v.(*endpoint), false)
		}
	}
}

func (u *IPCP) acceptFlow(m layer.FAMsg) {
	resp := layer.FAMsg{Type: layer.FAResponse, SrcAddr: u.addr, DstEID: m.SrcEID}
	u.mu.Lock()
	registered := u.names[m.Name]
	u.mu.Unlock()
	if !registered {
		resp.Err = fmt.Sprintf("name %q is not registered here", m.Name)
		u.sendFA(m.SrcAddr, 0, &resp)
		return
	}
	ctx, cancel := context.WithTimeout(u.ctx, allocTimeout)
	defer cancel()
	g, err := u.h.Arrive(ctx, m.Name, m.QoS, u.mtu())
	if err != nil {
		resp.Err = err.Error()
		u.sendFA(m.SrcAddr, 0, &resp)
		return
	}
	ep := &endpoint{eid: u.newEID(), f: g, remoteAddr: m.SrcAddr, remoteEID: m.SrcEID, cube: uint8(m.QoS.Cube)}
	u.eps.Store(ep.eid, ep)
	resp.SrcEID = ep.eid
	if err := u.sendFA(m.SrcAddr, 0, &resp); err != nil {
		u.eps.Delete(ep.eid)
		g.End(false)
		return
	}
	u.wg.Add(1)
	go u.readApp(ep)
}
