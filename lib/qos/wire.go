package qos

import (
	"encoding/binary"
	"errors"
	"math"
	"time"
)

// The wire form of a Spec, shared by the shims' allocation requests
// (ipcpd/udp, ipcpd/eth/frame):
//
//	0   cube (1)
//	1   flags (1): bit 0 reliable, bit 1 in order, bit 2 encrypt;
//	    other bits rejected
//	2   reserved (4): sent as zero, ignored (they carried a delay bound
//	    no layer acted on)
//	6   peer timeout in milliseconds (4, big endian, saturating)
//	10  name length (1), at most MaxWireName
//	11  name
//
// Congestion is not carried: the requester's FRCT runs it, and the
// responder learns nothing from it.
const (
	// WireFixedLen is the size of the wire form without the name.
	WireFixedLen = 1 + 1 + 4 + 4 + 1
	// MaxWireName bounds the preset name carried on the wire; a longer
	// one is cut.
	MaxWireName = 32
	// MaxWireLen is the largest wire form.
	MaxWireLen = WireFixedLen + MaxWireName

	flagReliable = 1 << 0
	flagInOrder  = 1 << 1
	flagEncrypt  = 1 << 2
	flagsKnown   = flagReliable | flagInOrder | flagEncrypt
)

// ErrWire means bytes are not the wire form of a Spec: too short, a
// name longer than MaxWireName or than the bytes, or unknown flags.
var ErrWire = errors.New("malformed QoS spec")

// WireLen is the size of s's wire form.
func WireLen(s Spec) int { return WireFixedLen + min(len(s.Name), MaxWireName) }

// AppendWire appends the wire form of s to b. A name longer than
// MaxWireName is cut. It does not allocate when b has room.
func AppendWire(b []byte, s Spec) []byte {
	var flags byte
	if s.Reliable {
		flags |= flagReliable
	}
	if s.InOrder {
		flags |= flagInOrder
	}
	if s.Encrypt {
		flags |= flagEncrypt
	}
	b = append(b, byte(s.Cube), flags, 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint32(b, saturateMs(s.PeerTimeout))
	name := s.Name
	if len(name) > MaxWireName {
		name = name[:MaxWireName]
	}
	b = append(b, byte(len(name)))
	return append(b, name...)
}

// saturateMs expresses d in milliseconds within the uint32 range.
func saturateMs(d time.Duration) uint32 {
	ms := d / time.Millisecond
	switch {
	case ms < 0:
		return 0
	case ms > math.MaxUint32:
		return math.MaxUint32
	}
	return uint32(ms)
}

// DecodeWire parses the wire form at the start of b and returns the
// Spec and how many bytes it took; what follows is the caller's. It
// fails with ErrWire, never panics, and does not allocate for the
// preset names.
func DecodeWire(b []byte) (Spec, int, error) {
	var s Spec
	if len(b) < WireFixedLen {
		return s, 0, ErrWire
	}
	flags := b[1]
	n := int(b[10])
	if flags&^flagsKnown != 0 || n > MaxWireName || len(b) < WireFixedLen+n {
		return s, 0, ErrWire
	}
	s.Cube = Cube(b[0])
	s.Reliable = flags&flagReliable != 0
	s.InOrder = flags&flagInOrder != 0
	s.Encrypt = flags&flagEncrypt != 0
	s.PeerTimeout = time.Duration(binary.BigEndian.Uint32(b[6:])) * time.Millisecond
	s.Name = internName(b[WireFixedLen : WireFixedLen+n])
	return s, WireFixedLen + n, nil
}

// internName returns the name in b, without allocating for the presets.
func internName(b []byte) string {
	for _, s := range [...]string{"raw", "best-effort", "low-latency", "reliable", "bulk", "custom", ""} {
		if string(b) == s {
			return s
		}
	}
	return string(b)
}
