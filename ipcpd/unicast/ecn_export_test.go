package unicast

import "github.com/ouro-net/ouro/dt"

// ForwardSized forwards one packet of size payload bytes to address 2,
// as readAdj does, and reports the ECN field its buffer carries after
// the flush (the mark must not stay on a reader's buffer).
func (l *ForwardLoop) ForwardSized(size int) uint8 {
	pkt := make([]byte, len(l.toOther)+size)
	copy(pkt, l.toOther)
	l.u.receiveFrame(l.a, &l.out, pkt)
	l.u.flush(&l.out)
	e, _ := l.u.layout.ECN(pkt[1:])
	return e
}

// DeliverECN delivers one packet carrying ECN level ecn to the local
// endpoint, batched (as readAdj does) or not.
func (l *ForwardLoop) DeliverECN(ecn uint8, batched bool) {
	pkt := append([]byte(nil), l.toSelf...)
	l.u.layout.SetECN(pkt[1:], ecn)
	if batched {
		l.u.receiveFrame(l.a, &l.out, pkt)
		l.u.flush(&l.out)
		return
	}
	l.u.receiveFrame(l.a, nil, pkt)
}

// Marked returns how many packets the adjacency sent marked.
func (l *ForwardLoop) Marked() uint64 { return l.a.ctr.Snapshot().ECNMarked }

// PacketECN returns the ECN field of a frame read from the lower flow.
func PacketECN(frame []byte) uint8 {
	e, _ := dt.DefaultLayout().ECN(frame[1:])
	return e
}

// ECNMarkAbove is the send queue (bytes) above which the egress marks.
const ECNMarkAbove = ecnMarkAbove
