package frct

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// HeaderLen is the size of the FRCT header in bytes.
const HeaderLen = 16

// Version is the header version this package speaks: the low four
// bits of the header's first byte.
const Version = 1

// formPacked, in the high four bits of the first byte, marks a packed
// DATA packet: its payload is several whole messages, each a record of
// a 2-byte big-endian length and that many bytes (see Packing in the
// package documentation). Form 0 is a plain packet; any other form is
// malformed.
const formPacked = 1 << 4

// recordHeader is the length prefix of a record in a packed packet.
const recordHeader = 2

// MaxPacked is the most messages one packed packet may carry: it bounds
// the receiver's work and the per-message state one packet can create.
const MaxPacked = 64

// Flags is the flag byte of the header.
type Flags uint8

// Header flags.
const (
	FlagData      Flags = 1 << iota // the packet carries a message fragment and consumes a sequence number
	FlagAck                         // Ack and Window are valid
	FlagFirst                       // first fragment of a message
	FlagLast                        // last fragment of a message
	FlagSACK                        // SACK is valid
	FlagKeepAlive                   // keepalive or window probe: the receiver answers with an ACK at once
	FlagFIN                         // end of the sender's data; consumes a sequence number
	FlagECE                         // ECN echo: the packets this ACK newly acknowledges arrived marked congestion experienced
)

const knownFlags = FlagData | FlagAck | FlagFirst | FlagLast | FlagSACK | FlagKeepAlive | FlagFIN | FlagECE

var flagNames = [...]string{"DATA", "ACK", "FIRST", "LAST", "SACK", "KEEPALIVE", "FIN", "ECE"}

// String lists the set flags, e.g. "DATA|ACK|FIRST".
func (f Flags) String() string {
	var parts []string
	for i, n := range flagNames {
		if f&(1<<i) != 0 {
			parts = append(parts, n)
		}
	}
	if rest := f &^ knownFlags; rest != 0 {
		parts = append(parts, fmt.Sprintf("0x%02x", uint8(rest)))
	}
	if len(parts) == 0 {
		return "0"
	}
	return strings.Join(parts, "|")
}

// ErrMalformed is wrapped by every header decoding error.
var ErrMalformed = errors.New("frct: malformed packet")

// Header is the fixed FRCT header; see the package documentation for
// the wire layout.
type Header struct {
	Flags  Flags
	Window uint16 // packets the sender of this header can still buffer beyond Ack
	Seq    uint32 // sequence number of a DATA or FIN packet
	Ack    uint32 // next sequence number expected (cumulative)
	SACK   uint32 // bit i set: Ack+1+i was received
	// Packed marks a packed DATA packet (FIRST and LAST set): its
	// payload is 1 to MaxPacked records, each a whole message.
	Packed bool
}

// Append appends the encoded header to b.
func (h Header) Append(b []byte) []byte {
	v := byte(Version)
	if h.Packed {
		v |= formPacked
	}
	b = append(b, v, byte(h.Flags))
	b = binary.BigEndian.AppendUint16(b, h.Window)
	b = binary.BigEndian.AppendUint32(b, h.Seq)
	b = binary.BigEndian.AppendUint32(b, h.Ack)
	return binary.BigEndian.AppendUint32(b, h.SACK)
}

// ParseHeader decodes the header at the start of b and returns it with
// the payload that follows. It never panics; every error wraps
// ErrMalformed.
func ParseHeader(b []byte) (Header, []byte, error) {
	if len(b) < HeaderLen {
		return Header{}, nil, fmt.Errorf("%w: %d bytes, header needs %d", ErrMalformed, len(b), HeaderLen)
	}
	if v := b[0] & 0x0f; v != Version {
		return Header{}, nil, fmt.Errorf("%w: version %d, want %d", ErrMalformed, v, Version)
	}
	if form := b[0] &^ 0x0f; form != 0 && form != formPacked {
		return Header{}, nil, fmt.Errorf("%w: unknown form 0x%02x", ErrMalformed, form)
	}
	h := Header{
		Packed: b[0]&formPacked != 0,
		Flags:  Flags(b[1]),
		Window: binary.BigEndian.Uint16(b[2:4]),
		Seq:    binary.BigEndian.Uint32(b[4:8]),
		Ack:    binary.BigEndian.Uint32(b[8:12]),
		SACK:   binary.BigEndian.Uint32(b[12:16]),
	}
	payload := b[HeaderLen:]
	if err := h.check(len(payload)); err != nil {
		return Header{}, nil, err
	}
	if h.Packed {
		if _, err := checkPacked(payload); err != nil {
			return Header{}, nil, err
		}
	}
	return h, payload, nil
}

