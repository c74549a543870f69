package dt

import "fmt"

// The helpers below work on a raw packet in place, for the forwarding
// path: they read or patch single fields without decoding the whole
// header. Each checks the layout and the packet length, returns
// ErrShortPacket on a short packet and never allocates on valid input.

// check returns an error unless b holds a whole PCI of layout l.
func (l Layout) check(b []byte, op string) error {
	if !l.valid() {
		return fmt.Errorf("dt: %s: %w", op, l.Validate())
	}
	if len(b) < l.Len() {
		return ErrShortPacket
	}
	return nil
}

// Dst returns the destination address of the raw packet b.
func (l Layout) Dst(b []byte) (uint64, error) {
	if err := l.check(b, "read destination"); err != nil {
		return 0, err
	}
	return getUint(b[:l.AddrSize]), nil
}

// EID returns the endpoint id of the raw packet b.
func (l Layout) EID(b []byte) (uint64, error) {
	if err := l.check(b, "read endpoint id"); err != nil {
		return 0, err
	}
	return getUint(b[l.AddrSize+pciFixed : l.Len()]), nil
}

// FlowKey returns the fields a forwarding decision hashes: destination,
// endpoint id and QoS cube of the raw packet b.
func (l Layout) FlowKey(b []byte) (dst, eid uint64, qos uint8, err error) {
	if err := l.check(b, "read flow key"); err != nil {
		return 0, 0, 0, err
	}
	a := l.AddrSize
	return getUint(b[:a]), getUint(b[a+pciFixed : l.Len()]), b[a], nil
}

// DecTTL decrements the TTL of the raw packet b in place and returns
// the TTL left. When no hop is left (the TTL was 0 or 1 on arrival) it
// returns ErrTTLExpired and the packet must be dropped; a zero TTL is
// left at zero, never wrapped.
func (l Layout) DecTTL(b []byte) (uint8, error) {
	if err := l.check(b, "decrement TTL"); err != nil {
		return 0, err
	}
	i := l.AddrSize + 1
	if b[i] <= 1 {
		b[i] = 0
		return 0, ErrTTLExpired
	}
	b[i]--
	return b[i], nil
}

// ECN returns the ECN field (the congestion level the path raised) of
// the raw packet b; non-zero means congestion experienced.
func (l Layout) ECN(b []byte) (uint8, error) {
	if err := l.check(b, "read ECN"); err != nil {
		return 0, err
	}
	return b[l.AddrSize+2], nil
}

// SetECN overwrites the ECN field of the raw packet b.
func (l Layout) SetECN(b []byte, ecn uint8) error {
	if err := l.check(b, "set ECN"); err != nil {
		return err
	}
	b[l.AddrSize+2] = ecn
	return nil
}

// RaiseECN sets the ECN field of the raw packet b to ecn if that is
// higher than the value it carries, so that the most congested hop on
// the path wins, and returns the resulting value.
func (l Layout) RaiseECN(b []byte, ecn uint8) (uint8, error) {
	if err := l.check(b, "raise ECN"); err != nil {
		return 0, err
	}
	i := l.AddrSize + 2
	if ecn > b[i] {
		b[i] = ecn
	}
	return b[i], nil
}

// Label returns the path label of the raw packet b. A label above
// MaxLabel yields ErrLabel (the packet must be dropped).
func (l Layout) Label(b []byte) (uint8, error) {
	if err := l.check(b, "read path label"); err != nil {
		return 0, err
	}
	v := b[l.AddrSize+3]
	if v > MaxLabel {
		return v, ErrLabel
	}
	return v, nil
}

// SetLabel overwrites the path label of the raw packet b. A label above
// MaxLabel is refused with ErrRange.
func (l Layout) SetLabel(b []byte, label uint8) error {
	if err := l.check(b, "set path label"); err != nil {
		return err
	}
	if label > MaxLabel {
		return fmt.Errorf("dt: set path label: %w: %d (max %d)", ErrRange, label, MaxLabel)
	}
	b[l.AddrSize+3] = label
	return nil
}
