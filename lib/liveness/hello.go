package liveness

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// The keepalive hello, after the owner's one-byte frame kind:
//
//	byte 0     HelloVersion
//	byte 1     flags (Poll, Final, Starved; unknown bits are ignored)
//	bytes 2-3  the sender's idle hello interval in milliseconds, big
//	           endian, 1 to 65535
//
// The owner sends it in a frame kind of its own (ipcpd/unicast:
// kindKeepalive), apart from an adjacency's opening hello.

// HelloVersion is the first byte of a keepalive hello.
const HelloVersion = 1

// HelloLen is the length of a keepalive hello (without the frame kind).
const HelloLen = 4

// Hello flags.
const (
	// Poll asks the neighbour to answer at once.
	Poll = 1 << iota
	// Starved says the sender was not running for a while (its own
	// timer came late): a silence of it just now was a stall, not a
	// failure.
	Starved
)

// Hello is a decoded keepalive.
type Hello struct {
	Flags byte
	// Interval is the sender's idle hello interval.
	Interval time.Duration
}

// ErrNotHello is returned by ParseHello for bytes that are not a
// keepalive hello.
var ErrNotHello = errors.New("not a keepalive hello")

// AppendHello appends the encoding of h to b. The interval is rounded
// up to whole milliseconds and kept within 1 ms to 65535 ms.
func AppendHello(b []byte, h Hello) []byte {
	ms := (h.Interval + time.Millisecond - 1) / time.Millisecond
	ms = min(max(ms, 1), 0xffff)
	return binary.BigEndian.AppendUint16(append(b, HelloVersion, h.Flags), uint16(ms))
}

// ParseHello decodes a keepalive hello.
func ParseHello(b []byte) (Hello, error) {
	if len(b) < 1 || b[0] != HelloVersion {
		return Hello{}, ErrNotHello
	}
	if len(b) != HelloLen {
		return Hello{}, fmt.Errorf("%w: %d bytes, want %d", ErrNotHello, len(b), HelloLen)
	}
	ms := binary.BigEndian.Uint16(b[2:])
	if ms == 0 {
		return Hello{}, fmt.Errorf("%w: zero interval", ErrNotHello)
	}
	return Hello{Flags: b[1], Interval: time.Duration(ms) * time.Millisecond}, nil
}
