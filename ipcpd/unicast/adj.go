package unicast

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ouro-net/ouro/dt"
	"github.com/ouro-net/ouro/enroll"
	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/layer"
	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/liveness"
	"github.com/ouro-net/ouro/routing"
)

// adj is one lower flow of an adjacency: one next hop.
type adj struct {
	id       uint64
	f        *flow.Flow
	peer     uint64
	peerName string
	lower    string
	comp     string // "dt", "mgmt" or "" for both
	cost     uint32
	since    time.Time
	up       atomic.Bool
	lastRx   atomic.Int64
	downAt   atomic.Int64
	carrier  atomic.Bool // false while the lower flow reports DOWN
	// flaps counts suspensions within flapWindow (guarded by u.mu); it
	// sets how long a recovered flow is held back (see holdTime).
	flaps     int
	lastFlap  time.Time
	hardDown  bool // the last suspension had hard evidence (carrier loss)
	done      chan struct{}
	closeOnce sync.Once
	ctr       dt.Counters
	eg        egress // the egress scheduler (egress.go)
	// live is the keepalive state of this flow, owned by the IPCP's
	// liveness loop (live.go).
	live adjLive
	// hello asks the flow's goroutine (watchCarrier) for a hello.
	hello chan struct{}
	// helloReply is our answer to the peer's opening hello (accepting
	// side only), repeated if the peer repeats its hello.
	helloReply []byte
}

func (a *adj) carriesDT() bool   { return a.comp == "" || a.comp == "dt" }
func (a *adj) carriesMgmt() bool { return a.comp == "" || a.comp == "mgmt" }

// Connect builds adjacencies to the IPCP called dst: one lower flow
// through every lower layer that reaches it, or through the one named.
func (u *IPCP) Connect(ctx context.Context, req ctrl.IPCPConnect) error {
	if !u.isJoined() {
		return errors.New("IPCP is not in a layer yet: bootstrap or enroll first")
	}
	layers := []string{req.Layer}
	if req.Layer == "" {
		var err error
		layers, err = u.h.Resolve(ctx, req.Dst)
		if err != nil {
			return fmt.Errorf("connect to %s: %w", req.Dst, err)
		}
	}
	cost := req.Cost
	if cost == 0 {
		cost = 1
	}
	var errs []error
	made := 0
	for _, l := range layers {
		if err := u.connectVia(ctx, req.Dst, l, req.Component, cost); err != nil {
			errs = append(errs, fmt.Errorf("via layer %s: %w", l, err))
			continue
		}
		made++
	}
	if made == 0 {
		return fmt.Errorf("connect to %s: %w", req.Dst, errors.Join(errs...))
	}
	for _, e := range errs {
		u.log.Warn("connect: one lower layer failed", "dst", req.Dst, "error", e)
	}
	return nil
}

func (u *IPCP) connectVia(ctx context.Context, dst, lower, comp string, cost uint32) error {
	actx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	f, err := flow.Alloc(actx, dst, flow.QoS{Name: "raw"}, u.lowerOpts(flow.WithLayer(lower))...)
	if err != nil {
		return err
	}
	hello := enroll.Hello{V: enroll.Version, Component: comp, Addr: u.addr, IPCP: u.h.Name, Layer: u.cfg.Name, Cost: cost}
	var reply enroll.Hello
	if err := enroll.Exchange(actx, f, kindHello, hello, &reply); err != nil {
		f.Close()
		return fmt.Errorf("hello: %w", err)
	}
	if reply.Err != "" {
		f.Close()
		return fmt.Errorf("refused by %s: %s", dst, reply.Err)
	}
	if reply.Layer != u.cfg.Name || reply.Addr == 0 {
		f.Close()
		return fmt.Errorf("%s is in layer %q, not %s", dst, reply.Layer, u.cfg.Name)
	}
	if holder := u.addrHolder(reply.Addr, reply.IPCP); holder != "" || reply.Addr == u.addr {
		u.stats.addrConflicts.Add(1)
		f.Close()
		return fmt.Errorf("%s (%s) claims address %s, which %s holds: address conflict", dst, reply.IPCP,
			u.cfg.FormatAddr(reply.Addr), dash(holder))
	}
	u.addAdj(f, reply.Addr, reply.IPCP, lower, comp, cost, nil)
	return nil
}

