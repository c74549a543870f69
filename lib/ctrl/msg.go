// Package ctrl is the control protocol shared by the IRMd, the IPCPs,
// the irm CLI and the flow library: msgpack messages with an explicit
// version, carried one per record over SOCK_SEQPACKET UNIX sockets,
// with file descriptors passed alongside by SCM_RIGHTS.
//
// A Conn moves single messages; a Peer multiplexes requests and replies
// in both directions over one Conn, so either end can call the other.
// The body types of every operation live in ops.go.
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
func Unmarshal(b msgpack.RawMessage, v any) error {
	if len(b) == 0 || v == nil {
		return nil
	}
	if err := msgpack.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: body: %v", ErrMalformed, err)
	}
	return nil
}