// checkPacked validates the records of a packed payload in one pass and
// returns how many there are: 1 to MaxPacked records, none empty, the
// last ending exactly at the end of the payload.
func checkPacked(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		if n == MaxPacked {
			return 0, fmt.Errorf("%w: packed packet with more than %d records", ErrMalformed, MaxPacked)
		}
		if len(p) < recordHeader {
			return 0, fmt.Errorf("%w: packed record %d: %d bytes left, length needs %d", ErrMalformed, n, len(p), recordHeader)
		}
		l := int(binary.BigEndian.Uint16(p))
		switch {
		case l == 0:
			return 0, fmt.Errorf("%w: packed record %d is empty", ErrMalformed, n)
		case l > len(p)-recordHeader:
			return 0, fmt.Errorf("%w: packed record %d claims %d bytes, %d left", ErrMalformed, n, l, len(p)-recordHeader)
		}
		p = p[recordHeader+l:]
		n++
	}
	if n == 0 {
		return 0, fmt.Errorf("%w: packed packet without records", ErrMalformed)
	}
	return n, nil
}

// nextRecord splits the first record off a packed payload that
// checkPacked accepted.
func nextRecord(p []byte) (rec, rest []byte) {
	l := int(binary.BigEndian.Uint16(p))
	return p[recordHeader : recordHeader+l], p[recordHeader+l:]
}

// appendRecord appends m as a record of a packed payload (len(m) must
// be 1 to 65535).
func appendRecord(b, m []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(m)))
	return append(b, m...)
}

// check rejects flag combinations no correct sender produces.
func (h Header) check(payloadLen int) error {
	f := h.Flags
	switch {
	case f&^knownFlags != 0:
		return fmt.Errorf("%w: unknown flags %v", ErrMalformed, f)
	case f&(FlagFirst|FlagLast) != 0 && f&FlagData == 0:
		return fmt.Errorf("%w: fragment flags without DATA (%v)", ErrMalformed, f)
	case f&FlagSACK != 0 && f&FlagAck == 0:
		return fmt.Errorf("%w: SACK without ACK (%v)", ErrMalformed, f)
	case f&FlagECE != 0 && f&FlagAck == 0:
		return fmt.Errorf("%w: ECE without ACK (%v)", ErrMalformed, f)
	case f&FlagData != 0 && f&(FlagFIN|FlagKeepAlive) != 0:
		return fmt.Errorf("%w: DATA combined with control flags (%v)", ErrMalformed, f)
	case f&FlagFIN != 0 && f&FlagKeepAlive != 0:
		return fmt.Errorf("%w: FIN with KEEPALIVE (%v)", ErrMalformed, f)
	case payloadLen > 0 && f&FlagData == 0:
		return fmt.Errorf("%w: %d payload bytes without DATA (%v)", ErrMalformed, payloadLen, f)
	case h.Packed && f&(FlagData|FlagFirst|FlagLast) != FlagData|FlagFirst|FlagLast:
		return fmt.Errorf("%w: packed packet not a whole DATA message (%v)", ErrMalformed, f)
	}
	return nil
}

// Sequence numbers wrap; these compare them in serial-number arithmetic.
func seqDiff(a, b uint32) int32 { return int32(a - b) }
func seqLT(a, b uint32) bool    { return seqDiff(a, b) < 0 }
