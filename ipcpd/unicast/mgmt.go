package unicast

import (
	"encoding/binary"
	"sync"
	"time"

	"github.com/ouro-net/ouro/lib/clock"
)

// Reliable management frames.
//
// Lower flows are raw: they lose packets like the media under them. A
// lost data packet is the application's business (FRCT recovers it on a
// reliable flow), but a lost routing or directory update would leave a
// neighbour without a route or a name until the next refresh (30 s by
// default). So routing and directory frames carry a sequence number per
// neighbour, the neighbour acknowledges each one, and unacknowledged
// frames are sent again, over any management flow to that neighbour:
// after mgmtRTO, doubling up to mgmtRTOMax, at most mgmtTries times.
// Duplicates are harmless (updates are idempotent: the link-state
// database and the directory keep the newest copy per origin), so the
// receiver keeps no state. This plays the role of OSPF's link-state
// acknowledgements, but covers the directory too.
//
// Frame layout: kind (1), sequence number (4, big endian), payload. An
// acknowledgement is kindAck followed by one or more sequence numbers.
const (
	kindAck = 5

	mgmtSeqLen = 4
	mgmtRTO    = 100 * time.Millisecond
	mgmtRTOMax = time.Second
	mgmtTries  = 12
	// mgmtWindow bounds the unacknowledged frames kept per neighbour;
	// beyond it the oldest is dropped (the periodic refresh repairs).
	mgmtWindow = 1024
)

// mgmtOut is one unacknowledged frame.
type mgmtOut struct {
	frame []byte
	due   time.Time
	tries int
}

// mgmtPeer is the sending state towards one neighbour.
type mgmtPeer struct {
	next    uint32
	unacked map[uint32]*mgmtOut
}

// mgmtARQ holds the unacknowledged management frames of every neighbour.
type mgmtARQ struct {
	clk clock.Clock

	mu    sync.Mutex
	peers map[uint64]*mgmtPeer
	timer clock.Timer
	armed bool

	// Counters, guarded by mu.
	sent, resent, acked, abandoned uint64
}

func newMgmtARQ(clk clock.Clock) *mgmtARQ {
	return &mgmtARQ{clk: clk, peers: map[uint64]*mgmtPeer{}}
}

// frame builds a sequenced frame of kind to peer, records it as
// unacknowledged and returns it.
func (m *mgmtARQ) frame(peer uint64, kind byte, payload []byte) []byte {
	f := make([]byte, 1+mgmtSeqLen+len(payload))
	f[0] = kind
	copy(f[1+mgmtSeqLen:], payload)
	m.mu.Lock()
	p := m.peers[peer]
	if p == nil {
		p = &mgmtPeer{unacked: map[uint32]*mgmtOut{}}
		m.peers[peer] = p
	}
	p.next++
	if p.next == 0 {
		p.next = 1
	}
	binary.BigEndian.PutUint32(f[1:], p.next)
	if len(p.unacked) >= mgmtWindow {
		delete(p.unacked, p.next-mgmtWindow)
		m.abandoned++
	}
	p.unacked[p.next] = &mgmtOut{frame: f, due: m.clk.Now().Add(mgmtRTO)}
	m.sent++
	m.mu.Unlock()
	return f
}

// ack removes the frames peer acknowledged in an ack frame's body.
func (m *mgmtARQ) ack(peer uint64, body []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.peers[peer]
	for ; len(body) >= mgmtSeqLen; body = body[mgmtSeqLen:] {
		if p == nil {
			continue
		}
		seq := binary.BigEndian.Uint32(body)
		if _, ok := p.unacked[seq]; ok {
			delete(p.unacked, seq)
			m.acked++
		}
	}
}

// forget drops every frame waiting for peer (it is no longer a
// neighbour; a new adjacency starts with a full sync).
func (m *mgmtARQ) forget(peer uint64) {
	m.mu.Lock()
	if p := m.peers[peer]; p != nil {
		m.abandoned += uint64(len(p.unacked))
		delete(m.peers, peer)
	}
	m.mu.Unlock()
}

