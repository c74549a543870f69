package shim

import (
	"context"
	"fmt"

	"github.com/ouro-net/ouro/ipcpd"
	"github.com/ouro-net/ouro/ipcpd/eth/frame"
	"github.com/ouro-net/ouro/ipcpd/shim/admit"
	"github.com/ouro-net/ouro/ipcpd/shim/wire"
	"github.com/ouro-net/ouro/lib/namehash"
	"github.com/ouro-net/ouro/lib/qos"
)

// peerKey identifies a flow end at another station.
type peerKey struct {
	mac frame.MAC
	eid uint16
}

// allocEIDLocked hands out the next free endpoint id, round robin.
func (e *Engine) allocEIDLocked() (uint16, bool) {
	for range 0xFFFF {
		e.nextEID++
		if e.nextEID == frame.MgmtEID {
			e.nextEID++
		}
		if _, used := e.flows[e.nextEID]; !used {
			return e.nextEID, true
		}
	}
	return 0, false
}

// Alloc allocates a flow to f.Name: it resolves the name, runs the
// handshake and, on success, starts moving f's packets. It returns the
// flow MTU.
func (e *Engine) Alloc(ctx context.Context, f *ipcpd.Flow) (int, error) {
	hash := namehash.Of(f.Name)
	mac, ok, err := e.resolve(ctx, hash)
	if err != nil {
		return 0, fmt.Errorf("allocate flow to %q: %w", f.Name, err)
	}
	if !ok {
		return 0, fmt.Errorf("allocate flow to %q: no station on %s answered for that name%s",
			f.Name, e.cfg.Dev.Name, e.noCarrierHint())
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return 0, ErrClosed
	}
	eid, ok := e.allocEIDLocked()
	if !ok {
		e.mu.Unlock()
		return 0, fmt.Errorf("allocate flow to %q: no free endpoint id on %s", f.Name, e.cfg.Dev.Name)
	}
	fr := &flowRec{local: eid, peer: mac, hash: hash, name: f.Name, f: f, state: stateAllocating,
		reply: make(chan wire.Msg, 1), confirmed: true, mtu: e.mtu}
	e.flows[eid] = fr
	e.mu.Unlock()

	req := wire.Msg{Type: wire.AllocReq, Src: uint32(eid), Hash: hash, QoS: f.QoS, MTU: uint16(e.mtu)}
	ask := func() {
		if err := e.sendMgmt(mac, req); err != nil {
			e.log.Debug("allocation request not sent", "name", f.Name, "error", err)
		}
	}
	ask()
	deadline := e.clk.NewTimer(e.t.AllocTimeout)
	defer deadline.Stop()
	retry := e.clk.NewTimer(e.t.AllocRetry)
	defer retry.Stop()
	var failure error
	busy := false
wait:
	for {
		select {
		case m := <-fr.reply:
			if notFinal(m.Status) {
				// Its caps are full for now (or it is still
				// asking its IRMd): the request is repeated
				// until the allocation times out.
				busy = busy || m.Status == wire.Busy
				continue
			}
			return e.allocAnswered(fr, m)
		case <-retry.C():
			ask()
			retry.Reset(e.t.AllocRetry)
		case <-deadline.C():
			if busy {
				failure = fmt.Errorf("allocate flow to %q: %s refused: %s", f.Name, mac, wire.Busy)
				break wait
			}
			e.Counters.AllocsTimedOut.Add(1)
			e.forget(hash, mac)
			failure = fmt.Errorf("allocate flow to %q: no answer from %s within %v (the peer vanished?)",
				f.Name, mac, e.t.AllocTimeout)
			break wait
		case <-ctx.Done():
			failure = fmt.Errorf("allocate flow to %q: %w", f.Name, ctx.Err())
			break wait
		case <-e.ctx.Done():
			failure = ErrClosed
			break wait
		}
	}
	// Give up, unless the answer won the race.
	e.mu.Lock()
	if fr.state == stateAllocating {
		delete(e.flows, eid)
		fr.state = stateGone
		e.mu.Unlock()
		return 0, failure
	}
	e.mu.Unlock()
	for {
		if m := <-fr.reply; !notFinal(m.Status) {
			return e.allocAnswered(fr, m)
		}
	}
}

