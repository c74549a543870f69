package udp

import (
	"errors"
	"github.com/ouro-net/ouro/ipcpd/shim/wire"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"github.com/ouro-net/ouro/ipcpd"
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

// remoteKey names a flow by its far end, to spot retransmitted requests.
type remoteKey struct {
	addr netip.AddrPort
	eid  uint32
}

// uflow is one flow as this kind moves it.
type uflow struct {
	f     *ipcpd.Flow
	local uint32         // our eid: what the peer puts in data headers
	peer  netip.AddrPort // where the far end lives (as received: no zone)
	to    netip.AddrPort // where to send (the configured peer, with its zone)

	// Written under IPCP.mu before the flow goes up, then read-only.
	remote uint32 // the far end's eid
	mtu    int

	// The flow's data socket until it is handed to the application
	// (data), then the IPCP's copy of it (direct); dport is its port,
	// offered to the peer. See direct.go.
	data     *os.File
	dport    uint16
	peerPort uint16 // the peer's data socket port (requester side)
	direct   *pipe.Pipe

	// Incoming flows are counted by the admission (counted, until
	// removed) and must be confirmed by the requester within
	// ConfirmTimeout of born. Both written under IPCP.mu; confirmed
	// is also read without it.
	incoming  bool
	counted   bool
	born      time.Time
	confirmed atomic.Bool
	// Outgoing flows: confirmations still to send (by the sweeper).
	confirmsLeft atomic.Int32

	state  atomic.Int32
	reason atomic.Int32
	resp   chan wire.Status // alloc responses, to the waiting Alloc
	ack    chan struct{}    // dealloc acknowledged
}

// newUflow returns a flow record; incoming flows clear confirmed.
func newUflow(f *ipcpd.Flow, peer, to netip.AddrPort, mtu int) *uflow {
	fl := &uflow{f: f, peer: peer, to: to, mtu: mtu, resp: make(chan wire.Status, 1), ack: make(chan struct{}, 1)}
	fl.confirmed.Store(true)
	return fl
}

// end records why the flow ends and wakes its goroutine; it reports
// whether this call set the cause.
func (fl *uflow) end(reason int32) bool {
	if !fl.reason.CompareAndSwap(endNone, reason) {
		return false
	}
	// A deadline in the past makes the pending (or next) Read return.
	fl.f.Pipe.SetReadDeadline(time.Unix(1, 0))
	return true
}

func (fl *uflow) signalAck() {
	select {
	case fl.ack <- struct{}{}:
	default:
	}
}

// newEIDLocked picks an unused random non-zero eid; u.mu held. Random
// eids make a stray datagram of an old flow unlikely to hit a new one.
func (u *IPCP) newEIDLocked() uint32 {
	for {
		e := rand.Uint32()
		if e != 0 && u.flows[e] == nil {
			return e
		}
	}
}

// removeLocked forgets fl; u.mu held.
func (u *IPCP) removeLocked(fl *uflow) {
	if u.flows[fl.local] == fl {
		delete(u.flows, fl.local)
	}
	k := remoteKey{fl.peer, fl.remote}
	if u.byRemote[k] == fl {
		delete(u.byRemote, k)
	}
	if fl.counted {
		fl.counted = false
		u.adm.Release(fl.peer, !fl.confirmed.Load())
	}
}

// confirmLocked records that the requester of incoming flow fl has it;
// u.mu held.
func (u *IPCP) confirmLocked(fl *uflow) {
	if fl.confirmed.Swap(true) {
		return
	}
	if fl.counted {
		u.adm.Confirm(fl.peer)
	}
	u.ctr.confirmsIn.Add(1)
}

// txLoop moves the application's packets to the peer until the flow
// ends, then ends it. It is the only caller of fl.f.End. u.work counts it.
func (u *IPCP) txLoop(fl *uflow) {
	defer u.work.Done()
	f := fl.f
	switch snd := newSender(fl.to); {
	case fl.direct != nil:
		u.txDirect(fl)
	case snd != nil:
		u.txBatched(fl, snd)
	default:
		u.txOneByOne(fl)
	}
	fl.end(endLocal)
	switch fl.reason.Load() {
	case endRemote:
		// Already forgotten by the receive goroutine.
		f.End(true)
	case endShutdown:
		u.sendMsg(&wire.Msg{Type: wire.Dealloc, Dst: fl.remote, Src: fl.local}, fl.to)
		u.ctr.deallocsOut.Add(1)
		u.forget(fl)
		f.End(false)
	case endExpired:
		// One dealloc, unacknowledged: the requester may be a forged
		// source, which must not get more than its request cost.
		u.forget(fl)
		u.sendMsg(&wire.Msg{Type: wire.Dealloc, Dst: fl.remote, Src: fl.local}, fl.to)
		u.ctr.deallocsOut.Add(1)
		f.End(true)
	default:
		fl.state.Store(stateClosing)
		f.End(false)
		u.deallocRemote(fl)
		u.forget(fl)
	}
}

// txMemory bounds the buffers of one flow's sender: a stranger may
// hold MaxFlows flows, and buffers of reused memory are resident.
const txMemory = 256 << 10

// txBuffers is how many packets of mtu bytes a flow's sender reads at
// once: txBatch, fewer for a large MTU (4 on loopback).
func txBuffers(mtu int) int { return max(1, min(txBatch, txMemory/(eidLen+mtu+1))) }

// txBatched moves packets from the flow's pipe to the peer in batches:
// one recvmmsg from the pipe, one sendmmsg to the socket.
func (u *IPCP) txBatched(fl *uflow, snd *sender) {
	f := fl.f
	var bufs, payloads [txBatch][]byte
	var sizes [txBatch]int
	var kinds [txBatch]pipe.Kind
	nb := txBuffers(fl.mtu)
	for i := range nb {
		bufs[i] = make([]byte, eidLen+fl.mtu+1)
		putDataHeader(bufs[i], fl.remote)
		payloads[i] = bufs[i][eidLen:]
	}
	drill := newDrill(u.loss, uint64(fl.local))
	for {
		n, err := f.Pipe.ReadBatch(payloads[:nb], sizes[:nb], kinds[:nb])
		if err != nil {
			return
		}
		done := false
		for i := 0; i < n && !done; i++ {
			switch kinds[i] {
			case pipe.Dealloc:
				done = true
				continue
			case pipe.Data:
			default:
				continue
			}
			size := sizes[i]
			if size < 0 || size > fl.mtu {
				// Larger than the MTU: the flow library should not let
				// it by.
				f.Drops.Add(1)
				continue
			}
			f.PktsIn.Add(1)
			f.BytesIn.Add(uint64(size))
			if u.loss != 0 && drill.drop() {
				u.ctr.txDrill.Add(1)
				continue
			}
			snd.add(bufs[i][:eidLen+size])
			u.ctr.txBytes.Add(uint64(eidLen + size))
		}
		sent, failed := snd.flush(u.rc)
		u.ctr.txData.Add(uint64(sent))
		if failed > 0 {
			u.ctr.txErrors.Add(uint64(failed))
			f.Drops.Add(uint64(failed))
		}
		if done {
			return
		}
	}
}

// txOneByOne is txBatched for a peer address that sendmmsg cannot be
// given here: one datagram per system call.
func (u *IPCP) txOneByOne(fl *uflow) {
	f := fl.f
	buf := make([]byte, eidLen+fl.mtu+1)
	putDataHeader(buf, fl.remote)
	drill := newDrill(u.loss, uint64(fl.local))
	for {
		n, k, err := f.Pipe.Read(buf[eidLen:])
		if err != nil {
			if errors.Is(err, io.ErrShortBuffer) && fl.reason.Load() == endNone {
				f.Drops.Add(1) // larger than the MTU: the flow library should not let it by
				continue
			}
			return
		}
		if k == pipe.Dealloc {
			return
		}
		if k != pipe.Data {
			continue
		}
		f.PktsIn.Add(1)
		f.BytesIn.Add(uint64(n))
		if n > fl.mtu {
			f.Drops.Add(1)
			continue
		}
		if u.loss != 0 && drill.drop() {
			u.ctr.txDrill.Add(1)
			continue
		}
		if _, err := u.conn.WriteToUDPAddrPort(buf[:eidLen+n], fl.to); err != nil {
			u.ctr.txErrors.Add(1)
			f.Drops.Add(1)
			continue
		}
		u.ctr.txData.Add(1)
		u.ctr.txBytes.Add(uint64(eidLen + n))
	}
}

// deallocRemote tells the peer the flow is gone, retransmitting until it
// acknowledges, a few tries pass, or the IPCP closes.
func (u *IPCP) deallocRemote(fl *uflow) {
	m := wire.Msg{Type: wire.Dealloc, Dst: fl.remote, Src: fl.local}
	t := u.clk.NewTimer(u.tm.retry)
	defer t.Stop()
	for range u.tm.deallocTries {
		u.sendMsg(&m, fl.to)
		u.ctr.deallocsOut.Add(1)
		t.Reset(u.tm.retry)
		select {
		case <-fl.ack:
			return
		case <-u.ctx.Done():
			return
		case <-t.C():
		}
	}
	u.ctr.deallocsUnacked.Add(1)
}

func (u *IPCP) forget(fl *uflow) {
	u.mu.Lock()
	u.removeLocked(fl)
	u.mu.Unlock()
}

// deliver hands a data frame's payload to its flow's application.
func (u *IPCP) deliver(eid uint32, payload []byte, src netip.AddrPort) {
	u.mu.RLock()
	fl := u.flows[eid]
	u.mu.RUnlock()
	if fl == nil {
		u.ctr.rxUnknownEID.Add(1)
		return
	}
	if fl.peer != src {
		u.ctr.rxWrongSource.Add(1)
		return
	}
	if fl.state.Load() != stateUp || len(payload) > fl.mtu {
		fl.f.Drops.Add(1)
		return
	}
	if !fl.confirmed.Load() {
		// Data from the requester confirms the flow as well.
		u.mu.Lock()
		u.confirmLocked(fl)
		u.mu.Unlock()
	}
	if u.rxPend.fl != fl {
		u.flushRx()
		u.rxPend.fl = fl
	}
	u.rxPend.pkts = append(u.rxPend.pkts, payload)
}

// rxPending gathers the consecutive datagrams of one flow within a
// receive batch, to hand them to its pipe with one system call. Only the
// receive goroutine uses it.
type rxPending struct {
	fl   *uflow
	pkts [][]byte
}

// flushRx writes the gathered datagrams to their flow's pipe.
func (u *IPCP) flushRx() {
	fl, pkts := u.rxPend.fl, u.rxPend.pkts
	u.rxPend.fl, u.rxPend.pkts = nil, pkts[:0]
	if fl == nil || len(pkts) == 0 {
		return
	}
	n, _ := fl.f.Pipe.WriteBatch(pkts)
	// Short of all: the application is gone or the flow is ending;
	// its txLoop sees that on its own Read.
	fl.f.Drops.Add(uint64(len(pkts) - n))
	var bytes uint64
	for _, p := range pkts[:n] {
		bytes += uint64(len(p))
	}
	fl.f.PktsOut.Add(uint64(n))
	fl.f.BytesOut.Add(bytes)
	u.ctr.rxData.Add(uint64(n))
	clear(pkts)
}

// drill decides which packets the loss drill drops: a share of them at
// random, never two in a row (see the package doc).
type drill struct {
	p       float64 // chance to drop a packet that follows a sent one
	rng     *rand.Rand
	dropped bool
}

// newDrill returns the drill for loss (the share of packets to drop,
// at most 1/2): with no two drops in a row, dropping after a sent packet
// with chance loss/(1-loss) drops loss of all packets.
func newDrill(loss float64, seed uint64) *drill {
	if loss == 0 {
		return nil
	}
	return &drill{p: loss / (1 - loss), rng: rand.New(rand.NewPCG(seed, 0x6f75726f))}
}

func (d *drill) drop() bool {
	if d.dropped {
		d.dropped = false
		return false
	}
	d.dropped = d.rng.Float64() < d.p
	return d.dropped
}
