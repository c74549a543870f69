package udp

import (
	"context"
	"errors"
	"github.com/ouro-net/ouro/ipcpd/shim/wire"
	"net"
	"net/netip"

	"github.com/ouro-net/ouro/ipcpd/shim/admit"
	"github.com/ouro-net/ouro/lib/qos"
)

// rxLoop reads the socket until it is closed. u.rxWG counts it.
func (u *IPCP) rxLoop() {
	defer u.rxWG.Done()
	for {
		if err := u.rc.Read(u.rx.fn); err != nil {
			if !errors.Is(err, net.ErrClosed) {
				u.h.Log.Error("receive loop ends", "error", err)
			}
			return
		}
		if u.rx.errno != nil {
			u.ctr.rxErrors.Add(1)
			continue
		}
		for i := 0; i < u.rx.n; i++ {
			b, src, trunc := u.rx.datagram(i)
			u.handle(b, src, trunc)
		}
		u.flushRx()
	}
}

// handle dispatches one datagram.
func (u *IPCP) handle(b []byte, src netip.AddrPort, trunc bool) {
	u.ctr.rxDatagrams.Add(1)
	u.ctr.rxBytes.Add(uint64(len(b)))
	if trunc {
		u.ctr.rxOversize.Add(1)
		return
	}
	eid, payload, err := splitFrame(b)
	if err != nil {
		u.ctr.rxShort.Add(1)
		return
	}
	if eid != 0 {
		u.deliver(eid, payload, src)
		return
	}
	// Data gathered so far goes before a management message (a
	// deallocation must not overtake the data before it).
	u.flushRx()
	m := &u.rxMsg
	if err := m.Decode(payload); err != nil {
		switch err {
		case wire.ErrShort:
			u.ctr.rxShort.Add(1)
		case wire.ErrVersion:
			if n := u.ctr.rxBadVersion.Add(1); n == 1 || n%1000 == 0 {
				u.h.Log.Warn("management message of another protocol version refused (the peer runs another build)",
					"from", src, "version", wire.VersionOf(payload), "want", wire.Version, "refused", n)
			}
		case wire.ErrType:
			u.ctr.rxBadType.Add(1)
		default:
			u.ctr.rxMalformed.Add(1)
		}
		return
	}
	switch m.Type {
	case wire.Query:
		u.onQuery(m, src)
	case wire.QueryReply:
		u.onQueryReply(m, src)
	case wire.AllocReq:
		u.onAllocReq(m, src)
	case wire.AllocResp:
		u.onAllocResp(m, src)
	case wire.Dealloc:
		u.onDealloc(m, src)
	case wire.DeallocAck:
		u.onDeallocAck(m, src)
	case wire.Confirm:
		u.onConfirm(m, src)
	}
}

// reply sends a management frame from the receive goroutine, through
// its own buffer.
func (u *IPCP) reply(m *wire.Msg, to netip.AddrPort) {
	u.rxOut = mgmtFrame(u.rxOut, m)
	if _, err := u.conn.WriteToUDPAddrPort(u.rxOut, to); err != nil {
		u.ctr.txErrors.Add(1)
	}
}

// sendMsg sends a management frame from any other goroutine.
func (u *IPCP) sendMsg(m *wire.Msg, to netip.AddrPort) {
	var b [maxMgmtLen]byte
	if _, err := u.conn.WriteToUDPAddrPort(mgmtFrame(b[:0], m), to); err != nil {
		u.ctr.txErrors.Add(1)
	}
}

