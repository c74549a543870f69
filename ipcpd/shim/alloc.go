package shim

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ouro-net/ouro/ipcpd"
	"github.com/ouro-net/ouro/ipcpd/shim/admit"
	"github.com/ouro-net/ouro/ipcpd/shim/wire"
	"github.com/ouro-net/ouro/lib/namehash"
	"github.com/ouro-net/ouro/lib/qos"
)

// errGone says a peer stopped answering.
var errGone = errors.New("peer did not answer")

// Alloc sets up a flow to the peer that has f.Name and, on success,
// starts moving its packets. It returns the agreed MTU.
func (e *Engine[A]) Alloc(ctx context.Context, f *ipcpd.Flow) (int, error) {
	e.Counters.AllocsOut.Add(1)
	mtu, err := e.alloc(ctx, f)
	if err != nil {
		e.Counters.AllocsFailed.Add(1)
		return 0, fmt.Errorf("allocate flow to %q: %w", f.Name, err)
	}
	return mtu, nil
}

func (e *Engine[A]) alloc(ctx context.Context, f *ipcpd.Flow) (int, error) {
	h := namehash.Of(f.Name)
	peer, ok, err := e.resolve(ctx, f.Name)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("no peer has that name registered%s", e.noCarrierHint())
	}
	fl := newFlow(f, peer, e.mtu)
	fl.hash = h
	port := e.link.Offer(fl)
	e.mu.Lock()
	eid, ok := e.newEIDLocked()
	if e.closed || !ok {
		e.mu.Unlock()
		e.link.Release(fl)
		if !ok {
			return 0, errors.New("no free endpoint id")
		}
		return 0, ErrClosed
	}
	fl.Local = eid
	e.flows[eid] = fl
	e.mu.Unlock()

	st, peerPort, err := e.handshake(ctx, fl, port)
	e.mu.Lock()
	if fl.state.Load() == stateUp && !e.closed {
		// Up, even if the wait ended for another reason just as the
		// answer came. The peer holds the flow only once confirmed:
		// one confirmation now, the sweeper sends the rest.
		fl.confirmsLeft.Store(admit.ConfirmRepeats - 1)
		e.work.Add(1)
		e.mu.Unlock()
		e.kickSweep()
		e.link.Agreed(fl, peerPort)
		e.sendConfirm(fl)
		e.log.Debug("flow allocated", "name", f.Name, "peer", fmt.Sprint(peer), "eid", fl.Local, "peer_eid", fl.Remote)
		e.signalInitial(fl)
		go e.run(fl)
		return fl.MTU, nil
	}
	up := fl.state.Load() == stateUp
	e.removeLocked(fl)
	e.mu.Unlock()
	e.link.Release(fl)
	if up {
		e.send(peer, &wire.Msg{Type: wire.Dealloc, Dst: fl.Remote, Src: fl.Local})
		return 0, ErrClosed
	}
	if err != nil {
		if errors.Is(err, errGone) {
			e.Counters.AllocsTimedOut.Add(1)
			e.uncache(h)
		}
		return 0, err
	}
	if st == wire.NoName {
		e.uncache(h)
	}
	return 0, fmt.Errorf("%v refused: %s", peer, st)
}

// handshake sends the alloc request every AllocRetry until the peer
// answers with a final status, stays silent for AllocMisses requests
// in a row, or AllocTimeout passes. "pending" and "busy" answers are
// signs of life, not final.
func (e *Engine[A]) handshake(ctx context.Context, fl *Flow[A], port uint16) (wire.Status, uint16, error) {
	req := wire.Msg{Type: wire.AllocReq, Src: fl.Local, Hash: fl.hash, MTU: uint16(fl.MTU), Port: port, QoS: fl.App.QoS}
	limit := e.clk.NewTimer(e.t.AllocTimeout)
	defer limit.Stop()
	t := e.clk.NewTimer(e.t.AllocRetry)
	defer t.Stop()
	misses, busy := 0, false
	for {
		e.send(fl.Peer, &req)
		t.Reset(e.t.AllocRetry)
		heard := false
		for waiting := true; waiting; {
			select {
			case m := <-fl.resp:
				switch m.Status {
				case wire.Pending:
					heard = true
				case wire.Busy:
					// Its caps are full for now: ask again at each
					// retry until the allocation times out.
					heard, busy = true, true
				default:
					return m.Status, m.Port, nil
				}
			case <-t.C():
				waiting = false
			case <-limit.C():
				if busy {
					return wire.Busy, 0, nil
				}
				return 0, 0, fmt.Errorf("%w: %v took longer than %v to accept", errGone, fl.Peer, e.t.AllocTimeout)
			case <-ctx.Done():
				return 0, 0, ctx.Err()
			case <-e.ctx.Done():
				return 0, 0, ErrClosed
			}
		}
		if heard {
			misses = 0
			continue
		}
		if misses++; misses >= e.t.AllocMisses {
			return 0, 0, fmt.Errorf("%w: %v sent no reply to %d flow requests over %v; is its IPCP running?",
				errGone, fl.Peer, misses, time.Duration(misses)*e.t.AllocRetry)
		}
	}
}

