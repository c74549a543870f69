package dt

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Default field sizes of the PCI, in bytes.
const (
	DefaultAddrSize = 4
	DefaultEIDSize  = 8
	// MaxFieldSize is the largest address or endpoint-id size.
	MaxFieldSize = 8
)

// pciFixed is the number of one-byte fields (QoS, TTL, ECN, path label).
const pciFixed = 4

// MaxLabel is the largest path label. A label is the sender's choice
// among the equal-cost paths of its flow (see FIB.LookupLabel); a
// packet carrying a larger value is malformed ([ErrLabel]).
const MaxLabel = 15

// Errors reported by the codec. Match them with errors.Is.
var (
	// ErrShortPacket: the packet is shorter than the PCI.
	ErrShortPacket = errors.New("dt: packet shorter than PCI")
	// ErrShortBuffer: the buffer given to Encode cannot hold the PCI.
	ErrShortBuffer = errors.New("dt: buffer too small for PCI")
	// ErrRange: a value does not fit in its PCI field.
	ErrRange = errors.New("dt: value does not fit PCI field")
	// ErrLayout: the layout's field sizes are out of range.
	ErrLayout = errors.New("dt: invalid PCI layout")
	// ErrTTLExpired: the TTL reached zero; the packet must be dropped.
	ErrTTLExpired = errors.New("dt: TTL expired")
	// ErrLabel: the packet's path label is above MaxLabel; the packet
	// must be dropped.
	ErrLabel = errors.New("dt: path label out of range")
)

// Layout gives the sizes, in bytes, of the variable-width PCI fields of
// a layer. Both must be in 1..MaxFieldSize.
type Layout struct {
	AddrSize int // destination address size
	EIDSize  int // endpoint id size
}

// DefaultLayout returns the layout with the default field sizes.
func DefaultLayout() Layout {
	return Layout{AddrSize: DefaultAddrSize, EIDSize: DefaultEIDSize}
}

// PCI is a decoded data-packet header.
type PCI struct {
	Dst uint64 // destination address
	QoS uint8  // QoS cube
	TTL uint8  // remaining hops
	ECN uint8  // congestion level
	// Label is the path label (0..MaxLabel): hashed with the flow key
	// so that a sender can move its flow to another equal-cost path.
	Label uint8
	EID   uint64 // endpoint id at the destination
}

// Validate reports whether both field sizes are in 1..MaxFieldSize.
func (l Layout) Validate() error {
	if !l.valid() {
		return fmt.Errorf("%w: address size %d, endpoint id size %d (each must be 1..%d)",
			ErrLayout, l.AddrSize, l.EIDSize, MaxFieldSize)
	}
	return nil
}

func (l Layout) valid() bool {
	return l.AddrSize >= 1 && l.AddrSize <= MaxFieldSize &&
		l.EIDSize >= 1 && l.EIDSize <= MaxFieldSize
}

// Len returns the PCI length in bytes. It is meaningful only for a
// valid layout.
func (l Layout) Len() int { return l.AddrSize + pciFixed + l.EIDSize }

// MaxAddr returns the largest destination address the layout can carry.
func (l Layout) MaxAddr() uint64 { return maxValue(l.AddrSize) }

// MaxEID returns the largest endpoint id the layout can carry.
func (l Layout) MaxEID() uint64 { return maxValue(l.EIDSize) }

// Encode writes the header p at the start of b and returns the number
// of bytes written (l.Len()). It does not allocate on success.
func (l Layout) Encode(b []byte, p *PCI) (int, error) {
	if !l.valid() {
		return 0, fmt.Errorf("dt: encode PCI: %w", l.Validate())
	}
	n := l.Len()
	if len(b) < n {
		return 0, fmt.Errorf("dt: encode PCI: %w: have %d bytes, need %d", ErrShortBuffer, len(b), n)
	}
	if !fits(p.Dst, l.AddrSize) {
		return 0, fmt.Errorf("dt: encode PCI: %w: destination %#x in %d bytes", ErrRange, p.Dst, l.AddrSize)
	}
	if !fits(p.EID, l.EIDSize) {
		return 0, fmt.Errorf("dt: encode PCI: %w: endpoint id %#x in %d bytes", ErrRange, p.EID, l.EIDSize)
	}
	if p.Label > MaxLabel {
		return 0, fmt.Errorf("dt: encode PCI: %w: path label %d (max %d)", ErrRange, p.Label, MaxLabel)
	}
	a := l.AddrSize
	putUint(b[:a], p.Dst)
	b[a] = p.QoS
	b[a+1] = p.TTL
	b[a+2] = p.ECN
	b[a+3] = p.Label
	putUint(b[a+pciFixed:n], p.EID)
	return n, nil
}

// Decode parses the header at the start of b and returns it with the
// payload that follows (a subslice of b). A packet shorter than the
// header yields ErrShortPacket. The path label is returned as it is on
// the wire: [Layout.Label] checks its range. It never allocates.
func (l Layout) Decode(b []byte) (PCI, []byte, error) {
	if !l.valid() {
		return PCI{}, nil, fmt.Errorf("dt: decode PCI: %w", l.Validate())
	}
	n := l.Len()
	if len(b) < n {
		return PCI{}, nil, ErrShortPacket
	}
	a := l.AddrSize
	dst, eid := getUint(b[:a]), getUint(b[a+pciFixed:n])
	f := b[a : a+pciFixed : a+pciFixed]
	// Return a composite literal of plain scalars so that the result
	// travels in registers rather than through a partially written
	// stack temporary (a store-forwarding stall that tripled the cost).
	return PCI{Dst: dst, QoS: f[0], TTL: f[1], ECN: f[2], Label: f[3], EID: eid}, b[n:], nil
}

// fits reports whether v can be written in size bytes.
func fits(v uint64, size int) bool {
	return size >= 8 || v>>(8*uint(size)) == 0
}

// maxValue returns the largest value that fits in size bytes (1..8).
func maxValue(size int) uint64 {
	if size >= 8 {
		return ^uint64(0)
	}
	if size <= 0 {
		return 0
	}
	return 1<<(8*uint(size)) - 1
}

// putUint writes v big-endian into all of b (len 1..8).
func putUint(b []byte, v uint64) {
	switch len(b) {
	case 8:
		binary.BigEndian.PutUint64(b, v)
	case 4:
		binary.BigEndian.PutUint32(b, uint32(v))
	default:
		for i := len(b) - 1; i >= 0; i-- {
			b[i] = byte(v)
			v >>= 8
		}
	}
}

// getUint reads all of b (len 1..8) as a big-endian integer.
func getUint(b []byte) uint64 {
	switch len(b) {
	case 8:
		return binary.BigEndian.Uint64(b)
	case 4:
		return uint64(binary.BigEndian.Uint32(b))
	}
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}
