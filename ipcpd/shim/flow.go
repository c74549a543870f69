package shim

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ouro-net/ouro/ipcpd"
	"github.com/ouro-net/ouro/ipcpd/eth/frame"
	"github.com/ouro-net/ouro/ipcpd/shim/wire"
	"github.com/ouro-net/ouro/lib/namehash"
	"github.com/ouro-net/ouro/lib/pipe"
)

// flowState is where a flow is in its life.
type flowState int

const (
	stateAllocating flowState = iota // we asked, awaiting the reply
	stateArriving                    // they asked, awaiting our IRMd
	stateUp                          // packets move
	stateGone                        // ended
)

func (s flowState) String() string {
	switch s {
	case stateAllocating:
		return "allocating"
	case stateArriving:
		return "arriving"
	case stateUp:
		return "up"
	}
	return "gone"
}

// flowRec is one flow between this station and a peer. Fields other
// than the counters and deadline are guarded by Engine.mu until the
// flow is up, and constant after.
type flowRec struct {
	local  uint16 // our eid: the peer sends to it
	remote uint16 // the peer's eid: we send to it
	peer   frame.MAC
	hash   namehash.Hash
	name   string
	f      *ipcpd.Flow
	state  flowState
	mtu    int           // agreed: the smaller of both ends'
	reply  chan wire.Msg // outgoing allocations: the answer

	// Incoming flows are counted by the admission (counted, until
	// removed) and must be confirmed by the requester within
	// ConfirmTimeout of born; outgoing ones are confirmed from the
	// start and send confirmsLeft more Confirms. Guarded by Engine.mu.
	incoming     bool
	counted      bool
	confirmed    bool
	born         time.Time
	confirmsLeft int

	endOnce    sync.Once
	deadlineAt atomic.Int64 // unix ns until which the write deadline holds
}

// endReason says why a flow ends, which decides who is told.
type endReason int

const (
	endApp     endReason = iota // the application closed or died: tell the peer
	endPeer                     // the peer deallocated: tell the application (EOF)
	endClosing                  // the IPCP closes: tell the peer; the application sees the IPCP gone
	endExpired                  // never confirmed: tell the peer and the application (EOF)
)

func (r endReason) String() string {
	switch r {
	case endApp:
		return "application closed"
	case endPeer:
		return "peer deallocated"
	case endExpired:
		return "never confirmed"
	}
	return "IPCP closing"
}

// startFlow starts the writer of a flow that just came up; it fails
// only when the engine is closing.
func (e *Engine) startFlow(fr *flowRec) bool {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return false
	}
	e.wg.Add(1)
	e.mu.Unlock()
	e.log.Debug("flow allocated", "name", fr.name, "peer", fr.peer, "eid", fr.local, "peer_eid", fr.remote)
	e.signalInitial(fr)
	go func() {
		defer e.wg.Done()
		e.writeLoop(fr)
	}()
	return true
}

// writeLoop sends the application's packets to the peer until the flow
// ends. The buffer leaves room for the header in front of the packet,
// so nothing is copied.
func (e *Engine) writeLoop(fr *flowRec) {
	buf := make([]byte, frame.HeaderLen+e.mtu+1)
	hdr := frame.Header{Dst: fr.peer, Src: e.mac, EtherType: e.etype, EID: fr.remote}
	f := fr.f
	for {
		n, k, err := f.Pipe.Read(buf[frame.HeaderLen:])
		if err != nil {
			if errors.Is(err, io.ErrShortBuffer) {
				e.tooBig(f)
				continue
			}
			e.endFlow(fr, endApp)
			return
		}
		switch k {
		case pipe.Data:
			if n > fr.mtu {
				e.tooBig(f)
				continue
			}
			f.PktsIn.Add(1)
			f.BytesIn.Add(uint64(n))
			frame.PutHeader(buf, hdr, n)
			if e.send(buf[:frame.HeaderLen+n]) != nil {
				f.Drops.Add(1)
			}
		case pipe.Dealloc:
			e.endFlow(fr, endApp)
			return
		}
	}
}

func (e *Engine) tooBig(f *ipcpd.Flow) {
	f.Drops.Add(1)
	e.Counters.TooBig.Add(1)
}