// sendConfirm tells the responder of fl that we got its "ok".
func (e *Engine[A]) sendConfirm(fl *Flow[A]) {
	if e.send(fl.Peer, &wire.Msg{Type: wire.Confirm, Dst: fl.Remote, Src: fl.Local}) {
		e.Counters.ConfirmsOut.Add(1)
	}
}

// onAllocReq answers an alloc request: a repeated request for a flow
// set up but not yet confirmed gets the same "ok" again (a request for
// a confirmed one comes from a restarted requester: the old flow ends),
// one in progress or for a flow ending here gets "pending", a new one starts an arrival (and gets "pending" at once,
// so the requester knows this side is alive) if the caps on incoming
// flows admit it. Refusals, which leave no state, are answered within
// the source's answer budget; beyond it they are dropped and counted.
func (e *Engine[A]) onAllocReq(src A, m *wire.Msg) {
	e.Counters.AllocsIn.Add(1)
	key := peerKey[A]{src, m.Src}
	resp := wire.Msg{Type: wire.AllocResp, Dst: m.Src}
	why := admit.Admitted
	e.mu.Lock()
	name, registered := e.names.Lookup(m.Hash)
	if fl := e.byRemote[key]; fl != nil && fl.state.Load() == stateUp && fl.confirmed.Load() && !e.closed {
		// The requester confirmed this flow, so it had our "ok" and
		// asks for no flow under that eid any more: it is a new
		// incarnation (its IPCP killed and started again on the same
		// address, handing out the same eids), which no longer has
		// the old flow. An "ok" would give it our end of the old flow
		// (and our dealloc of it would end its new one): the old flow
		// ends as if the peer had deallocated it, the request is a
		// new one.
		e.Counters.AllocsRestarted.Add(1)
		if fl.end(endRemote) {
			e.removeLocked(fl)
		}
		e.log.Info("flow request from a restarted peer: its old flow ended", "from", fmt.Sprint(src),
			"peer_eid", m.Src, "eid", fl.Local)
	}
	switch fl := e.byRemote[key]; {
	case fl != nil && fl.state.Load() == stateUp && !fl.Ending():
		resp.Src, resp.Status, resp.MTU, resp.Port = fl.Local, wire.OK, uint16(fl.MTU), fl.offered()
	case fl != nil:
		// Ending here (our dealloc of it not acknowledged yet):
		// "pending" keeps the requester asking until it is gone.
		resp.Status = wire.Pending
	case e.arriving[key]:
		resp.Status = wire.Pending
	case e.closed:
		resp.Status = wire.Closing
	case !registered:
		resp.Status = wire.NoName
	default:
		if why = e.adm.Admit(src); why != admit.Admitted {
			resp.Status = wire.Busy
			break
		}
		resp.Status = wire.Pending
		e.arriving[key] = true
		e.work.Add(1)
		go e.arrival(key, name, m.QoS, min(int(m.MTU), e.mtu), m.Port)
	}
	e.mu.Unlock()
	if resp.Status > wire.Pending {
		e.Counters.AllocsRefused.Add(1)
		e.Counters.Refused.Count(why)
		if !e.allowAnswer(src) {
			e.Counters.AllocsLimited.Add(1)
			return
		}
	}
	e.send(src, &resp)
}

// offered is the medium field an "ok" for fl carries.
func (fl *Flow[A]) offered() uint16 {
	return uint16(fl.port.Load())
}

// arrival asks the IRMd for an acceptor of name (for at most
// ArriveTimeout) and, if one takes the flow, answers the requester and
// moves the flow's packets. The admission counted the flow in
// onAllocReq; arrival releases it on failure, the flow's removal
// otherwise. e.work counts it. port is the requester's medium field.
func (e *Engine[A]) arrival(key peerKey[A], name string, q qos.Spec, mtu int, port uint16) {
	resp := wire.Msg{Type: wire.AllocResp, Dst: key.eid}
	ctx, cancel := context.WithTimeout(e.ctx, e.t.ArriveTimeout)
	f, err := e.cfg.Arrive(ctx, name, q, mtu)
	timedOut := ctx.Err() == context.DeadlineExceeded
	cancel()
	refuse := func(st wire.Status) {
		resp.Status = st
		e.Counters.AllocsRefused.Add(1)
		e.send(key.addr, &resp)
		e.work.Done()
	}
	e.mu.Lock()
	delete(e.arriving, key)
	eid, ok := e.newEIDLocked()
	if err != nil || e.closed || !ok {
		e.adm.Release(key.addr, true)
		e.mu.Unlock()
		switch {
		case err != nil:
			if timedOut {
				e.Counters.ArrivalsTimedOut.Add(1)
			}
			e.log.Debug("incoming flow refused", "name", name, "from", fmt.Sprint(key.addr), "error", err)
			refuse(wire.NoAcceptor)
		case !ok:
			f.End(true)
			refuse(wire.Busy)
		default:
			f.End(true)
			refuse(wire.Closing)
		}
		return
	}
	fl := newFlow(f, key.addr, mtu)
	fl.Remote, fl.Local = key.eid, eid
	fl.Incoming, fl.counted = true, true
	fl.confirmed.Store(false)
	// Held while the link sets up its side, so that the eid is not
	// handed out twice.
	e.flows[eid] = fl
	e.mu.Unlock()
	if port != 0 {
		// Set up before the answer goes out: the requester may send
		// as soon as the answer arrives.
		e.link.Offer(fl)
		fl.port.Store(uint32(e.link.Agreed(fl, port)))
	}
	e.mu.Lock()
	if e.closed {
		e.removeLocked(fl)
		e.mu.Unlock()
		e.link.Release(fl)
		f.End(true)
		refuse(wire.Closing)
		return
	}
	fl.born = e.clk.Now()
	fl.state.Store(stateUp)
	e.byRemote[key] = fl
	e.mu.Unlock()
	e.kickSweep()
	resp.Src, resp.Status, resp.MTU, resp.Port = fl.Local, wire.OK, uint16(mtu), fl.offered()
	e.send(key.addr, &resp)
	e.log.Debug("flow arrived", "name", name, "from", fmt.Sprint(key.addr), "eid", fl.Local, "peer_eid", fl.Remote)
	e.signalInitial(fl)
	e.run(fl) // calls e.work.Done
}

