package shim

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/ouro-net/ouro/ipcpd"
	"github.com/ouro-net/ouro/ipcpd/shim/wire"
	"github.com/ouro-net/ouro/lib/pipe"
)

// Flow states.
const (
	statePending int32 = iota // alloc request out, no answer yet
	stateUp                   // moving data
	stateClosing              // dealloc sent, waiting for its ack
)

// Why a flow ends; the first cause recorded wins.
const (
	endNone     int32 = iota
	endLocal          // the application deallocated or died
	endRemote         // the peer sent a dealloc
	endShutdown       // the IPCP is closing
	endExpired        // never confirmed by the requester (incoming flows)
)

// Flow is one flow as the engine and its link move it.
type Flow[A comparable] struct {
	// App is the flow's IRMd side: its channel to the application and
	// its counters.
	App *ipcpd.Flow
	// Local is this end's eid: what the peer puts in data headers.
	Local uint32
	// Peer is the far end's address, as the link reports sources.
	Peer A
	// Written under Engine.mu before the flow goes up, then read-only.
	// Remote is the far end's eid, MTU the agreed MTU.
	Remote uint32
	MTU    int
	// Incoming tells a flow the peer asked for.
	Incoming bool
	// Medium is the link's own state of the flow (udp: its data
	// socket); the engine does not touch it.
	Medium any

	// Incoming flows are counted by the admission (counted, until
	// removed) and must be confirmed by the requester within
	// ConfirmTimeout of born. Both written under Engine.mu; confirmed
	// is also read without it.
	counted   bool
	born      time.Time
	confirmed atomic.Bool
	// Outgoing flows: confirmations still to send (by the sweeper).
	confirmsLeft atomic.Int32

	state  atomic.Int32
	reason atomic.Int32
	resp   chan wire.Msg // alloc responses, to the waiting Alloc
	ack    chan struct{} // dealloc acknowledged
	hash   [16]byte      // outgoing: the name asked for
	port   atomic.Uint32 // incoming: the medium field of our "ok"
	dlAt   atomic.Int64  // unix ns until which the write deadline holds
	_      [0]func()     // not comparable
}

func newFlow[A comparable](f *ipcpd.Flow, peer A, mtu int) *Flow[A] {
	fl := &Flow[A]{App: f, Peer: peer, MTU: mtu, resp: make(chan wire.Msg, 1), ack: make(chan struct{}, 1)}
	fl.confirmed.Store(true)
	return fl
}

// Up reports whether the flow moves data.
func (fl *Flow[A]) Up() bool { return fl.state.Load() == stateUp }

// Ending reports whether the flow's end was decided: Run returns.
func (fl *Flow[A]) Ending() bool { return fl.reason.Load() != endNone }

// Unconfirmed reports whether fl is an incoming flow whose requester
// has not confirmed it yet.
func (fl *Flow[A]) Unconfirmed() bool { return !fl.confirmed.Load() }

// end records why the flow ends and wakes its Run; it reports whether
// this call set the cause.
func (fl *Flow[A]) end(reason int32) bool {
	if !fl.reason.CompareAndSwap(endNone, reason) {
		return false
	}
	// A deadline in the past makes the pending (or next) Read return.
	fl.App.Pipe.SetReadDeadline(time.Unix(1, 0))
	return true
}

func (fl *Flow[A]) signalAck() {
	select {
	case fl.ack <- struct{}{}:
	default:
	}
}

// newEIDLocked hands out the next free endpoint id, round robin within
// the medium's range, so that a freed eid is not reused soon; e.mu
// held.
func (e *Engine[A]) newEIDLocked() (uint32, bool) {
	for range min(uint64(e.maxEID), 1<<20) {
		if e.nextEID++; e.nextEID == 0 || e.nextEID > e.maxEID {
			e.nextEID = 1
		}
		if e.flows[e.nextEID] == nil {
			return e.nextEID, true
		}
	}
	return 0, false
}

// removeLocked forgets fl; e.mu held.
func (e *Engine[A]) removeLocked(fl *Flow[A]) {
	if e.flows[fl.Local] == fl {
		delete(e.flows, fl.Local)
	}
	k := peerKey[A]{fl.Peer, fl.Remote}
	if e.byRemote[k] == fl {
		delete(e.byRemote, k)
	}
	if fl.counted {
		fl.counted = false
		e.adm.Release(fl.Peer, !fl.confirmed.Load())
	}
}

func (e *Engine[A]) forget(fl *Flow[A]) {
	e.mu.Lock()
	e.removeLocked(fl)
	e.mu.Unlock()
}

// confirmLocked records that the requester of incoming flow fl has it;
// e.mu held.
func (e *Engine[A]) confirmLocked(fl *Flow[A]) {
	if fl.confirmed.Swap(true) {
		return
	}
	if fl.counted {
		e.adm.Confirm(fl.Peer)
	}
	e.Counters.ConfirmsIn.Add(1)
}

// Data returns the flow that a data frame for eid from src belongs to,
// or nil (counted) if there is none or src is not its peer. Data from
// the requester of an unconfirmed flow confirms it. The link's receive
// path calls it for every data frame; it does not allocate.
func (e *Engine[A]) Data(eid uint32, src A) *Flow[A] {
	e.mu.RLock()
	fl := e.flows[eid]
	e.mu.RUnlock()
	switch {
	case fl == nil:
		e.Counters.UnknownEID.Add(1)
		return nil
	case fl.Peer != src:
		e.Counters.WrongPeer.Add(1)
		return nil
	case fl.state.Load() != stateUp:
		fl.App.Drops.Add(1)
		return nil
	}
	if !fl.confirmed.Load() {
		e.mu.Lock()
		e.confirmLocked(fl)
		e.mu.Unlock()
	}
	return fl
}

