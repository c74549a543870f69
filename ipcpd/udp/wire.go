package udp

import (
	"encoding/binary"
	"errors"

	"github.com/ouro-net/ouro/ipcpd/shim/wire"
)

// Frame layout (see the package documentation).
const (
	// eidLen is the size of an endpoint id, and so of the data header.
	eidLen = 4
)

// errShort is a datagram shorter than the data header.
var errShort = errors.New("truncated frame")

// putDataHeader writes the data header (the receiver's eid) into b.
func putDataHeader(b []byte, eid uint32) { binary.BigEndian.PutUint32(b, eid) }

// splitFrame returns the eid of a frame and what follows it; eid 0 means
// a management frame, whose message is the payload.
func splitFrame(b []byte) (eid uint32, payload []byte, err error) {
	if len(b) < eidLen {
		return 0, nil, errShort
	}
	eid = binary.BigEndian.Uint32(b)
	return eid, b[eidLen:], nil
}

// mgmtFrame appends m as a management frame (eid 0, then the message)
// to b[:0] and returns it. With cap(b) >= eidLen + wire.MaxLen it does not
// allocate.
func mgmtFrame(b []byte, m *wire.Msg) []byte {
	return m.Append(append(b[:0], 0, 0, 0, 0))
}