// onAllocResp hands a response to the Alloc waiting for it.
func (e *Engine[A]) onAllocResp(src A, m *wire.Msg) {
	e.mu.Lock()
	fl := e.flows[m.Dst]
	if fl == nil || fl.Peer != src || fl.Incoming {
		e.mu.Unlock()
		e.Counters.LateReplies.Add(1)
		if m.Status == wire.OK {
			// We gave up on that flow; the far end must not keep it
			// (within the answer budget: a forged "ok" must not make
			// this IPCP a reflector).
			if !e.allowAnswer(src) {
				e.Counters.AllocsLimited.Add(1)
				return
			}
			e.send(src, &wire.Msg{Type: wire.Dealloc, Dst: m.Src, Src: m.Dst})
			e.Counters.DeallocsOut.Add(1)
		}
		return
	}
	if fl.state.Load() != statePending {
		again := m.Status == wire.OK && fl.state.Load() == stateUp && fl.Remote == m.Src
		e.mu.Unlock()
		if again {
			// Our confirmations may have been lost: one more.
			e.sendConfirm(fl)
		}
		return // a duplicate
	}
	if m.Status == wire.OK {
		fl.Remote = m.Src
		fl.MTU = min(fl.MTU, int(m.MTU))
		fl.state.Store(stateUp)
	}
	e.mu.Unlock()
	select {
	case fl.resp <- *m:
	default:
		// An unread "pending" is as good as this one.
		if m.Status != wire.Pending {
			select {
			case <-fl.resp:
			default:
			}
			fl.resp <- *m
		}
	}
}

// onDealloc ends the flow the peer deallocated, and acknowledges every
// well-formed dealloc so that the peer stops repeating it: at once for
// a flow of ours, within the answer budget for an unknown one (the peer
// repeating after our ack was lost, or a forged source).
func (e *Engine[A]) onDealloc(src A, m *wire.Msg) {
	e.Counters.DeallocsIn.Add(1)
	ack := wire.Msg{Type: wire.DeallocAck, Dst: m.Src, Src: m.Dst}
	e.mu.Lock()
	fl := e.flows[m.Dst]
	if fl == nil || fl.Peer != src || fl.Remote != m.Src || fl.state.Load() == statePending {
		e.mu.Unlock()
		e.Counters.StaleDeallocs.Add(1)
		if !e.allowAnswer(src) {
			e.Counters.AnswersLimited.Add(1)
			return
		}
		e.send(src, &ack)
		return
	}
	ended := fl.end(endRemote)
	if ended {
		e.removeLocked(fl)
	}
	e.mu.Unlock()
	e.send(src, &ack)
	if !ended {
		// Both ends deallocated at once: theirs acknowledges ours.
		fl.signalAck()
	}
}

// onDeallocAck wakes the flow waiting for it.
func (e *Engine[A]) onDeallocAck(src A, m *wire.Msg) {
	e.mu.RLock()
	fl := e.flows[m.Dst]
	e.mu.RUnlock()
	if fl == nil || fl.Peer != src || fl.Remote != m.Src {
		e.Counters.StaleAcks.Add(1)
		return
	}
	fl.signalAck()
}

// onConfirm records that the requester of an incoming flow got our
// "ok"; repeated confirmations change nothing.
func (e *Engine[A]) onConfirm(src A, m *wire.Msg) {
	e.mu.Lock()
	defer e.mu.Unlock()
	fl := e.flows[m.Dst]
	if fl == nil || fl.Peer != src || fl.Remote != m.Src || !fl.Incoming || fl.state.Load() != stateUp {
		e.Counters.StaleConfirms.Add(1)
		return
	}
	e.confirmLocked(fl)
}