// onAllocReq answers an alloc request: a retransmission of a request
// already served gets the same answer again, one in progress gets
// "pending", a new one starts an arrival (and gets "pending" at once,
// so the requester knows this side is alive) if the caps on incoming
// flows admit it. Refusals, which leave no state, are answered within
// the source's answer budget; beyond it they are dropped and counted.
func (u *IPCP) onAllocReq(m *wire.Msg, src netip.AddrPort) {
	u.ctr.allocsIn.Add(1)
	to := u.canonical(src)
	key := remoteKey{src, m.Src}
	resp := wire.Msg{Type: wire.AllocResp, Dst: m.Src}
	why := admit.Admitted
	u.mu.Lock()
	name, registered := u.names.Lookup(m.Hash)
	switch fl := u.byRemote[key]; {
	case fl != nil:
		resp.Src, resp.Status, resp.MTU, resp.Port = fl.local, wire.OK, uint16(fl.mtu), fl.dport
	case u.arriving[key]:
		resp.Status = wire.Pending
	case u.closed:
		resp.Status = wire.Closing
	case !registered:
		resp.Status = wire.NoName
	default:
		if why = u.adm.Admit(src); why != admit.Admitted {
			resp.Status = wire.Busy
			break
		}
		resp.Status = wire.Pending
		u.arriving[key] = true
		u.work.Add(1)
		go u.arrival(key, to, name, m.QoS, min(int(m.MTU), u.mtu), m.Port)
	}
	u.mu.Unlock()
	if resp.Status > wire.Pending {
		u.ctr.allocsRefused.Add(1)
		u.ctr.refused.Count(why)
		if !u.allowAnswer(src) {
			u.ctr.allocsLimited.Add(1)
			return
		}
	}
	u.reply(&resp, to)
}

// arrival asks the IRMd for an acceptor of name (for at most the arrive
// timeout) and, if one takes the flow, answers the requester and moves
// the flow's packets. The admission counted the flow in onAllocReq;
// arrival releases it on failure, the flow's removal otherwise. u.work
// counts it. dport is the requester's data socket port (0: none offered).
func (u *IPCP) arrival(key remoteKey, to netip.AddrPort, name string, q qos.Spec, mtu int, dport uint16) {
	resp := wire.Msg{Type: wire.AllocResp, Dst: key.eid}
	ctx, cancel := context.WithTimeout(u.ctx, u.tm.arrive)
	f, err := u.arrive(ctx, name, q, mtu)
	timedOut := ctx.Err() == context.DeadlineExceeded
	cancel()
	u.mu.Lock()
	delete(u.arriving, key)
	if err != nil || u.closed {
		u.adm.Release(key.addr, true)
		u.mu.Unlock()
		if err == nil {
			f.End(true)
			resp.Status = wire.Closing
		} else {
			if timedOut {
				u.ctr.arrivalsTimedOut.Add(1)
			}
			u.h.Log.Debug("incoming flow refused", "name", name, "from", to, "error", err)
			resp.Status = wire.NoAcceptor
		}
		u.ctr.allocsRefused.Add(1)
		u.sendMsg(&resp, to)
		u.work.Done()
		return
	}
	fl := newUflow(f, key.addr, to, mtu)
	fl.remote = key.eid
	fl.local = u.newEIDLocked()
	fl.incoming, fl.counted = true, true
	fl.confirmed.Store(false)
	u.mu.Unlock()
	if dport != 0 && u.directOK() {
		// Connected and handed over before the answer goes out: the
		// requester may send to it as soon as the answer arrives.
		if data, port, err := dataSocket(u.local.Addr()); err == nil {
			fl.data, fl.dport = data, port
			u.handOver(fl, dport)
		}
	}
	u.mu.Lock()
	if u.closed {
		u.adm.Release(key.addr, true)
		fl.counted = false
		u.mu.Unlock()
		if fl.direct != nil {
			fl.direct.Close()
		}
		f.End(true)
		resp.Status = wire.Closing
		u.ctr.allocsRefused.Add(1)
		u.sendMsg(&resp, to)
		u.work.Done()
		return
	}
	fl.born = u.clk.Now()
	fl.state.Store(stateUp)
	u.flows[fl.local] = fl
	u.byRemote[key] = fl
	u.mu.Unlock()
	resp.Src, resp.Status, resp.MTU, resp.Port = fl.local, wire.OK, uint16(mtu), fl.dport
	u.sendMsg(&resp, to)
	u.h.Log.Debug("flow arrived", "name", name, "from", to, "eid", fl.local, "peer-eid", fl.remote)
	u.txLoop(fl) // calls u.work.Done
}

