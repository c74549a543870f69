package unicast

import (
	"context"
	"errors"
	"fmt"

	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ouro-net/ouro/dt"
	"github.com/ouro-net/ouro/ipcpd"
	"github.com/ouro-net/ouro/layer"
	"github.com/ouro-net/ouro/lib/pipe"
)

// Flow-allocation timing. A request travels as one data packet, which
// the layer may lose like any other (a link cut under it, a full
// queue), so the requester repeats it: after faRetryFirst, doubling up
// to faRetryMax, until allocTimeout. The acceptor answers a repeated
// request from its table of recent requests instead of allocating
// twice, and keeps each entry for acceptedTTL.
const (
	allocTimeout = 10 * time.Second
	faRetryFirst = 100 * time.Millisecond
	faRetryMax   = time.Second
	acceptedTTL  = 2 * allocTimeout
	// maxAccepting caps the incoming flows (being accepted or up) of
	// all requesters together, maxAcceptingPerMember those of one
	// requesting member, so that a member flooding requests cannot take
	// the others' share; a request over a cap is refused with an answer
	// no larger than itself, and counted. maxAcceptTable bounds the
	// table of recent requests kept to answer repeats.
	maxAccepting          = 4096
	maxAcceptingPerMember = 256
	maxAcceptTable        = 2 * maxAccepting
	// deallocCopies is how many times a deallocation is sent (a copy
	// every deallocGap): it is idempotent, and a lost one leaves the
	// peer's application without its EOF.
	deallocCopies = 3
	deallocGap    = 50 * time.Millisecond
)

// faKey names one allocation request: the requester and its endpoint.
type faKey struct{ addr, eid uint64 }

// faAccept is the acceptor's record of a request; resp is set (and
// done) once the request has been answered.
type faAccept struct {
	done bool
	resp layer.FAMsg
}