// due returns the frames to send again now, per neighbour, and pushes
// their next deadline back; frames past mgmtTries are abandoned.
func (m *mgmtARQ) due() map[uint64][][]byte {
	now := m.clk.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	var out map[uint64][][]byte
	for peer, p := range m.peers {
		for seq, o := range p.unacked {
			if o.due.After(now) {
				continue
			}
			if o.tries++; o.tries >= mgmtTries {
				delete(p.unacked, seq)
				m.abandoned++
				continue
			}
			o.due = now.Add(min(mgmtRTO<<o.tries, mgmtRTOMax))
			if out == nil {
				out = map[uint64][][]byte{}
			}
			out[peer] = append(out[peer], o.frame)
			m.resent++
		}
	}
	return out
}

// pending reports whether any frame waits for an acknowledgement.
func (m *mgmtARQ) pending() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.peers {
		if len(p.unacked) > 0 {
			return true
		}
	}
	return false
}

// counters returns sent, resent, acked and abandoned.
func (m *mgmtARQ) counters() (sent, resent, acked, abandoned uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sent, m.resent, m.acked, m.abandoned
}

// sendMgmt sends a routing or directory payload to neighbour peer
// reliably: through via if it is given and carries management, else
// through the first management flow to peer. It reports whether the
// first copy left.
func (u *IPCP) sendMgmt(peer uint64, kind byte, payload []byte, via *adj) bool {
	f := u.arq.frame(peer, kind, payload)
	u.armRetransmit()
	if via != nil && via.carriesMgmt() {
		if err := u.sendFrame(via, f); err == nil {
			via.ctr.Out(len(f))
			return true
		}
	}
	return u.writeMgmt(peer, f)
}

// writeMgmt writes a frame on the first management flow to peer that
// takes it.
func (u *IPCP) writeMgmt(peer uint64, f []byte) bool {
	for _, a := range u.sortedAdjs() {
		if a.peer == peer && a.carriesMgmt() {
			if err := u.sendFrame(a, f); err == nil {
				a.ctr.Out(len(f))
				return true
			}
		}
	}
	return false
}

// ackMgmt acknowledges a sequenced frame received on a.
func (u *IPCP) ackMgmt(a *adj, seq []byte) {
	var f [1 + mgmtSeqLen]byte
	f[0] = kindAck
	copy(f[1:], seq)
	if err := u.sendFrame(a, f[:]); err == nil {
		a.ctr.Out(len(f))
	}
}

// armRetransmit starts the retransmission timer unless it runs.
func (u *IPCP) armRetransmit() {
	u.arq.mu.Lock()
	defer u.arq.mu.Unlock()
	if u.arq.armed || u.ctx.Err() != nil {
		return
	}
	u.arq.armed = true
	if u.arq.timer == nil {
		u.arq.timer = u.clk.AfterFunc(mgmtRTO, u.retransmit)
	} else {
		u.arq.timer.Reset(mgmtRTO)
	}
}

// retransmit sends the frames whose acknowledgement is overdue and
// re-arms while any frame is unacknowledged. Frames for a neighbour
// with no management flow left are dropped.
func (u *IPCP) retransmit() {
	u.arq.mu.Lock()
	u.arq.armed = false
	u.arq.mu.Unlock()
	if u.ctx.Err() != nil {
		return
	}
	for peer, frames := range u.arq.due() {
		for _, f := range frames {
			if !u.writeMgmt(peer, f) {
				if !u.hasMgmt(peer) {
					u.arq.forget(peer)
				}
				break
			}
		}
	}
	if u.arq.pending() {
		u.armRetransmit()
	}
}

// hasMgmt reports whether a management flow to peer is up.
func (u *IPCP) hasMgmt(peer uint64) bool {
	for _, a := range *u.adjs.Load() {
		if a.peer == peer && a.carriesMgmt() {
			return true
		}
	}
	return false
}
