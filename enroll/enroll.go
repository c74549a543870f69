// Package enroll is how an IPCP joins a unicast layer and how two
// members open an adjacency.
//
// Enrollment runs over a fresh lower flow to the layer's name (or to a
// named member): the joiner sends a Request, the member answers with
// the layer's configuration, the addresses in use and a snapshot of the
// directory; the joiner derives its address (re-salting on collision)
// and closes the flow. Adjacencies are built separately (connect), each
// lower flow opened by a Hello carrying the component, the protocol
// version and the sender's address, answered by the peer's Hello.
//
// Every message is msgpack with an explicit version; an unknown version
// is refused with a clear error. The enrollment response is sent in
// parts that each fit the lower flow's MTU (Frames; Split and the
// bounded Reassembler in parts.go, which the unicast IPCP also uses for
// single management records larger than a frame), and Exchange
// reassembles them; a refusal goes as one whole frame, so that a
// member of any version can read it.
package enroll

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/ouro-net/ouro/layer"
)

// Version is the enrollment and hello protocol version, and with it the
// version of the layer's data header (package dt): members of one
// layer must agree on both. Version 2 added the path label to the data
// header (path bending); version 3 the demand-mode keepalive
// (lib/liveness: hellos carry the sender's interval, idle adjacencies
// hello every 250 ms, which a version-2 member would take for a dead
// peer); version 4 the enrollment response in parts (see Split: the
// response of a large layer does not fit one frame of a lower flow,
// which a version-3 member cannot reassemble). An older member is
// refused at enrollment and at the adjacency hello.
const Version = 4

// MaxMessage bounds a decoded message.
const MaxMessage = 1 << 20

// ErrVersion is returned for a message of another protocol version.
var ErrVersion = errors.New("unsupported enrollment protocol version")

// Request asks a member to enroll the sender.
type Request struct {
	V     uint8  `msgpack:"v"`
	IPCP  string `msgpack:"ipcp"`
	Layer string `msgpack:"layer"`
}

// Response answers a Request.
type Response struct {
	V      uint8            `msgpack:"v"`
	Err    string           `msgpack:"err,omitempty"`
	Config layer.Config     `msgpack:"config"`
	InUse  []uint64         `msgpack:"inuse"`
	Dir    []layer.DirEntry `msgpack:"dir"`
	// Addr is the address the enroller holds for the joiner if the
	// joiner's name is already a member (a restart keeps its address).
	Addr uint64 `msgpack:"addr"`
}

// Hello opens an adjacency on one lower flow. The keepalives that
// follow are not Hellos: the unicast layer sends one-byte frames.
type Hello struct {
	V         uint8  `msgpack:"v"`
	Component string `msgpack:"comp"`
	Addr      uint64 `msgpack:"addr"`
	IPCP      string `msgpack:"ipcp"`
	Layer     string `msgpack:"layer"`
	Cost      uint32 `msgpack:"cost"`
	Reply     bool   `msgpack:"reply"`
	Err       string `msgpack:"err,omitempty"`
}

// Encode serialises a message.
func Encode(v any) ([]byte, error) { return msgpack.Marshal(v) }

// Decode parses a message into v, checking its version. It never
// panics on hostile input.
func Decode(b []byte, v any) error {
	if len(b) > MaxMessage {
		return fmt.Errorf("enrollment message of %d bytes is too large", len(b))
	}
	if err := msgpack.Unmarshal(b, v); err != nil {
		return fmt.Errorf("malformed enrollment message: %w", err)
	}
	var ver uint8
	switch m := v.(type) {
	case *Request:
		ver = m.V
	case *Response:
		ver = m.V
	case *Hello:
		ver = m.V
	default:
		return fmt.Errorf("enroll: cannot decode %T", v)
	}
	if ver != Version {
		return fmt.Errorf("%w: got %d, want %d (%s)", ErrVersion, ver, Version, versionNote(ver))
	}
	return nil
}

// versionNote says what separates version v from this one.
func versionNote(v uint8) string {
	switch {
	case v == 1:
		return "version 1 has no path label in the data header; upgrade that member"
	case v == 2:
		return "version 2 expects a keepalive every hello interval, not the demand-mode keepalive; upgrade that member"
	case v == 3:
		return "version 3 sends the enrollment response in one frame, which a layer larger than one frame of the lower flow cannot carry; upgrade that member"
	case v > Version:
		return "the peer runs a newer ouro; upgrade this member"
	}
	return "unknown version"
}

// PacketConn is the lower flow enrollment runs over.
type PacketConn interface {
	io.ReadWriter
	SetReadDeadline(time.Time) error
}

// Repetition of an unanswered message: the first copy is repeated
// after RetryFirst, each later one after twice the previous wait, up to
// RetryMax. Lower flows are raw, so a message may be lost like any
// packet; the answering side treats a repeated message as a request
// for its answer again.
const (
	RetryFirst = 200 * time.Millisecond
	RetryMax   = time.Second
)

// Exchange writes msg prefixed with kind, then reads one reply of the
// same kind into reply, bounded by ctx (default 10 s). It repeats msg
// while no reply has come (see RetryFirst). The reply may come whole or
// in parts (Frames); parts are reassembled within MaxMessage bytes,
// and while parts keep coming msg is not repeated. A reply in parts
// that stays incomplete until the deadline is an error saying how much
// of it came.
func Exchange(ctx context.Context, c PacketConn, kind byte, msg, reply any) error {
	b, err := Encode(msg)
	if err != nil {
		return err
	}
	frame := append([]byte{kind}, b...)
	if _, err := c.Write(frame); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(10 * time.Second)
	}
	defer c.SetReadDeadline(time.Time{})
	// One reply at a time: a part of another reply (another id)
	// replaces the one in progress.
	parts := NewReassembler(ReassemblyLimits{MaxBytes: MaxMessage, MaxPending: 1, MaxTotal: MaxMessage, Timeout: time.Until(deadline)})
	buf := make([]byte, MaxMessage)
	wait := RetryFirst
	next := time.Now().Add(wait)
	for {
		c.SetReadDeadline(earliest(next, deadline))
		n, err := c.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && time.Now().Before(deadline) {
				if _, err := c.Write(frame); err != nil {
					return fmt.Errorf("send again: %w", err)
				}
				wait = min(2*wait, RetryMax)
				next = time.Now().Add(wait)
				continue
			}
			if m, held := parts.Pending(); m > 0 {
				return fmt.Errorf("no answer: %w (a reply in parts stayed incomplete: %d bytes of it came)", err, held)
			}
			return fmt.Errorf("no answer: %w", err)
		}
		if n < 2 || buf[0] != kind {
			continue
		}
		if !IsPart(buf[1:n]) {
			return Decode(buf[1:n], reply)
		}
		whole, err := parts.Add(0, buf[1:n], time.Now())
		if err != nil {
			return fmt.Errorf("reply in parts: %w", err)
		}
		next = time.Now().Add(wait) // progress: no need to ask again yet
		if whole != nil {
			return Decode(whole, reply)
		}
	}
}

// Frames encodes msg and cuts it into frames led by kind that each fit
// mtu bytes (see Split), all carrying id.
func Frames(kind byte, id uint32, msg any, mtu int) ([][]byte, error) {
	b, err := Encode(msg)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxMessage {
		return nil, fmt.Errorf("enrollment message of %d bytes is too large (at most %d)", len(b), MaxMessage)
	}
	parts, err := Split(id, b, mtu-1)
	if err != nil {
		return nil, err
	}
	for i, p := range parts {
		parts[i] = append([]byte{kind}, p...)
	}
	return parts, nil
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
