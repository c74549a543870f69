// Package ctrl is the control protocol shared by the IRMd, the IPCPs,
// the irm CLI and the flow library: msgpack messages with an explicit
// version, carried one per record over SOCK_SEQPACKET UNIX sockets,
// with file descriptors passed alongside by SCM_RIGHTS.
//
// A Conn moves single messages; a Peer multiplexes requests and replies
// in both directions over one Conn, so either end can call the other.
// The body types of every operation live in ops.go; api.go is the table
// that gives each operation its request and response types and its
// access class (Invoke calls one typed).
package ctrl

import (
	"errors"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// Version is the control protocol version this build speaks.
const Version = 1

// MaxMsgSize bounds an encoded message; larger ones are rejected.
const MaxMsgSize = 64 << 10

// MaxBody bounds the body of one message: MaxMsgSize less room for the
// envelope (version, kind, id, op and error fields).
const MaxBody = MaxMsgSize - 1024

// MaxFiles bounds the descriptors passed with one message.
const MaxFiles = 4

// Kind tells requests from replies.
type Kind uint8

// Message kinds.
const (
	KindRequest Kind = 1
	KindReply   Kind = 2
)

// Msg is the envelope of every control message.
type Msg struct {
	V    uint8              `msgpack:"v"`
	Kind Kind               `msgpack:"k"`
	ID   uint64             `msgpack:"id"`
	Op   string             `msgpack:"op,omitempty"`
	Err  string             `msgpack:"err,omitempty"`
	Body msgpack.RawMessage `msgpack:"body,omitempty"`
	// Part carries a piece of a reply body too big for one record;
	// More says further pieces follow. The receiver joins the pieces
	// into Body.
	Part []byte `msgpack:"part,omitempty"`
	More bool   `msgpack:"more,omitempty"`
}

// Errors returned by Decode; a receiver answers them and keeps serving.
var (
	ErrMalformed = errors.New("malformed control message")
	ErrTooBig    = errors.New("oversized control message")
	ErrVersion   = errors.New("unsupported control protocol version")
)

// Encode serialises m, refusing anything over MaxMsgSize.
func Encode(m *Msg) ([]byte, error) {
	b, err := msgpack.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", m.Op, err)
	}
	if len(b) > MaxMsgSize {
		return nil, fmt.Errorf("encode %s: %d bytes: %w", m.Op, len(b), ErrTooBig)
	}
	return b, nil
}

// Decode parses one message. It never panics on hostile input.
func Decode(b []byte) (*Msg, error) {
	if len(b) > MaxMsgSize {
		return nil, fmt.Errorf("%d bytes: %w", len(b), ErrTooBig)
	}
	if err := checkLengths(b); err != nil {
		return nil, err
	}
	var m Msg
	if err := msgpack.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if m.V != Version {
		return &m, fmt.Errorf("%w: got %d, want %d", ErrVersion, m.V, Version)
	}
	if m.Kind != KindRequest && m.Kind != KindReply {
		return &m, fmt.Errorf("%w: kind %d", ErrMalformed, m.Kind)
	}
	if m.Kind == KindRequest && m.Op == "" {
		return &m, fmt.Errorf("%w: request without op", ErrMalformed)
	}
	return &m, nil
}

// Marshal encodes a body value.
func Marshal(v any) (msgpack.RawMessage, error) {
	if v == nil {
		return nil, nil
	}
	return msgpack.Marshal(v)
}

// Unmarshal decodes a body into v; an empty body leaves v untouched.
// A panic of the decoder (msgpack v5.4.1 panics on a nil where a
// time.Time is due) is returned as ErrMalformed.
func Unmarshal(b msgpack.RawMessage, v any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: body: %v", ErrMalformed, r)
		}
	}()
	if len(b) == 0 || v == nil {
		return nil
	}
	if err := checkLengths(b); err != nil {
		return fmt.Errorf("body: %w", err)
	}
	if err := msgpack.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: body: %v", ErrMalformed, err)
	}
	return nil
}

// checkLengths walks the msgpack value at the start of b and refuses it
// unless every length it declares (string, binary and extension bytes,
// array elements, map pairs) fits in the bytes that remain. The decoder
// sizes its allocations by those declared lengths: without this walk, a
// 13-byte record declaring a map of 2^31 pairs cost 84 MB.
func checkLengths(b []byte) error {
	bad := func(what string) error { return fmt.Errorf("%w: %s", ErrMalformed, what) }
	pending := 1 // values still to read
	i := 0
	need := func(n int) bool { return n >= 0 && n <= len(b)-i }
	be := func(n int) (int, bool) { // a big-endian length of n bytes at i
		if !need(n) {
			return 0, false
		}
		v := 0
		for _, c := range b[i : i+n] {
			v = v<<8 | int(c)
		}
		i += n
		return v, true
	}
	for pending > 0 {
		if i >= len(b) {
			return bad("truncated")
		}
		c := b[i]
		i++
		pending--
		skip, items := 0, 0
		switch {
		case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
		case c&0xf0 == 0x80:
			items = 2 * int(c&0x0f)
		case c&0xf0 == 0x90:
			items = int(c & 0x0f)
		case c&0xe0 == 0xa0:
			skip = int(c & 0x1f)
		default:
			var n int
			var ok bool
			switch c {
			case 0xc4, 0xd9: // bin8, str8
				n, ok = be(1)
				skip = n
			case 0xc5, 0xda: // bin16, str16
				n, ok = be(2)
				skip = n
			case 0xc6, 0xdb: // bin32, str32
				n, ok = be(4)
				skip = n
			case 0xc7: // ext8
				n, ok = be(1)
				skip = n + 1
			case 0xc8: // ext16
				n, ok = be(2)
				skip = n + 1
			case 0xc9: // ext32
				n, ok = be(4)
				skip = n + 1
			case 0xcc, 0xd0:
				skip, ok = 1, true
			case 0xcd, 0xd1:
				skip, ok = 2, true
			case 0xca, 0xce, 0xd2:
				skip, ok = 4, true
			case 0xcb, 0xcf, 0xd3:
				skip, ok = 8, true
			case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1, 2, 4, 8, 16
				skip, ok = 1+(1<<(c-0xd4)), true
			case 0xdc: // array16
				n, ok = be(2)
				items = n
			case 0xdd: // array32
				n, ok = be(4)
				items = n
			case 0xde: // map16
				n, ok = be(2)
				items = 2 * n
			case 0xdf: // map32
				n, ok = be(4)
				items = 2 * n
			default: // 0xc1 is never used
				return bad(fmt.Sprintf("byte 0x%02x at %d", c, i-1))
			}
			if !ok {
				return bad("truncated length")
			}
		}
		if !need(skip) {
			return bad(fmt.Sprintf("declared length %d exceeds the %d bytes left", skip, len(b)-i))
		}
		i += skip
		// Every element takes at least one byte.
		if items < 0 || pending+items > len(b)-i {
			return bad(fmt.Sprintf("declared %d elements with %d bytes left", items, len(b)-i))
		}
		pending += items
	}
	return nil
}