// allocAnswered finishes an outgoing allocation once onAllocReply has
// recorded the answer m (and, if positive, made the flow live).
func (e *Engine) allocAnswered(fr *flowRec, m wire.Msg) (int, error) {
	if m.Status != wire.OK {
		if m.Status == wire.NoName {
			e.forget(fr.hash, fr.peer)
		}
		return 0, fmt.Errorf("allocate flow to %q: %s refused: %s", fr.name, fr.peer, m.Status)
	}
	// The peer keeps the flow only once confirmed: one Confirm now,
	// the sweeper sends the rest.
	e.mu.Lock()
	fr.confirmsLeft = admit.ConfirmRepeats - 1
	e.mu.Unlock()
	e.sendConfirm(fr.peer, fr.local, fr.remote)
	if !e.startFlow(fr) {
		return 0, ErrClosed
	}
	return fr.mtu, nil
}

// sendConfirm tells the replier that we got its OK.
func (e *Engine) sendConfirm(peer frame.MAC, local, remote uint16) {
	if err := e.sendMgmt(peer, wire.Msg{Type: wire.Confirm, Src: uint32(local), Dst: uint32(remote)}); err == nil {
		e.Counters.ConfirmsOut.Add(1)
	}
}

// onAllocReply records the answer to one of our requests and wakes the
// allocation.
func (e *Engine) onAllocReply(src frame.MAC, m wire.Msg) {
	e.mu.Lock()
	fr := e.flows[uint16(m.Dst)]
	if fr != nil && fr.peer == src && fr.state == stateUp && uint32(fr.remote) == m.Src {
		e.mu.Unlock()
		if m.Status == wire.OK && !fr.incoming {
			// The answer to a repeated request: our Confirms may
			// have been lost, one more.
			e.sendConfirm(src, fr.local, fr.remote)
		}
		return
	}
	if fr == nil || fr.peer != src || fr.state != stateAllocating {
		// We gave up on it: free the peer's end, within the answer
		// budget (a forged OK must not make this station a reflector).
		answer := m.Status == wire.OK && e.allowAnswerLocked(src)
		e.mu.Unlock()
		e.Counters.LateReplies.Add(1)
		switch {
		case answer:
			_ = e.sendMgmt(src, wire.Msg{Type: wire.Dealloc, Src: m.Dst, Dst: m.Src})
		case m.Status == wire.OK:
			e.Counters.AllocsLimited.Add(1)
		}
		return
	}
	switch m.Status {
	case wire.OK:
		fr.remote = uint16(m.Src)
		fr.mtu = min(fr.mtu, int(m.MTU))
		fr.state = stateUp
	case wire.Busy, wire.Pending:
		// Not final: the allocation goes on asking.
		e.mu.Unlock()
		select {
		case fr.reply <- m:
		default:
		}
		return
	default:
		delete(e.flows, fr.local)
		fr.state = stateGone
	}
	e.mu.Unlock()
	// A busy answer still unread is superseded (this goroutine is the
	// only sender, so the send below cannot block).
	select {
	case <-fr.reply:
	default:
	}
	fr.reply <- m
}

// onAllocReq serves a request from another station: it asks the IRMd
// for an acceptor in its own goroutine, if the caps on incoming flows
// admit the request, and answers when it knows. Refusals, which leave no
// state, are answered within the source's answer budget; beyond it
// they are dropped and counted.
func (e *Engine) onAllocReq(src frame.MAC, m wire.Msg) {
	key := peerKey{src, uint16(m.Src)}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	if eid, ok := e.incoming[key]; ok {
		fr := e.flows[eid]
		e.mu.Unlock()
		if fr != nil && fr.state == stateUp {
			// Our answer was lost: repeat it.
			_ = e.sendMgmt(src, okMsg(fr))
		}
		return
	}
	result, why := wire.OK, admit.Admitted
	name, ok := e.names.Lookup(m.Hash)
	var eid uint16
	switch {
	case !ok:
		result = wire.NoName
	default:
		if why = e.adm.Admit(src); why != admit.Admitted {
			result = wire.Busy
			break
		}
		if eid, ok = e.allocEIDLocked(); !ok {
			e.adm.Release(src, true)
			result = wire.Busy
		}
	}
	if result != wire.OK {
		answer := e.allowAnswerLocked(src)
		e.mu.Unlock()
		e.Counters.AllocsRefused.Add(1)
		e.Counters.Refused.Count(why)
		if !answer {
			e.Counters.AllocsLimited.Add(1)
			return
		}
		_ = e.sendMgmt(src, wire.Msg{Type: wire.AllocResp, Dst: m.Src, Status: result})
		return
	}
	fr := &flowRec{local: eid, remote: uint16(m.Src), mtu: min(e.mtu, int(m.MTU)), peer: src, hash: m.Hash, name: name, state: stateArriving,
		incoming: true, counted: true}
	e.flows[eid] = fr
	e.incoming[key] = eid
	e.wg.Add(1)
	e.mu.Unlock()
	go e.arrive(fr, m.QoS)
}

