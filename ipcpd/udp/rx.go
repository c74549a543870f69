package udp

import (
	"context"
	"errors"
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
	if err := m.decode(b); err != nil {
		switch err {
		case errShort:
			u.ctr.rxShort.Add(1)
		case errVersion:
			u.ctr.rxBadVersion.Add(1)
		case errType:
			u.ctr.rxBadType.Add(1)
		default:
			u.ctr.rxMalformed.Add(1)
		}
		return
	}
	switch m.typ {
	case tQuery:
		u.onQuery(m, src)
	case tQueryReply:
		u.onQueryReply(m, src)
	case tAllocReq:
		u.onAllocReq(m, src)
	case tAllocResp:
		u.onAllocResp(m, src)
	case tDealloc:
		u.onDealloc(m, src)
	case tDeallocAck:
		u.onDeallocAck(m, src)
	case tConfirm:
		u.onConfirm(m, src)
	}
}

// reply sends a management frame from the receive goroutine, through
// its own buffer.
func (u *IPCP) reply(m *msg, to netip.AddrPort) {
	u.rxOut = m.encode(u.rxOut)
	if _, err := u.conn.WriteToUDPAddrPort(u.rxOut, to); err != nil {
		u.ctr.txErrors.Add(1)
	}
}

// sendMsg sends a management frame from any other goroutine.
func (u *IPCP) sendMsg(m *msg, to netip.AddrPort) {
	var b [maxMgmtLen]byte
	if _, err := u.conn.WriteToUDPAddrPort(m.encode(b[:0]), to); err != nil {
		u.ctr.txErrors.Add(1)
	}
}

// onAllocReq answers an alloc request: a retransmission of a request
// already served gets the same answer again, one in progress gets
// "pending", a new one starts an arrival (and gets "pending" at once,
// so the requester knows this side is alive) if the caps on incoming
// flows admit it. Refusals, which leave no state, are answered within
// the source's answer budget; beyond it they are dropped and counted.
func (u *IPCP) onAllocReq(m *msg, src netip.AddrPort) {
	u.ctr.allocsIn.Add(1)
	to := u.canonical(src)
	key := remoteKey{src, m.src}
	resp := msg{typ: tAllocResp, dst: m.src}
	why := admit.Admitted
	u.mu.Lock()
	name, registered := u.names.Lookup(m.hash)
	switch fl := u.byRemote[key]; {
	case fl != nil:
		resp.src, resp.status, resp.mtu, resp.dport = fl.local, stOK, uint16(fl.mtu), fl.dport
	case u.arriving[key]:
		resp.status = stPending
	case u.closed:
		resp.status = stClosing
	case !registered:
		resp.status = stNoName
	default:
		if why = u.adm.Admit(src); why != admit.Admitted {
			resp.status = stBusy
			break
		}
		resp.status = stPending
		u.arriving[key] = true
		u.work.Add(1)
		go u.arrival(key, to, name, m.qos, min(int(m.mtu), u.mtu), m.dport)
	}
	u.mu.Unlock()
	if resp.status > stPending {
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
	resp := msg{typ: tAllocResp, dst: key.eid}
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
			resp.status = stClosing
		} else {
			if timedOut {
				u.ctr.arrivalsTimedOut.Add(1)
			}
			u.h.Log.Debug("incoming flow refused", "name", name, "from", to, "error", err)
			resp.status = stNoAcceptor
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
		resp.status = stClosing
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
	resp.src, resp.status, resp.mtu, resp.dport = fl.local, stOK, uint16(mtu), fl.dport
	u.sendMsg(&resp, to)
	u.h.Log.Debug("flow arrived", "name", name, "from", to, "eid", fl.local, "peer-eid", fl.remote)
	u.txLoop(fl) // calls u.work.Done
}

// onAllocResp hands a response to the Alloc waiting for it.
func (u *IPCP) onAllocResp(m *msg, src netip.AddrPort) {
	u.mu.Lock()
	fl := u.flows[m.dst]
	if fl == nil || fl.peer != src {
		u.mu.Unlock()
		u.ctr.rxStale.Add(1)
		if m.status == stOK {
			// We gave up on that flow; the far end must not keep it
			// (within the answer budget: a forged "ok" must not make
			// this IPCP a reflector).
			if !u.allowAnswer(src) {
				u.ctr.answersLimited.Add(1)
				return
			}
			u.reply(&msg{typ: tDealloc, dst: m.src, src: m.dst}, u.canonical(src))
			u.ctr.deallocsOut.Add(1)
		}
		return
	}
	if fl.state.Load() != statePending {
		again := m.status == stOK && fl.state.Load() == stateUp && fl.remote == m.src
		u.mu.Unlock()
		if again {
			// Our confirmations may have been lost: one more.
			u.reply(&msg{typ: tConfirm, dst: m.src, src: m.dst}, fl.to)
			u.ctr.confirmsOut.Add(1)
		}
		return // a duplicate
	}
	if m.status == stOK {
		fl.remote = m.src
		fl.mtu = min(fl.mtu, int(m.mtu))
		fl.peerPort = m.dport
		fl.state.Store(stateUp)
	}
	u.mu.Unlock()
	select {
	case fl.resp <- m.status:
	default:
		// An unread "pending" is as good as this one.
		if m.status != stPending {
			select {
			case <-fl.resp:
			default:
			}
			fl.resp <- m.status
		}
	}
}

// onDealloc ends the flow the peer deallocated, and acknowledges every
// well-formed dealloc so that the peer stops retransmitting: at once for
// a flow of ours, within the answer budget for an unknown one (the peer
// retransmitting after our ack was lost, or a forged source).
func (u *IPCP) onDealloc(m *msg, src netip.AddrPort) {
	u.ctr.deallocsIn.Add(1)
	ack := msg{typ: tDeallocAck, dst: m.src, src: m.dst}
	u.mu.Lock()
	fl := u.flows[m.dst]
	if fl == nil || fl.peer != src || fl.remote != m.src || fl.state.Load() == statePending {
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
func (u *IPCP) onDeallocAck(m *msg, src netip.AddrPort) {
	u.mu.RLock()
	fl := u.flows[m.dst]
	u.mu.RUnlock()
	if fl == nil || fl.peer != src || fl.remote != m.src {
		u.ctr.rxStale.Add(1)
		return
	}
	fl.signalAck()
}

// onConfirm records that the requester of an incoming flow got our
// "ok"; repeated confirmations change nothing.
func (u *IPCP) onConfirm(m *msg, src netip.AddrPort) {
	u.mu.Lock()
	defer u.mu.Unlock()
	fl := u.flows[m.dst]
	if fl == nil || fl.peer != src || fl.remote != m.src || !fl.incoming {
		u.ctr.rxStale.Add(1)
		return
	}
	u.confirmLocked(fl)
}