// Deliver hands one payload to fl's application, renewing the write
// deadline (deliverTimeout) at most every deliverTimeout/2: an
// application that stops reading costs the receive path at most that
// long. It counts what it delivers and drops.
func (e *Engine[A]) Deliver(fl *Flow[A], payload []byte) {
	f := fl.App
	now := time.Now()
	if now.UnixNano() > fl.dlAt.Load() {
		_ = f.Pipe.SetWriteDeadline(now.Add(deliverTimeout))
		fl.dlAt.Store(now.Add(deliverTimeout / 2).UnixNano())
	}
	if err := f.Pipe.Write(payload); err != nil {
		f.Drops.Add(1)
		e.Counters.Undeliverable.Add(1)
		return
	}
	f.PktsOut.Add(1)
	f.BytesOut.Add(uint64(len(payload)))
	e.Counters.RxData.Add(1)
}

// run moves fl's packets (the link's Run) until the flow ends, then
// ends it as its cause says. The caller told the flow of a carrier
// that is down (signalInitial) before. It is the only caller of fl.App.End.
// e.work counts it.
func (e *Engine[A]) run(fl *Flow[A]) {
	defer e.work.Done()
	e.link.Run(fl)
	fl.end(endLocal)
	f := fl.App
	dealloc := wire.Msg{Type: wire.Dealloc, Dst: fl.Remote, Src: fl.Local}
	switch fl.reason.Load() {
	case endRemote:
		// Already forgotten by the receive path.
		f.End(true)
	case endShutdown:
		e.send(fl.Peer, &dealloc)
		e.Counters.DeallocsOut.Add(1)
		e.forget(fl)
		f.End(false)
	case endExpired:
		// One dealloc, unacknowledged: the requester may be a forged
		// source, which must not get more than its request cost.
		e.forget(fl)
		e.send(fl.Peer, &dealloc)
		e.Counters.DeallocsOut.Add(1)
		f.End(true)
	default:
		fl.state.Store(stateClosing)
		f.End(false)
		e.deallocRemote(fl, &dealloc)
		e.forget(fl)
	}
	e.log.Debug("flow ended", "name", f.Name, "peer", fmt.Sprint(fl.Peer), "eid", fl.Local, "reason", fl.reason.Load())
}

// deallocRemote tells the peer the flow is gone, repeating until it
// acknowledges, DeallocTries pass, or the engine closes.
func (e *Engine[A]) deallocRemote(fl *Flow[A], m *wire.Msg) {
	t := e.clk.NewTimer(e.t.AllocRetry)
	defer t.Stop()
	for range e.t.DeallocTries {
		e.send(fl.Peer, m)
		e.Counters.DeallocsOut.Add(1)
		t.Reset(e.t.AllocRetry)
		select {
		case <-fl.ack:
			return
		case <-e.ctx.Done():
			return
		case <-t.C():
		}
	}
	e.Counters.DeallocsUnacked.Add(1)
}

// TooBig counts an application packet over the flow MTU.
func (e *Engine[A]) TooBig(fl *Flow[A]) {
	fl.App.Drops.Add(1)
	e.Counters.TooBig.Add(1)
}

// signalInitial tells a flow that came up while the carrier was down.
func (e *Engine[A]) signalInitial(fl *Flow[A]) {
	e.sigMu.Lock()
	defer e.sigMu.Unlock()
	e.mu.RLock()
	down := !e.carrier
	e.mu.RUnlock()
	if down {
		e.signal(fl, pipe.Down)
	}
}

func (e *Engine[A]) signal(fl *Flow[A], k pipe.Kind) {
	p := fl.App.Pipe
	fl.App.MarkState(k)
	_ = p.SetWriteDeadline(time.Now().Add(10 * deliverTimeout))
	fl.dlAt.Store(0)
	if err := p.WriteKind(k, nil); err != nil {
		e.log.Debug("link event not delivered", "name", fl.App.Name, "event", k, "error", err)
	}
}

// SetCarrier records the medium's link state. On a change it marks
// every flow DOWN, or UP again, at once; while it is down, queries
// answer "unreachable" and allocations fail at once.
func (e *Engine[A]) SetCarrier(up bool) {
	e.sigMu.Lock()
	defer e.sigMu.Unlock()
	e.mu.Lock()
	if e.carrier == up || e.closed {
		e.mu.Unlock()
		return
	}
	e.carrier = up
	e.carrierAt = e.clk.Now()
	var flows []*Flow[A]
	for _, fl := range e.flows {
		if fl.state.Load() == stateUp {
			flows = append(flows, fl)
		}
	}
	e.mu.Unlock()
	e.Counters.CarrierChanges.Add(1)
	k := pipe.Down
	if up {
		k = pipe.Up
	}
	for _, fl := range flows {
		e.signal(fl, k)
	}
	e.log.Info("carrier "+k.String(), "kind", e.cfg.Kind, "flows", len(flows))
}

// Carrier reports the link state the engine works with.
func (e *Engine[A]) Carrier() bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.carrier
}

func (e *Engine[A]) noCarrierHint() string {
	if e.Carrier() {
		return ""
	}
	return " (the medium has no carrier)"
}