// Disconnect tears down every adjacency flow to dst (of a component).
func (u *IPCP) Disconnect(_ context.Context, req ctrl.IPCPConnect) error {
	n := 0
	for _, a := range *u.adjs.Load() {
		if a.peerName == req.Dst && (req.Component == "" || a.comp == req.Component || a.comp == "") {
			a.f.Close()
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("no adjacency to %s", req.Dst)
	}
	return nil
}

// serveIncoming handles a lower flow someone allocated to us: either an
// enrollment or an adjacency hello.
//
// The opening frame (an enrollment request or a hello) is small: it is
// read into a buffer of handshakeMax bytes, not enroll.MaxMessage, and
// a larger one is refused. The caller holds one of maxHandshakes slots
// for the duration; release gives it back once the handshake is over.
func (u *IPCP) serveIncoming(f *flow.Flow, release func()) {
	defer u.wg.Done()
	defer release()
	buf := make([]byte, handshakeMax)
	f.SetReadDeadline(time.Now().Add(handshakeTimeout))
	n, err := f.Read(buf)
	f.SetReadDeadline(time.Time{})
	if err != nil || n < 1 {
		if errors.Is(err, io.ErrShortBuffer) {
			u.stats.malformed.Add(1)
		}
		f.Close()
		return
	}
	switch buf[0] {
	case kindEnroll:
		u.serveEnroll(f, buf[1:n])
		f.Close()
	case kindHello:
		var h enroll.Hello
		err := enroll.Decode(buf[1:n], &h)
		reply := enroll.Hello{V: enroll.Version, Reply: true}
		switch {
		case err != nil:
			reply.Err = err.Error()
		case !u.isJoined():
			reply.Err = "not in a layer yet"
		case u.unauthenticated(f):
			u.stats.authRefused.Add(1)
			reply.Err = authRefusal
		case h.Layer != u.cfg.Name:
			reply.Err = fmt.Sprintf("this is layer %s, not %s", u.cfg.Name, h.Layer)
		case h.Addr == 0 || h.Addr == u.addr:
			reply.Err = "bad or duplicate address"
		default:
			if holder := u.addrHolder(h.Addr, h.IPCP); holder != "" {
				u.stats.addrConflicts.Add(1)
				reply.Err = fmt.Sprintf("address conflict: %s is held by %s", u.cfg.FormatAddr(h.Addr), holder)
			}
		}
		if reply.Err == "" {
			reply.Addr, reply.IPCP, reply.Layer, reply.Component, reply.Cost = u.addr, u.h.Name, u.cfg.Name, h.Component, h.Cost
		}
		b, _ := enroll.Encode(reply)
		frame := append([]byte{kindHello}, b...)
		f.Write(frame)
		if reply.Err != "" {
			u.log.Warn("refused adjacency", "from", h.IPCP, "reason", reply.Err)
			time.Sleep(50 * time.Millisecond)
			f.Close()
			return
		}
		release()
		u.addAdj(f, h.Addr, h.IPCP, f.Layer(), h.Component, max(h.Cost, 1), frame)
	default:
		u.stats.malformed.Add(1)
		f.Close()
	}
}

func (u *IPCP) serveEnroll(f *flow.Flow, msg []byte) {
	var req enroll.Request
	resp := enroll.Response{V: enroll.Version}
	if err := enroll.Decode(msg, &req); err != nil {
		resp.Err = err.Error()
	} else if !u.isJoined() {
		resp.Err = "this IPCP is not in a layer"
	} else if u.unauthenticated(f) {
		u.stats.authRefused.Add(1)
		resp.Err = authRefusal
		u.log.Warn("refused enrollment", "ipcp", req.IPCP, "reason", authRefusal)
	} else if req.Layer != u.cfg.Name {
		resp.Err = fmt.Sprintf("this IPCP is in layer %s, not %s", u.cfg.Name, req.Layer)
	} else if !u.enrollGate.allow(req.IPCP, time.Now()) {
		u.stats.enrollRefused.Add(1)
		resp.Err = fmt.Sprintf("too many enrollment attempts by %s: try again later", req.IPCP)
		u.log.Warn("refused enrollment", "ipcp", req.IPCP, "reason", "too many attempts")
	} else {
		resp.Config = u.cfg
		resp.Dir = u.dir.Snapshot()
		seen := map[uint64]bool{}
		for a, name := range u.dir.Members() {
			seen[a] = true
			if name == req.IPCP {
				resp.Addr = a
			}
		}
		for _, m := range u.router.Members() {
			seen[m.Addr] = true
		}
		for a := range seen {
			resp.InUse = append(resp.InUse, a)
		}
		u.log.Info("enrolling", "ipcp", req.IPCP)
	}
	frames := u.enrollFrames(f, resp)
	writeAll(f, frames)
	// Wait for the joiner to close (or give up) so the reply is read; a
	// repeated request means the answer was lost: send it again, at most
	// enrollResends times and not twice within enroll.RetryFirst/2 (the
	// joiner repeats no faster), so that repeating a small request
	// cannot make us send the whole directory without end.
	f.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	resends, last := 0, time.Now()
	for {
		n, err := f.Read(buf)
		if err != nil && !errors.Is(err, io.ErrShortBuffer) {
			return
		}
		if n > 0 && buf[0] == kindEnroll && resends < enrollResends && time.Since(last) >= enroll.RetryFirst/2 {
			resends++
			last = time.Now()
			writeAll(f, frames)
		}
	}
}

// enrollResends bounds how often one enrollment response is sent again.
const enrollResends = 8

// enrollFrames is the enrollment response as frames that fit the
// enrollment flow: in parts (a version-4 joiner reassembles them), but
// a refusal as one whole frame, which a joiner of any version reads
// (an older joiner is refused for its version, and must understand
// why). A response that cannot be cut small enough is replaced by a
// refusal saying so.
func (u *IPCP) enrollFrames(f *flow.Flow, resp enroll.Response) [][]byte {
	if resp.Err == "" {
		mtu := f.MTU()
		if mtu <= 0 {
			mtu = defaultMTU
		}
		u.parts.mu.Lock()
		u.parts.next++
		id := u.parts.next
		u.parts.mu.Unlock()
		frames, err := enroll.Frames(kindEnroll, id, resp, mtu)
		if err == nil {
			return frames
		}
		u.log.Warn("enrollment response does not fit the lower flow", "mtu", mtu, "error", err)
		resp = enroll.Response{V: enroll.Version, Err: fmt.Sprintf("the enrollment response does not fit this lower flow: %v", err)}
	}
	b, _ := enroll.Encode(resp)
	return [][]byte{append([]byte{kindEnroll}, b...)}
}

// writeAll writes frames on f, stopping at the first error.
func writeAll(f *flow.Flow, frames [][]byte) {
	for _, fr := range frames {
		if _, err := f.Write(fr); err != nil {
			return
		}
	}
}

// addAdj installs a lower flow as a next hop and starts its reader.
// helloReply, on the accepting side, is the answer to the peer's
// opening hello, sent again if the peer repeats its hello.
func (u *IPCP) addAdj(f *flow.Flow, peer uint64, peerName, lower, comp string, cost uint32, helloReply []byte) {
	u.mu.Lock()
	u.nextAdj++
	a := &adj{id: u.nextAdj, f: f, peer: peer, peerName: peerName, lower: lower, comp: comp, cost: cost,
		since: time.Now(), done: make(chan struct{}), hello: make(chan struct{}, 1), helloReply: helloReply}
	a.up.Store(true)
	a.carrier.Store(true)
	a.lastRx.Store(u.clk.Now().UnixNano())
	u.adjList[a.id] = a
	u.publishAdjsLocked()
	first := u.mgmtCountLocked(peer) == 1 && a.carriesMgmt()
	u.mu.Unlock()
	u.stats.adjUp.Add(1)
	u.log.Info("adjacency up", "peer", peerName, "address", u.cfg.FormatAddr(peer), "lower", lower, "id", a.id, "cost", cost)
	u.wg.Add(2)
	go u.readAdj(a)
	go u.watchCarrier(a)
	u.live.start(u)
	if a.carriesMgmt() {
		if first {
			u.router.NeighborUp(peer, cost)
		} else {
			u.router.SetCost(peer, u.minCost(peer))
		}
		u.sendDir(a, u.dir.Snapshot())
	}
	u.rebuildFIB(u.router.Table())
}

// addrHolder returns the name of the neighbour that holds addr through
// an existing adjacency under another name than name, or "" if none
// does. A hello claiming such an address is an address conflict: it is
// refused, never added as another next hop towards that member. Two
// adjacencies to the same neighbour (same address, same name) are
// parallel links and are allowed.
func (u *IPCP) addrHolder(addr uint64, name string) string {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, a := range u.adjList {
		if a.peer == addr && a.peerName != name {
			return a.peerName
		}
	}
	return ""
}

func (u *IPCP) publishAdjsLocked() {
	m := make(map[uint64]*adj, len(u.adjList))
	for id, a := range u.adjList {
		if a.up.Load() {
			m[id] = a
		}
	}
	u.adjs.Store(&m)
}

func (u *IPCP) mgmtCountLocked(peer uint64) int {
	n := 0
	for _, a := range u.adjList {
		if a.peer == peer && a.up.Load() && a.carriesMgmt() {
			n++
		}
	}
	return n
}

func (u *IPCP) minCost(peer uint64) uint32 {
	var c uint32
	for _, a := range *u.adjs.Load() {
		if a.peer == peer && a.carriesMgmt() && (c == 0 || a.cost < c) {
			c = a.cost
		}
	}
	return c
}

// suspend takes a lower flow out of service without closing it (hello
// timeout, carrier loss): first from the forwarding table, at once,
// then from routing, which floods the withdrawal and recomputes after
// its hold-down. The flow keeps sending hellos and comes back through
// revive once it hears the peer again for a damping interval.
func (u *IPCP) suspend(a *adj, why string) bool {
	return u.suspendAs(a, why, true)
}

// adjEvent is the message of the log lines that tell what happened to
// an adjacency (down, back, held suspension flooded): bench -grid
// collects them from the IPCPs' logs (OURO_LOGDIR) to say which kind
// of down each was and why. Every such line carries at_ns (this
// host's clock, ns since the epoch) and the flow's id.
const (
	adjEventDown    = "adjacency down"
	adjEventBack    = "adjacency back"
	adjEventFlooded = "held suspension flooded"
)

// suspendAs is suspend; hard says whether the evidence is hard (carrier
// loss, deallocation) rather than silence, which may be congestion or a
// stalled host. Routing hears of a suspension for silence that takes
// the peer's last flow only after withdrawHold, if the flow is still
// down then (see live.go: host or link); hard evidence goes to routing
// at once, also for a flow already suspended for silence. kv are more
// fields for the log line (why the detector fired).
func (u *IPCP) suspendAs(a *adj, why string, hard bool, kv ...any) bool {
	if !a.up.CompareAndSwap(true, false) {
		if hard {
			u.withdraw(a)
		}
		return false
	}
	moved := u.fib.RemoveNextHop(a.id)
	u.checkEndpoints()
	now := u.clk.Now()
	a.downAt.Store(now.UnixNano())
	u.mu.Lock()
	if now.Sub(a.lastFlap) > flapWindow {
		a.flaps = 0
	}
	a.flaps++
	a.lastFlap = now
	a.hardDown = hard
	u.publishAdjsLocked()
	n, _ := u.routerCostLocked(a.peer)
	hold := !hard && n == 0 && a.carriesMgmt() && u.ctx.Err() == nil
	if hold {
		a.live.pending = true
		a.live.withdraw = u.clk.AfterFunc(u.withdrawHold(), func() { u.withdraw(a) })
	}
	u.mu.Unlock()
	u.stats.adjDown.Add(1)
	u.stats.failovers.Add(1)
	u.stats.lastFailover.Store(now.UnixNano())
	u.log.Warn(adjEventDown, append([]any{"peer", a.peerName, "lower", a.lower, "id", a.id, "reason", why,
		"routes_repaired", moved, "withdraw_held", hold, "hard", hard, "at_ns", now.UnixNano()}, kv...)...)
	if u.ctx.Err() != nil || hold || !a.carriesMgmt() {
		return true
	}
	u.tellRouterDown(a)
	return true
}

// withdrawHold is how long a suspension for silence of a peer's last
// flow stays local before routing floods it: as long as a suspension
// still counts as a blip (revive).
func (u *IPCP) withdrawHold() time.Duration {
	return time.Duration(10*u.cfg.HelloMultiplier) * u.cfg.HelloInterval
}

// withdraw tells routing of a held suspension (withdrawHold passed, or
// hard evidence came), unless it was taken back meanwhile.
func (u *IPCP) withdraw(a *adj) {
	u.mu.Lock()
	if !a.live.pending {
		u.mu.Unlock()
		return
	}
	a.live.pending = false
	a.live.withdraw.Stop()
	u.mu.Unlock()
	if u.ctx.Err() == nil {
		now := u.clk.Now()
		u.log.Warn(adjEventFlooded, "peer", a.peerName, "lower", a.lower, "id", a.id,
			"held_ms", ms(now.Sub(time.Unix(0, a.downAt.Load()))), "at_ns", now.UnixNano())
		u.tellRouterDown(a)
	}
}

// tellRouterDown tells routing that a's peer lost a management flow: it
// withdraws the neighbour if no flow to it is left (up, or suspended
// but not yet told), else sets the cheapest remaining cost.
func (u *IPCP) tellRouterDown(a *adj) {
	if !a.carriesMgmt() {
		return
	}
	u.mu.Lock()
	n, cost := u.routerCostLocked(a.peer)
	u.mu.Unlock()
	if n == 0 {
		u.stats.withdrawals.Add(1)
		u.router.NeighborDown(a.peer)
	} else {
		u.router.SetCost(a.peer, cost)
	}
}

// routerCostLocked counts the management flows to peer that routing
// sees up (up, or suspended with the withdrawal held) and their
// cheapest cost.
func (u *IPCP) routerCostLocked(peer uint64) (n int, cost uint32) {
	for _, a := range u.adjList {
		if a.peer == peer && a.carriesMgmt() && (a.up.Load() || a.live.pending) {
			n++
			if cost == 0 || a.cost < cost {
				cost = a.cost
			}
		}
	}
	return n, cost
}

// revive puts a suspended lower flow back in service. A suspension
// for silence that ended within a few detection times was congestion
// starving the hellos (or a stalled host), not a flapping link: it
// does not count towards flap damping, so bursts of load never hold a
// working link out. A suspension whose withdrawal was still held is
// taken back without a word to routing: nothing was flooded. by says
// what brought it back, for the log.
func (u *IPCP) revive(a *adj, by string) {
	if !a.up.CompareAndSwap(false, true) {
		return
	}
	blip := u.withdrawHold()
	u.mu.Lock()
	held := a.live.pending
	if held {
		a.live.pending = false
		a.live.withdraw.Stop()
	}
	if !a.hardDown && u.clk.Now().Sub(time.Unix(0, a.downAt.Load())) < blip && a.flaps > 0 {
		a.flaps--
	}
	u.publishAdjsLocked()
	n, cost := u.routerCostLocked(a.peer)
	u.mu.Unlock()
	u.stats.adjUp.Add(1)
	now := u.clk.Now()
	u.log.Warn(adjEventBack, "peer", a.peerName, "lower", a.lower, "id", a.id, "withdrawal_held", held, "by", by,
		"down_ms", ms(now.Sub(time.Unix(0, a.downAt.Load()))), "heard_after_ms", ms(time.Unix(0, a.lastRx.Load()).Sub(time.Unix(0, a.downAt.Load()))),
		"at_ns", now.UnixNano())
	if a.carriesMgmt() && !held {
		if n == 1 {
			u.router.NeighborUp(a.peer, a.cost)
		} else {
			u.router.SetCost(a.peer, cost)
		}
	}
	u.rebuildFIB(u.router.Table())
}

// adjDown removes a lower flow for good (deallocated, or its IPCP gone).
func (u *IPCP) adjDown(a *adj, why string) {
	a.closeOnce.Do(func() {
		u.suspend(a, why)
		close(a.done)
		u.mu.Lock()
		delete(u.adjList, a.id)
		u.publishAdjsLocked()
		u.mu.Unlock()
		a.f.Close()
	})
}

// readAdj is the receive loop of one lower flow.
func (u *IPCP) readAdj(a *adj) {
	defer u.wg.Done()
	// Full-size buffers (the two ends of a lower flow may be told
	// different MTUs), grown in number on demand: an idle adjacency
	// holds 64 KiB, not 1 MiB.
	rb := newRecvBufs(nil, maxPacket)
	var sizes [fwdBatch]int
	var out outBatch
	for {
		got, err := a.f.ReadBatch(rb.bufs, sizes[:len(rb.bufs)])
		if err != nil {
			why := "lower flow closed"
			if errors.Is(err, flow.ErrDown) {
				why = "lower IPCP gone"
			}
			u.adjDown(a, why)
			return
		}
		a.lastRx.Store(u.clk.Now().UnixNano())
		truncated := false
		for i := 0; i < got; i++ {
			n := sizes[i]
			if n < 0 {
				a.ctr.Drop(dt.DropMalformed) // larger than the buffers
				truncated = true
				continue
			}
			if n < 1 {
				continue
			}
			u.receiveFrame(a, &out, rb.bufs[i][:n])
		}
		u.flush(&out)
		rb.adapt(got, truncated)
	}
}

// receiveFrame dispatches one frame from a lower flow; data packets to
// forward or deliver are gathered into out.
func (u *IPCP) receiveFrame(a *adj, out *outBatch, buf []byte) {
	n := len(buf)
	a.ctr.In(n)
	switch buf[0] {
	case kindDT:
		u.receiveDT(out, buf)
	case kindAck:
		u.arq.ack(a.peer, buf[1:])
	case kindRouting, kindDir:
		if n < 1+mgmtSeqLen {
			a.ctr.Drop(dt.DropMalformed)
			return
		}
		u.ackMgmt(a, buf[1:1+mgmtSeqLen])
		u.receiveMgmt(a, buf[0], buf[1+mgmtSeqLen:])
	case kindKeepalive:
		if h, err := liveness.ParseHello(buf[1:]); err == nil {
			u.heardHello(a, h)
		} else {
			a.ctr.Drop(dt.DropMalformed)
		}
	case kindHello:
		// Late hello replies are liveness only; the peer's opening
		// hello again means our answer was lost.
		if n > 1 && a.helloReply != nil {
			var h enroll.Hello
			if enroll.Decode(buf[1:], &h) == nil && !h.Reply {
				a.f.Write(a.helloReply)
			}
		}
	default:
		a.ctr.Drop(dt.DropMalformed)
	}
}

// receiveMgmt handles the payload of a routing or directory frame.
func (u *IPCP) receiveMgmt(a *adj, kind byte, payload []byte) {
	payload, whole := u.joinMgmt(a, payload) // a message in parts: frag.go
	if !whole {
		return
	}
	if kind == kindRouting {
		if err := u.router.Receive(a.peer, payload); err != nil {
			u.log.Debug("bad routing update", "from", a.peerName, "error", err)
		}
		return
	}
	entries, err := layer.DecodeDir(payload)
	if err != nil {
		u.stats.malformed.Add(1)
		return
	}
	var fresh, reply []layer.DirEntry
	now := u.clk.Now()
	for _, e := range entries {
		switch v, send := u.dir.Apply(e, now); v {
		case layer.DirFresh:
			fresh = append(fresh, e)
		case layer.DirStale:
			reply = append(reply, send)
		case layer.DirOwnNewer, layer.DirOwnFlush:
			u.floodOwnDir(send)
		}
	}
	if len(fresh) > 0 {
		u.floodDir(fresh, a.peer)
	}
	if len(reply) > 0 {
		u.sendDir(a, reply)
	}
}

// floodOwnDir floods this member's own directory entry; if it is the
// withdrawal at layer.MaxDirSeq, it arms the restart at sequence number
// 1 after routing.DefaultFlushWait (the time the withdrawal needs to
// reach every member ahead of the restart).
func (u *IPCP) floodOwnDir(e layer.DirEntry) {
	u.floodDir([]layer.DirEntry{e}, 0)
	if !e.Gone {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.dirRestart != nil {
		return
	}
	u.dirRestart = u.clk.AfterFunc(routing.DefaultFlushWait, func() {
		u.mu.Lock()
		u.dirRestart = nil
		u.mu.Unlock()
		if u.ctx.Err() == nil {
			u.floodDir([]layer.DirEntry{u.dir.Restart(u.clk.Now())}, 0)
		}
	})
}

// sendRouting is the router's Send: reliably, over a management flow
// to neighbor.
func (u *IPCP) sendRouting(neighbor uint64, msg []byte) {
	// routing splits at mgmtRoom already; a single LSU larger than one
	// frame goes in parts.
	u.sendMgmtFit(neighbor, kindRouting, msg, nil, u.mgmtRoom(neighbor))
}

func (u *IPCP) sortedAdjs() []*adj {
	m := *u.adjs.Load()
	out := make([]*adj, 0, len(m))
	for _, a := range m {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// floodDir sends directory entries to every neighbour but except.
func (u *IPCP) floodDir(entries []layer.DirEntry, except uint64) {
	sent := map[uint64]bool{except: true}
	for _, a := range u.sortedAdjs() {
		if sent[a.peer] || !a.carriesMgmt() {
			continue
		}
		if u.sendDir(a, entries) {
			sent[a.peer] = true
		}
	}
}

// sendDir sends directory entries to a's peer through a, packed into
// updates that fit a's frames (each applied on its own); an entry too
// large for one frame goes in parts. It reports whether every first
// copy left.
func (u *IPCP) sendDir(a *adj, entries []layer.DirEntry) bool {
	room := frameRoom(a)
	if room <= 0 {
		room = enroll.MaxMessage
	}
	updates, err := layer.SplitDir(entries, room)
	if err != nil {
		return false
	}
	ok := true
	for _, b := range updates {
		ok = u.sendMgmtFit(a.peer, kindDir, b, a, room) && ok
	}
	return ok
}

// onTable installs a new routing table into the forwarding table.
// It also tells the directory which members are reachable, for the
// grace its entries get while theirs are not (layer.Directory.Expire).
func (u *IPCP) onTable(t routing.Table) {
	u.rebuildFIB(t)
	if u.dir == nil { // the bare IPCPs of some tests
		return
	}
	u.dir.Reach(func(a uint64) bool { _, ok := t[a]; return ok }, u.clk.Now())
}

// rebuildFIB maps routing's next-hop neighbours onto the live lower
// flows towards them (the cheapest flows of each neighbour).
func (u *IPCP) rebuildFIB(t routing.Table) {
	if u.fib == nil {
		return
	}
	byPeer := map[uint64][]*adj{}
	for _, a := range u.sortedAdjs() {
		if a.carriesDT() && a.up.Load() {
			byPeer[a.peer] = append(byPeer[a.peer], a)
		}
	}
	hops := func(peers []uint64) []dt.NextHop {
		var out []dt.NextHop
		for _, p := range peers {
			best := uint32(0)
			for _, a := range byPeer[p] {
				if best == 0 || a.cost < best {
					best = a.cost
				}
			}
			for _, a := range byPeer[p] {
				if a.cost == best {
					out = append(out, dt.NextHop{ID: a.id})
				}
			}
		}
		return out
	}
	routes := make(map[uint64]dt.Entry, len(t)+len(byPeer))
	for dst, r := range t {
		routes[dst] = dt.Entry{Primary: hops(r.NextHops), Alternates: hops(r.Alternates)}
	}
	// Direct neighbours are reachable over their own flows even before
	// routing has converged on the two-way edge.
	for p := range byPeer {
		if _, ok := routes[p]; !ok {
			routes[p] = dt.Entry{Primary: hops([]uint64{p})}
		}
	}
	u.fib.Replace(routes)
	u.checkEndpoints()
}

// flapWindow is how long a suspension counts towards flap damping.
const flapWindow = time.Minute

// holdTime is how long a suspended flow must stay down before it may
// return: a first failure returns as soon as the peer is heard (two
// hello intervals of proof), a link that flaps again within flapWindow
// waits the damping interval, doubling with every further flap up to
// 32 times, so a flapping link cannot churn the table.
//
// Damping is waived when no other lower flow is up: holding back the
// only way out protects no table and only loses traffic.
func (u *IPCP) holdTime(a *adj, damping time.Duration) time.Duration {
	u.mu.Lock()
	flaps := a.flaps
	u.mu.Unlock()
	if flaps <= 1 || len(*u.adjs.Load()) == 0 {
		return 2 * u.cfg.HelloInterval
	}
	return damping << min(flaps-2, 5)
}
