package unicast

import (
	"encoding/binary"

	"github.com/ouro-net/ouro/dt"
)

// ForwardTagged forwards one packet of size payload bytes (at least 2)
// to address 2 in QoS cube cube, as readAdj does; its payload ends with
// tag.
func (l *ForwardLoop) ForwardTagged(size int, cube uint8, tag uint16) {
	pkt := make([]byte, len(l.toOther)+size)
	copy(pkt, l.toOther)
	pci, _, _ := l.u.layout.Decode(l.toOther[1:])
	pci.QoS = cube
	l.u.layout.Encode(pkt[1:], &pci)
	binary.BigEndian.PutUint16(pkt[len(pkt)-2:], tag)
	l.u.receiveFrame(l.a, &l.out, pkt)
	l.u.flush(&l.out)
}

// WriteMgmt writes a management frame on the loop's adjacency the way
// routing and directory frames and their acknowledgements are written.
func (l *ForwardLoop) WriteMgmt(frame []byte) error { return l.u.sendFrame(l.a, frame) }

// EgressDrops returns the packets the adjacency dropped for a full queue.
func (l *ForwardLoop) EgressDrops() uint64 { return l.a.ctr.Snapshot().DropQueueFull }

// PacketCube returns the QoS cube of a data frame read from a lower flow.
func PacketCube(frame []byte) uint8 {
	_, _, cube, _ := dt.DefaultLayout().FlowKey(frame[1:])
	return cube
}
