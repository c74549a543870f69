package frct

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// HeaderLen is the size of the FRCT header in bytes.
const HeaderLen = 16

// Version is the header version this package speaks.
const Version = 1

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
}

// Append appends the encoded header to b.
func (h Header) Append(b []byte) []byte {
	b = append(b, Version, byte(h.Flags))
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
	if b[0] != Version {
		return Header{}, nil, fmt.Errorf("%w: version %d, want %d", ErrMalformed, b[0], Version)
	}
	h := Header{
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
	return h, payload, nil
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
	}
	return nil
}

// Sequence numbers wrap; these compare them in serial-number arithmetic.
func seqDiff(a, b uint32) int32 { return int32(a - b) }
func seqLT(a, b uint32) bool    { return seqDiff(a, b) < 0 }