// deliver hands a payload to the flow's application. The write deadline
// is renewed at most every deliverTimeout/2, not per packet.
func (e *Engine) deliver(fr *flowRec, payload []byte) {
	f := fr.f
	now := time.Now()
	if now.UnixNano() > fr.deadlineAt.Load() {
		_ = f.Pipe.SetWriteDeadline(now.Add(deliverTimeout))
		fr.deadlineAt.Store(now.Add(deliverTimeout / 2).UnixNano())
	}
	if err := f.Pipe.Write(payload); err != nil {
		f.Drops.Add(1)
		e.Counters.Undeliverable.Add(1)
		return
	}
	f.PktsOut.Add(1)
	f.BytesOut.Add(uint64(len(payload)))
}

// endFlow ends a flow once, telling whoever must be told.
func (e *Engine) endFlow(fr *flowRec, why endReason) {
	fr.endOnce.Do(func() {
		e.mu.Lock()
		e.removeLocked(fr)
		e.mu.Unlock()
		if why != endPeer {
			if err := e.sendMgmt(fr.peer, wire.Msg{Type: wire.Dealloc, Src: uint32(fr.local), Dst: uint32(fr.remote)}); err != nil {
				e.log.Debug("deallocation not sent", "name", fr.name, "error", err)
			}
		}
		e.log.Debug("flow ended", "name", fr.name, "peer", fr.peer, "eid", fr.local, "reason", why)
		// The application learns of a peer's deallocation with EOF; in
		// the other cases it closed itself or its IPCP is going away.
		fr.f.End(why == endPeer || why == endExpired)
	})
}

// removeLocked takes fr out of the tables and the admission; e.mu held.
func (e *Engine) removeLocked(fr *flowRec) {
	if e.flows[fr.local] == fr {
		delete(e.flows, fr.local)
	}
	if e.incoming[peerKey{fr.peer, fr.remote}] == fr.local {
		delete(e.incoming, peerKey{fr.peer, fr.remote})
	}
	fr.state = stateGone
	if fr.counted {
		fr.counted = false
		e.adm.Release(fr.peer, !fr.confirmed)
	}
}

// confirmLocked records that the requester of fr has it; e.mu held.
func (e *Engine) confirmLocked(fr *flowRec) {
	if fr.confirmed {
		return
	}
	fr.confirmed = true
	if fr.counted {
		e.adm.Confirm(fr.peer)
	}
	e.Counters.ConfirmsIn.Add(1)
}

// signalInitial tells a flow that came up while the carrier was down.
func (e *Engine) signalInitial(fr *flowRec) {
	e.sigMu.Lock()
	defer e.sigMu.Unlock()
	e.mu.RLock()
	down := !e.carrier
	e.mu.RUnlock()
	if down {
		e.signal(fr, pipe.Down)
	}
}

func (e *Engine) signal(fr *flowRec, k pipe.Kind) {
	p := fr.f.Pipe
	fr.f.MarkState(k)
	_ = p.SetWriteDeadline(time.Now().Add(10 * deliverTimeout))
	fr.deadlineAt.Store(0)
	if err := p.WriteKind(k, nil); err != nil {
		e.log.Debug("link event not delivered", "name", fr.name, "event", k, "error", err)
	}
}

// SetCarrier records the device's link state. On a change it marks
// every flow DOWN, or UP again, at once.
func (e *Engine) SetCarrier(up bool) {
	e.sigMu.Lock()
	defer e.sigMu.Unlock()
	e.mu.Lock()
	if e.carrier == up || e.closed {
		e.mu.Unlock()
		return
	}
	e.carrier = up
	e.carrierAt = e.clk.Now()
	var flows []*flowRec
	for _, fr := range e.flows {
		if fr.state == stateUp {
			flows = append(flows, fr)
		}
	}
	e.mu.Unlock()
	e.Counters.CarrierChanges.Add(1)
	k := pipe.Down
	if up {
		k = pipe.Up
	}
	for _, fr := range flows {
		e.signal(fr, k)
	}
	e.log.Info("carrier "+k.String(), "device", e.cfg.Dev.Name, "flows", len(flows))
}

// Carrier reports the link state the engine works with.
func (e *Engine) Carrier() bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.carrier
}

func (e *Engine) noCarrierHint() string {
	if e.Carrier() {
		return ""
	}
	return " (the device has no carrier)"
}