// endpoint is one N+1 flow served by this IPCP.
type endpoint struct {
	eid        uint64
	f          *ipcpd.Flow
	remoteAddr uint64
	remoteEID  uint64
	cube       uint8
	// mtu is the largest payload the application may write (told at
	// allocation); incoming is set for flows another member asked for,
	// which hold a slot under maxAccepting until they end.
	mtu      int
	incoming bool

	// unreachable is the path state last computed; told is the state
	// last written to the application (guarded by tellMu).
	unreachable atomic.Bool
	tellMu      sync.Mutex
	told        bool

	// label is the path label the flow's packets are to carry: set by
	// the application's pipe.Bend records and by the balancer
	// (balance.go), applied by readApp at its next batch (which shows
	// the label it stamps, and counts the changes, in f).
	label atomic.Uint32
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
	if err := u.requireEncrypt(f.QoS); err != nil {
		return 0, err
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
	retry := u.clk.NewTimer(faRetryFirst)
	defer retry.Stop()
	wait := faRetryFirst
	for answered := false; !answered; {
		select {
		case resp := <-ch:
			if resp.Err != "" {
				return 0, fmt.Errorf("%s at %s: %s", f.Name, u.cfg.FormatAddr(dst), resp.Err)
			}
			ep.remoteEID = resp.SrcEID
			answered = true
		case <-retry.C():
			// A route may be missing for a moment while the layer
			// repairs: the next repetition tries again.
			u.stats.faRetries.Add(1)
			u.sendFA(dst, 0, &req)
			wait = min(2*wait, faRetryMax)
			retry.Reset(wait)
		case <-actx.Done():
			if ctx.Err() != nil {
				return 0, fmt.Errorf("allocate %s at %s: %w", f.Name, u.cfg.FormatAddr(dst), ctx.Err())
			}
			return 0, fmt.Errorf("no answer from %s (member %s) within %v", f.Name, u.cfg.FormatAddr(dst), allocTimeout)
		}
	}
	ep.mtu = u.mtu()
	u.eps.Store(ep.eid, ep)
	u.wg.Add(1)
	go u.readApp(ep)
	return ep.mtu, nil
}

// nearest picks, among the members holding a name, one of those with
// the cheapest route (ourselves first), at random among equals: new
// flows spread over the equally near members instead of all going to
// the lowest address, and a member that registers a name already held
// elsewhere takes only the flows it is nearest to.
func (u *IPCP) nearest(addrs []uint64) uint64 {
	table := u.router.Table()
	var best []uint64
	bestCost := ^uint64(0)
	for _, a := range addrs {
		c := ^uint64(0) - 1 // no route yet: a last resort
		if a == u.addr {
			c = 0
		} else if r, ok := table[a]; ok {
			c = r.Cost
		}
		if c < bestCost {
			best, bestCost = best[:0], c
		}
		if c == bestCost {
			best = append(best, a)
		}
	}
	return best[rand.IntN(len(best))]
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

// readApp moves packets from an application's flow into the layer, a
// batch at a time: one system call reads up to fwdBatch packets, and
// consecutive packets for the same lower flow leave with one more.
func (u *IPCP) readApp(ep *endpoint) {
	defer u.wg.Done()
	// The flow's path label: first chosen to avoid a loaded next hop,
	// then changed by pipe.Bend records and by the balancer.
	var out outBatch
	label := u.placeEndpoint(ep)
	ep.label.Store(uint32(label))
	ep.f.Label.Store(uint32(label))
	ep.f.Labelled.Store(true)
	u.startBalancer()
	hdr := make([]byte, 1+u.layout.Len())
	hdr[0] = kindDT
	pci := dt.PCI{Dst: ep.remoteAddr, QoS: ep.cube, TTL: u.cfg.TTL, EID: ep.remoteEID, Label: label}
	u.layout.Encode(hdr[1:], &pci)
	rb := newRecvBufs(hdr, ep.mtu)
	setLabel := func(l uint8) {
		u.flush(&out)
		label = l
		u.layout.SetLabel(hdr[1:], label)
		for _, b := range rb.bufs {
			u.layout.SetLabel(b[1:], label)
		}
		u.stats.bends.Add(1)
		ep.f.Label.Store(uint32(label))
		ep.f.LabelBends.Add(1)
	}
	var sizes [fwdBatch]int
	var kinds [fwdBatch]pipe.Kind
	for {
		k := len(rb.bufs)
		n, err := ep.f.Pipe.ReadBatch(rb.payloads, sizes[:k], kinds[:k])
		if err != nil {
			// The application died: tell the far end.
			u.endEndpoint(ep, true)
			return
		}
		if l := uint8(ep.label.Load()); l != label {
			// The balancer moved the flow.
			setLabel(l)
		}
		truncated := false
		for i := 0; i < n; i++ {
			switch kinds[i] {
			case pipe.Data:
				if sizes[i] < 0 {
					ep.f.Drops.Add(1)
					truncated = true
					continue
				}
				ep.f.PktsIn.Add(1)
				ep.f.BytesIn.Add(uint64(sizes[i]))
				if !u.forwardTo(&out, rb.bufs[i][:len(hdr)+sizes[i]], ep.remoteAddr, ep.remoteEID, ep.cube, label) {
					ep.f.Drops.Add(1)
				}
			case pipe.Bend:
				// The application moves its flow to another path
				// label: what it wrote before the record leaves with
				// the old one, everything after with the new one.
				l, ok := bendLabel(rb.payloads[i], sizes[i])
				if !ok {
					u.stats.badLabel.Add(1)
					continue
				}
				ep.label.Store(uint32(l))
				if l == label {
					continue
				}
				setLabel(l)
			case pipe.Dealloc:
				u.flush(&out)
				u.endEndpoint(ep, true)
				return
			}
		}
		u.flush(&out)
		rb.adapt(n, truncated)
	}
}

// bendLabel parses a pipe.Bend record of size bytes: one byte, a path
// label in 0..dt.MaxLabel.
func bendLabel(b []byte, size int) (uint8, bool) {
	if size != 1 || len(b) < 1 || b[0] > dt.MaxLabel {
		return 0, false
	}
	return b[0], true
}

// recvBufs are a reader's receive buffers, grown on demand: one buffer
// of the expected packet size at first; a read that fills every buffer
// doubles their number (up to fwdBatch), and a packet too large for
// them (lost, counted) grows them all to maxPacket. An idle flow holds
// one buffer of its MTU instead of fwdBatch x 64 KiB up front. Each
// buffer starts with a copy of prefix (the readApp's data header).
type recvBufs struct {
	prefix   []byte
	size     int      // payload capacity of each buffer
	bufs     [][]byte // whole buffers: prefix and payload
	payloads [][]byte // the payload part of each buffer
}

func newRecvBufs(prefix []byte, size int) *recvBufs {
	if size <= 0 || size > maxPacket {
		size = maxPacket
	}
	r := &recvBufs{prefix: prefix, size: size}
	r.grow(1)
	return r
}

// grow adds buffers until there are n.
func (r *recvBufs) grow(n int) {
	for len(r.bufs) < n {
		b := make([]byte, len(r.prefix)+r.size)
		copy(b, r.prefix)
		r.bufs = append(r.bufs, b)
		r.payloads = append(r.payloads, b[len(r.prefix):])
	}
}

// adapt grows the buffers after a read of got packets; truncated says
// one of them did not fit. Call it only once the packets are sent.
func (r *recvBufs) adapt(got int, truncated bool) {
	if truncated && r.size < maxPacket {
		n := len(r.bufs)
		r.size, r.bufs, r.payloads = maxPacket, nil, nil
		r.grow(n)
	}
	if got == len(r.bufs) && got < fwdBatch {
		r.grow(min(2*got, fwdBatch))
	}
}

// fwdBatch is how many packets a forwarding goroutine moves per system
// call; maxPacket bounds one packet (the flow channel's limit).
const (
	fwdBatch  = 16
	maxPacket = 65536
)

// outBatch gathers the consecutive packets one reader sends to the same
// lower flow or delivers to the same local endpoint, so they leave with
// one system call. The packets stay the reader's until flush.
type outBatch struct {
	a     *adj
	ep    *endpoint
	pkts  [][]byte
	kinds []pipe.Kind // record kinds of a local delivery (flush's)
}

// ECN marking at the egress. A lower flow's send queue (the bytes its
// lower IPCP or data socket has not taken yet, pipe.Queued) is where a
// forwarding IPCP's own egress queues: the lower IPCP takes packets
// only as fast as its medium carries them. A batch that joins a queue
// above ecnMarkAbove bytes leaves with the ECN field of each data
// packet raised (dt.Layout.RaiseECN, the most congested hop wins) to a
// level that grows with the queue, 1 just above the threshold to 255
// at a full channel (pipe.BufSize); the receiving member delivers such
// a packet as a DataCE record and the application's FRCT echoes it to
// the sender, which backs off (DCTCP-style). The threshold is an eighth
// of the channel's buffer (the kernel counts each record with its
// overhead, about 2.3 KiB for a 1400-byte packet: some 28 packets).
//
// This is the simplest honest signal, not a scheduler of our own: the
// queue is the kernel's, one FIFO per lower flow, and management frames
// wait in it behind data (dt.Scheduler, which would order classes and
// mark on its own queue, is not wired here yet).
const ecnMarkAbove = pipe.BufSize / 8

// ecnLevel returns the ECN level for a batch that joins a send queue of
// q bytes, 0 when the queue is short.
func ecnLevel(q int) uint8 {
	if q <= ecnMarkAbove {
		return 0
	}
	return uint8(min(1+(q-ecnMarkAbove)*254/(pipe.BufSize-ecnMarkAbove), 255))
}

// flush sends what ob gathered; what the channel refuses is counted as
// dropped where it would have gone.
func (u *IPCP) flush(ob *outBatch) {
	if len(ob.pkts) == 0 {
		ob.a, ob.ep = nil, nil
		return
	}
	switch {
	case ob.a != nil:
		// A congested egress queues in its scheduler (egress.go); the
		// channel's own queue is read only while it is not.
		if ob.a.eg.active.Load() {
			u.queueOut(ob.a, ob.pkts)
			break
		}
		q := ob.a.f.Queued()
		if q > egressAbove {
			u.queueOut(ob.a, ob.pkts)
			break
		}
		level := ecnLevel(q)
		if level != 0 {
			for _, p := range ob.pkts {
				if _, err := u.layout.RaiseECN(p[1:], level); err == nil {
					ob.a.ctr.Mark()
				}
			}
		}
		n, _ := ob.a.f.WriteBatch(ob.pkts)
		if level != 0 {
			// The buffers are the readers' own: an application's
			// reader reuses its header prefix, so the mark must not
			// stay on it (a forwarded packet's buffer is read over
			// anyway).
			for _, p := range ob.pkts {
				u.layout.SetECN(p[1:], 0)
			}
		}
		for _, p := range ob.pkts[:n] {
			ob.a.ctr.Out(len(p))
		}
		ob.a.live.dataOut.Add(uint64(n))
		for range len(ob.pkts) - n {
			ob.a.ctr.Drop(dt.DropQueueFull)
		}
		u.stats.fwd.Add(uint64(n))
	case ob.ep != nil:
		// Local delivery: the packets are whole frames; the endpoint
		// gets their payloads.
		// A packet some hop marked goes up as a DataCE record.
		hdr := 1 + u.layout.Len()
		ob.kinds = ob.kinds[:0]
		for i, p := range ob.pkts {
			k := pipe.Data
			if e, err := u.layout.ECN(p[1:]); err == nil && e != 0 {
				k = pipe.DataCE
			}
			ob.kinds = append(ob.kinds, k)
			ob.pkts[i] = p[hdr:]
		}
		n, _ := ob.ep.f.Pipe.WriteBatchKinds(ob.pkts, ob.kinds)
		var bytes uint64
		for _, p := range ob.pkts[:n] {
			bytes += uint64(len(p))
		}
		ob.ep.f.Drops.Add(uint64(len(ob.pkts) - n))
		ob.ep.f.PktsOut.Add(uint64(n))
		ob.ep.f.BytesOut.Add(bytes)
		u.stats.local.Add(uint64(n))
	}
	clear(ob.pkts)
	ob.pkts = ob.pkts[:0]
	ob.a, ob.ep = nil, nil
}

// endEndpoint removes a local endpoint; tellPeer sends a deallocation.
func (u *IPCP) endEndpoint(ep *endpoint, tellPeer bool) {
	if _, ok := u.eps.LoadAndDelete(ep.eid); !ok {
		return
	}
	if ep.incoming {
		u.releaseIncoming(ep.remoteAddr)
	}
	if tellPeer && u.ctx.Err() == nil {
		u.sendDealloc(ep.remoteAddr, ep.eid, ep.remoteEID)
		ep.f.End(false)
		return
	}
	ep.f.End(true)
}

// forward sends a framed packet (kind byte + header + payload) towards
// dst. It reports whether the packet left (or was delivered locally).
// Management and flow-allocation packets travel on path label 0.
func (u *IPCP) forward(pkt []byte, dst, eid uint64, cube uint8) bool {
	return u.forwardTo(nil, pkt, dst, eid, cube, 0)
}

// forwardTo is forward that, given a batch, gathers pkt into it instead
// of sending it at once (the caller flushes); label is the packet's
// path label, hashed with the flow key to pick among equal next hops.
func (u *IPCP) forwardTo(ob *outBatch, pkt []byte, dst, eid uint64, cube, label uint8) bool {
	if dst == u.addr {
		u.deliverTo(ob, pkt)
		return true
	}
	id, ok := u.fib.LookupLabel(dst, eid, cube, label)
	if !ok {
		u.stats.noRoute.Add(1)
		return false
	}
	a := (*u.adjs.Load())[id]
	if a == nil {
		u.stats.noRoute.Add(1)
		return false
	}
	if ob != nil {
		if ob.a != a {
			u.flush(ob)
			ob.a = a
		}
		ob.pkts = append(ob.pkts, pkt)
		return true
	}
	if _, err := a.f.Write(pkt); err != nil {
		a.ctr.Drop(dt.DropQueueFull)
		return false
	}
	a.ctr.Out(len(pkt))
	a.live.dataOut.Add(1)
	u.stats.fwd.Add(1)
	return true
}

// receiveDT handles a data-transfer packet from a lower flow, gathering
// it into ob (nil: sent at once).
func (u *IPCP) receiveDT(ob *outBatch, pkt []byte) {
	dst, err := u.layout.Dst(pkt[1:])
	if err != nil {
		u.stats.malformed.Add(1)
		return
	}
	label, err := u.layout.Label(pkt[1:])
	if err != nil {
		// Out of range (the only error left once Dst succeeded).
		u.stats.badLabel.Add(1)
		return
	}
	if dst == u.addr {
		u.deliverTo(ob, pkt)
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
	u.forwardTo(ob, pkt, dst, eid, cube, label)
}

// deliverTo hands a packet addressed to us to its endpoint, or, given a
// batch, gathers data packets into it (the caller flushes).
func (u *IPCP) deliverTo(ob *outBatch, pkt []byte) {
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
	if ob != nil {
		if ob.ep != ep {
			u.flush(ob)
			ob.ep = ep
		}
		ob.pkts = append(ob.pkts, pkt)
		return
	}
	k := pipe.Data
	if pci.ECN != 0 {
		k = pipe.DataCE
	}
	if err := ep.f.Pipe.WriteKind(k, payload); err != nil {
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
		if m.SrcAddr == 0 || m.SrcEID == 0 {
			u.stats.malformed.Add(1)
			return
		}
		// Data packets carry no source address: an answer could not
		// reach a requester that forwarding does not reach.
		if _, ok := u.fib.Lookup(m.SrcAddr, m.SrcEID, 0); !ok && m.SrcAddr != u.addr {
			u.stats.faDropped.Add(1)
			return
		}
		key := faKey{m.SrcAddr, m.SrcEID}
		u.mu.Lock()
		rec, seen := u.accepting[key]
		var refuse string
		if !seen {
			switch {
			case len(u.accepting) >= maxAcceptTable || u.inTotal >= maxAccepting:
				refuse = "too many flows at this member"
			case u.inFlows[m.SrcAddr] >= maxAcceptingPerMember:
				refuse = "too many flows from one member"
			default:
				u.accepting[key] = &faAccept{}
				u.inFlows[m.SrcAddr]++
				u.inTotal++
			}
		}
		var again layer.FAMsg
		if seen && rec.done {
			again = rec.resp
		}
		u.mu.Unlock()
		switch {
		case refuse != "":
			u.stats.faRefused.Add(1)
			if u.refusals.allow(m.SrcAddr, u.clk.Now()) {
				resp := layer.FAMsg{Type: layer.FAResponse, SrcAddr: u.addr, DstEID: m.SrcEID, Err: refuse}
				u.sendFA(m.SrcAddr, 0, &resp)
			}
		case seen:
			// A repetition: answer it again if the answer is known,
			// otherwise the first copy is still being served.
			u.stats.faDuplicates.Add(1)
			if again.Type == layer.FAResponse {
				u.sendFA(m.SrcAddr, 0, &again)
			}
		default:
			// Asking the IRMd for an acceptor may take a while: not
			// on the lower flow's reader.
			u.wg.Add(1)
			go func() {
				defer u.wg.Done()
				u.acceptFlow(m)
			}()
		}
	case layer.FAResponse:
		u.mu.Lock()
		ch := u.pending[m.DstEID]
		u.mu.Unlock()
		if ch == nil {
			// A second copy of the answer that set up our endpoint
			// (the acceptor answers each repetition of the request):
			// the flow is up, nothing to release.
			if v, ok := u.eps.Load(m.DstEID); ok {
				if ep := v.(*endpoint); ep.remoteAddr == m.SrcAddr && ep.remoteEID == m.SrcEID && m.Err == "" {
					return
				}
			}
			// The requester gave up before this answer came: release
			// the endpoint the acceptor made for it.
			if m.Err == "" && m.SrcEID != 0 {
				u.sendDealloc(m.SrcAddr, m.DstEID, m.SrcEID)
			}
			return
		}
		select {
		case ch <- m:
		default:
		}
	case layer.FADealloc:
		if v, ok := u.eps.Load(m.DstEID); ok {
			ep := v.(*endpoint)
			if ep.remoteAddr == m.SrcAddr && ep.remoteEID == m.SrcEID {
				u.endEndpoint(ep, false)
			}
		}
	}
}

// answerFA records the answer to an allocation request, so repeated
// copies get the same answer, and sends it.
func (u *IPCP) answerFA(req layer.FAMsg, resp *layer.FAMsg) error {
	key := faKey{req.SrcAddr, req.SrcEID}
	u.mu.Lock()
	if rec := u.accepting[key]; rec != nil {
		rec.done, rec.resp = true, *resp
	}
	u.mu.Unlock()
	u.clk.AfterFunc(acceptedTTL, func() {
		u.mu.Lock()
		delete(u.accepting, key)
		u.mu.Unlock()
	})
	return u.sendFA(req.SrcAddr, 0, resp)
}

// releaseIncoming frees the slot of an incoming flow from member src.
func (u *IPCP) releaseIncoming(src uint64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.inTotal--
	if u.inFlows[src]--; u.inFlows[src] <= 0 {
		delete(u.inFlows, src)
	}
}

// sendDealloc tells endpoint remoteEID of member dst that our endpoint
// eid is gone, deallocCopies times.
func (u *IPCP) sendDealloc(dst, eid, remoteEID uint64) {
	m := layer.FAMsg{Type: layer.FADealloc, SrcAddr: u.addr, SrcEID: eid, DstEID: remoteEID}
	u.sendFA(dst, 0, &m)
	for i := 1; i < deallocCopies; i++ {
		u.clk.AfterFunc(time.Duration(i)*deallocGap, func() {
			if u.ctx.Err() == nil {
				again := m // EncodeFA sets the version: one copy per send
				u.sendFA(dst, 0, &again)
			}
		})
	}
}

func (u *IPCP) acceptFlow(m layer.FAMsg) {
	resp := layer.FAMsg{Type: layer.FAResponse, SrcAddr: u.addr, DstEID: m.SrcEID}
	u.mu.Lock()
	registered := u.names[m.Name]
	u.mu.Unlock()
	if !registered {
		u.releaseIncoming(m.SrcAddr)
		resp.Err = fmt.Sprintf("name %q is not registered here", m.Name)
		u.answerFA(m, &resp)
		return
	}
	if err := u.requireEncrypt(m.QoS); err != nil {
		u.releaseIncoming(m.SrcAddr)
		resp.Err = err.Error()
		u.answerFA(m, &resp)
		return
	}
	ctx, cancel := context.WithTimeout(u.ctx, allocTimeout)
	defer cancel()
	mtu := u.mtu()
	g, err := u.h.Arrive(ctx, m.Name, m.QoS, mtu)
	if err != nil {
		u.releaseIncoming(m.SrcAddr)
		resp.Err = err.Error()
		u.answerFA(m, &resp)
		return
	}
	ep := &endpoint{eid: u.newEID(), f: g, remoteAddr: m.SrcAddr, remoteEID: m.SrcEID, cube: uint8(m.QoS.Cube),
		mtu: mtu, incoming: true}
	u.eps.Store(ep.eid, ep)
	resp.SrcEID = ep.eid
	// If the answer cannot leave now (no route back for a moment), the
	// requester's next repetition fetches it from the table.
	u.answerFA(m, &resp)
	u.wg.Add(1)
	go u.readApp(ep)
}