// arrive gets an acceptor for an incoming flow, answers the requester,
// then moves the flow's packets until it ends.
func (e *Engine) arrive(fr *flowRec, q qos.Spec) {
	defer e.wg.Done()
	ctx, cancel := context.WithTimeout(e.ctx, e.t.ArriveTimeout)
	f, err := e.cfg.Arrive(ctx, fr.name, q, fr.mtu)
	timedOut := ctx.Err() == context.DeadlineExceeded
	cancel()
	e.mu.Lock()
	if err != nil || e.closed || fr.state != stateArriving {
		peerGone := fr.state != stateArriving
		e.removeLocked(fr)
		e.mu.Unlock()
		if timedOut {
			e.Counters.ArrivalsTimedOut.Add(1)
		}
		switch {
		case err != nil:
			e.log.Info("incoming flow refused", "name", fr.name, "peer", fr.peer, "error", err)
			e.Counters.AllocsRefused.Add(1)
			_ = e.sendMgmt(fr.peer, wire.Msg{Type: wire.AllocResp, Dst: uint32(fr.remote), Status: wire.NoAcceptor})
		case peerGone:
			f.End(true) // the requester deallocated meanwhile
		default:
			f.End(false)
		}
		return
	}
	fr.f = f
	fr.state = stateUp
	fr.born = e.clk.Now()
	e.mu.Unlock()
	if err := e.sendMgmt(fr.peer, okMsg(fr)); err != nil {
		e.log.Debug("allocation reply not sent (the requester repeats)", "error", err)
	}
	e.log.Debug("flow arrived", "name", fr.name, "peer", fr.peer, "eid", fr.local, "peer_eid", fr.remote)
	e.signalInitial(fr)
	e.writeLoop(fr)
}

// onDealloc ends the flow the peer deallocated.
func (e *Engine) onDealloc(src frame.MAC, m wire.Msg) {
	e.mu.Lock()
	fr := e.flows[uint16(m.Dst)]
	if fr == nil || fr.peer != src || uint32(fr.remote) != m.Src || (fr.state != stateUp && fr.state != stateArriving) {
		e.mu.Unlock()
		e.Counters.StaleDeallocs.Add(1)
		return
	}
	if fr.state == stateArriving {
		// arrive notices and ends the flow it gets.
		e.removeLocked(fr)
		e.mu.Unlock()
		return
	}
	// Take it out of the tables now, so that nothing more is delivered,
	// and end it off the receive path: ending reports to the IRMd.
	e.removeLocked(fr)
	if e.closed {
		e.mu.Unlock()
		return // Close ends it
	}
	e.wg.Add(1)
	e.mu.Unlock()
	go func() {
		defer e.wg.Done()
		e.endFlow(fr, endPeer)
	}()
}

// onConfirm records that the requester of an incoming flow got our OK;
// repeated Confirms change nothing.
func (e *Engine) onConfirm(src frame.MAC, m wire.Msg) {
	e.mu.Lock()
	defer e.mu.Unlock()
	fr := e.flows[uint16(m.Dst)]
	if fr == nil || fr.peer != src || uint32(fr.remote) != m.Src || !fr.incoming || fr.state != stateUp {
		e.Counters.StaleConfirms.Add(1)
		return
	}
	e.confirmLocked(fr)
}

// notFinal reports whether an alloc response leaves the requester
// asking: "busy" (the responder's caps are full for now) and "pending"
// (it is still asking its IRMd).
func notFinal(s wire.Status) bool { return s == wire.Busy || s == wire.Pending }

// okMsg is the "ok" for flow fr, with the agreed MTU.
func okMsg(fr *flowRec) wire.Msg {
	return wire.Msg{Type: wire.AllocResp, Src: uint32(fr.local), Dst: uint32(fr.remote), Status: wire.OK, MTU: uint16(fr.mtu)}
}