// onAllocResp hands a response to the Alloc waiting for it.
func (u *IPCP) onAllocResp(m *wire.Msg, src netip.AddrPort) {
	u.mu.Lock()
	fl := u.flows[m.Dst]
	if fl == nil || fl.peer != src {
		u.mu.Unlock()
		u.ctr.rxStale.Add(1)
		if m.Status == wire.OK {
			// We gave up on that flow; the far end must not keep it
			// (within the answer budget: a forged "ok" must not make
			// this IPCP a reflector).
			if !u.allowAnswer(src) {
				u.ctr.answersLimited.Add(1)
				return
			}
			u.reply(&wire.Msg{Type: wire.Dealloc, Dst: m.Src, Src: m.Dst}, u.canonical(src))
			u.ctr.deallocsOut.Add(1)
		}
		return
	}
	if fl.state.Load() != statePending {
		again := m.Status == wire.OK && fl.state.Load() == stateUp && fl.remote == m.Src
		u.mu.Unlock()
		if again {
			// Our confirmations may have been lost: one more.
			u.reply(&wire.Msg{Type: wire.Confirm, Dst: m.Src, Src: m.Dst}, fl.to)
			u.ctr.confirmsOut.Add(1)
		}
		return // a duplicate
	}
	if m.Status == wire.OK {
		fl.remote = m.Src
		fl.mtu = min(fl.mtu, int(m.MTU))
		fl.peerPort = m.Port
		fl.state.Store(stateUp)
	}
	u.mu.Unlock()
	select {
	case fl.resp <- m.Status:
	default:
		// An unread "pending" is as good as this one.
		if m.Status != wire.Pending {
			select {
			case <-fl.resp:
			default:
			}
			fl.resp <- m.Status
		}
	}
}

// onDealloc ends the flow the peer deallocated, and acknowledges every
// well-formed dealloc so that the peer stops retransmitting: at once for
// a flow of ours, within the answer budget for an unknown one (the peer
// retransmitting after our ack was lost, or a forged source).
func (u *IPCP) onDealloc(m *wire.Msg, src netip.AddrPort) {
	u.ctr.deallocsIn.Add(1)
	ack := wire.Msg{Type: wire.DeallocAck, Dst: m.Src, Src: m.Dst}
	u.mu.Lock()
	fl := u.flows[m.Dst]
	if fl == nil || fl.peer != src || fl.remote != m.Src || fl.state.Load() == statePending {
		u.mu.Unlock()
		u.ctr.rxStale.Add(1)
		if !u.allowAnswer(src) {
			u.ctr.answersLimited.Add(1)
			return
		}
		u.reply(&ack, u.canonical(src))
		return
	}
	ended := fl.end(endRemote)
	if ended {
		u.removeLocked(fl)
	}
	u.mu.Unlock()
	u.reply(&ack, u.canonical(src))
	if !ended {
		// Both ends deallocated at once: theirs acknowledges ours.
		fl.signalAck()
	}
}

// onDeallocAck wakes the flow waiting for it.
func (u *IPCP) onDeallocAck(m *wire.Msg, src netip.AddrPort) {
	u.mu.RLock()
	fl := u.flows[m.Dst]
	u.mu.RUnlock()
	if fl == nil || fl.peer != src || fl.remote != m.Src {
		u.ctr.rxStale.Add(1)
		return
	}
	fl.signalAck()
}

// onConfirm records that the requester of an incoming flow got our
// "ok"; repeated confirmations change nothing.
func (u *IPCP) onConfirm(m *wire.Msg, src netip.AddrPort) {
	u.mu.Lock()
	defer u.mu.Unlock()
	fl := u.flows[m.Dst]
	if fl == nil || fl.peer != src || fl.remote != m.Src || !fl.incoming {
		u.ctr.rxStale.Add(1)
		return
	}
	u.confirmLocked(fl)
}
