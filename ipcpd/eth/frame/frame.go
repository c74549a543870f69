// Package frame is the Ethernet framing shared by the eth-dix and tap
// shim IPCPs: the DIX frame they exchange. Its payload is an
// application packet or, in frames to MgmtEID, a management message of
// package ipcpd/shim/wire (the codec of every shim kind). It is pure code (no
// I/O), never panics on short or hostile input, and its data-path
// functions do not allocate.
//
// # Frame
//
// Every frame is an Ethernet II (DIX) frame followed by a four-byte
// shim header, all in network byte order:
//
//	offset  size  field
//	     0     6  destination MAC
//	     6     6  source MAC
//	    12     2  EtherType (0xA000 unless configured otherwise)
//	    14     2  endpoint id (eid) of the receiving end; 0 = management
//	    16     2  length of the payload that follows
//	    18   len  payload (an application packet, or a management message)
//	18+len     *  padding, ignored
//
// That is as tight as the medium allows: the Ethernet header is fixed,
// the eid demultiplexes flows between two stations, and the length is
// there because Ethernet pads frames shorter than 60 bytes, so the frame
// size alone does not tell where a small payload ends. A frame whose
// length field claims more bytes than it carries is truncated and
// rejected. Anything after the payload (padding, or an FCS a NIC left on)
// is ignored.
//
// The eid is chosen by the receiver during allocation, so a data frame
// needs only the destination eid; the receiver also checks that the
// source MAC is the flow's peer. Sixteen bits allow 65535 flows per
// station, far more than one Ethernet segment sees.
//
// The shim header takes 4 bytes out of the device MTU: a 1500-byte
// Ethernet link gives flows an MTU of 1496 (see Overhead).
package frame

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Sizes of the frame parts.
const (
	// EtherLen is the Ethernet II header: two MACs and the EtherType.
	EtherLen = 14
	// ShimLen is the shim header: eid and length.
	ShimLen = 4
	// HeaderLen is everything before the payload.
	HeaderLen = EtherLen + ShimLen
	// Overhead is what the shim takes from the device MTU (the device
	// MTU excludes the Ethernet header).
	Overhead = ShimLen
	// MinFrame is the smallest Ethernet frame (without FCS); shorter
	// frames are padded by the sender's hardware.
	MinFrame = 60
	// MaxPayload is the largest payload the length field can describe.
	MaxPayload = 0xFFFF
)

// DefaultEtherType is the EtherType used unless the bootstrap names
// another (0xA000, as in Ouroboros).
const DefaultEtherType = 0xA000

// MinEtherType is the smallest value that is an EtherType rather than
// an IEEE 802.3 length.
const MinEtherType = 0x0600

// MgmtEID is the endpoint id of management frames.
const MgmtEID = 0

// Decoding errors. Decoders return these sentinels unwrapped, so that a
// flood of garbage costs no allocation; callers count them by identity.
var (
	// ErrShort means the frame is shorter than the headers.
	ErrShort = errors.New("frame shorter than its header")
	// ErrLength means the length field exceeds the bytes present.
	ErrLength = errors.New("frame length field exceeds the frame")
)

// MAC is a 48-bit Ethernet address.
type MAC [6]byte

// Broadcast returns the all-ones broadcast address.
func Broadcast() MAC { return MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff} }

// IsBroadcast reports whether m is the broadcast address.
func (m MAC) IsBroadcast() bool { return m == Broadcast() }

// IsMulticast reports whether m is a group address (broadcast included).
func (m MAC) IsMulticast() bool { return m[0]&1 != 0 }

// String formats m as aa:bb:cc:dd:ee:ff.
func (m MAC) String() string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// MACFrom copies a 6-byte hardware address; it fails on other sizes.
func MACFrom(b []byte) (MAC, error) {
	var m MAC
	if len(b) != len(m) {
		return m, fmt.Errorf("hardware address of %d bytes, not a 6-byte Ethernet MAC", len(b))
	}
	copy(m[:], b)
	return m, nil
}

// Header is the decoded header of one frame.
type Header struct {
	Dst, Src  MAC
	EtherType uint16
	EID       uint16
}

// PutHeader writes h and the payload length n into b[:HeaderLen]. b must
// hold HeaderLen bytes and n must fit the length field; callers size
// their buffers from the MTU, so a violation is a programming error and
// panics like an out-of-range slice would.
func PutHeader(b []byte, h Header, n int) {
	_ = b[HeaderLen-1]
	if n < 0 || n > MaxPayload {
		panic(fmt.Sprintf("frame: payload length %d out of range", n))
	}
	copy(b[0:6], h.Dst[:])
	copy(b[6:12], h.Src[:])
	binary.BigEndian.PutUint16(b[12:14], h.EtherType)
	binary.BigEndian.PutUint16(b[14:16], h.EID)
	binary.BigEndian.PutUint16(b[16:18], uint16(n))
}

// Append appends a whole frame (header and payload) to dst.
func Append(dst []byte, h Header, payload []byte) []byte {
	off := len(dst)
	dst = append(dst, make([]byte, HeaderLen)...)
	PutHeader(dst[off:], h, len(payload))
	return append(dst, payload...)
}

// EtherType returns the EtherType of b, or false if b is shorter than an
// Ethernet header. It lets a reader drop foreign frames cheaply.
func EtherType(b []byte) (uint16, bool) {
	if len(b) < EtherLen {
		return 0, false
	}
	return binary.BigEndian.Uint16(b[12:14]), true
}

// Decode parses a frame. The payload aliases b; padding after it is
// dropped. It never allocates, and fails with ErrShort or ErrLength.
func Decode(b []byte) (Header, []byte, error) {
	var h Header
	if len(b) < HeaderLen {
		return h, nil, ErrShort
	}
	copy(h.Dst[:], b[0:6])
	copy(h.Src[:], b[6:12])
	h.EtherType = binary.BigEndian.Uint16(b[12:14])
	h.EID = binary.BigEndian.Uint16(b[14:16])
	n := int(binary.BigEndian.Uint16(b[16:18]))
	if HeaderLen+n > len(b) {
		return h, nil, ErrLength
	}
	return h, b[HeaderLen : HeaderLen+n], nil
}
