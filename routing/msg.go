package routing

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// Version is the wire version of routing messages this package speaks.
const Version = 1

// Limits on decoded messages; anything larger is rejected by Decode.
const (
	// MaxMessageSize is the largest encoded message Decode accepts.
	MaxMessageSize = 4 << 20
	// MaxLinks is the largest number of links one LSU may carry.
	MaxLinks = 1 << 16
	// MaxLSUs is the largest number of LSUs one message may carry.
	MaxLSUs = 1 << 18
)

// Errors returned (wrapped) by Decode.
var (
	// ErrUnknownVersion means the message has a version this package
	// does not speak.
	ErrUnknownVersion = errors.New("unknown routing message version")
	// ErrMalformed means the message is not a valid routing message.
	ErrMalformed = errors.New("malformed routing message")
	// ErrTooLarge means the message exceeds MaxMessageSize, MaxLinks or
	// MaxLSUs.
	ErrTooLarge = errors.New("routing message too large")
)

// Kind says what a message carries.
type Kind uint8

// Message kinds.
const (
	// KindUpdate carries LSUs being flooded.
	KindUpdate Kind = 1
	// KindSync carries (part of) a full database, sent to a new neighbour.
	KindSync Kind = 2
)

// String returns the kind's name.
func (k Kind) String() string {
	switch k {
	case KindUpdate:
		return "update"
	case KindSync:
		return "sync"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Link is one adjacency announced in an LSU.
type Link struct {
	// Neighbor is the address of the adjacent member.
	Neighbor uint64
	// Cost is the cost of the direction origin -> Neighbor (never 0 on
	// the wire).
	Cost uint32
}

// LSU is a link-state update: the complete list of an origin's links at
// one sequence number.
type LSU struct {
	// Origin is the address of the member that originated the LSU.
	Origin uint64
	// Seq is the origin's sequence number; higher is newer.
	Seq uint64
	// Age is how long ago the origin issued it (millisecond resolution
	// on the wire); the LSU is dead once Age reaches the layer's MaxAge.
	Age time.Duration
	// Links are the origin's adjacencies, sorted by Neighbor after Decode.
	Links []Link
}

// Message is one routing message: a batch of LSUs.
type Message struct {
	// Kind says whether this is a flood or a database sync.
	Kind Kind
	// LSUs are the updates carried.
	LSUs []LSU
}

// Wire layout (version 1), all msgpack, all integers unsigned:
//
//	message = [version, kind, [lsu, ...]]
//	lsu     = [origin, seq, age_ms, [[neighbor, cost], ...]]

// Encode returns the wire form of m. It fails only if m could not be
// decoded again (bad kind, zero address or cost, too many elements).
func Encode(m Message) ([]byte, error) {
	if err := validate(m); err != nil {
		return nil, fmt.Errorf("routing: encode: %w", err)
	}
	var buf bytes.Buffer
	buf.Grow(8 + len(m.LSUs)*32)
	e := msgpack.NewEncoder(&buf)
	// Writes to a bytes.Buffer cannot fail.
	_ = e.EncodeArrayLen(3)
	_ = e.EncodeUint(Version)
	_ = e.EncodeUint(uint64(m.Kind))
	_ = e.EncodeArrayLen(len(m.LSUs))
	for i := range m.LSUs {
		l := &m.LSUs[i]
		_ = e.EncodeArrayLen(4)
		_ = e.EncodeUint(l.Origin)
		_ = e.EncodeUint(l.Seq)
		_ = e.EncodeUint(uint64(l.Age.Milliseconds()))
		_ = e.EncodeArrayLen(len(l.Links))
		for _, k := range l.Links {
			_ = e.EncodeArrayLen(2)
			_ = e.EncodeUint(k.Neighbor)
			_ = e.EncodeUint(uint64(k.Cost))
		}
	}
	if buf.Len() > MaxMessageSize {
		return nil, fmt.Errorf("routing: encode: %d bytes: %w", buf.Len(), ErrTooLarge)
	}
	return buf.Bytes(), nil
}

func validate(m Message) error {
	if m.Kind != KindUpdate && m.Kind != KindSync {
		return fmt.Errorf("%w: kind %d", ErrMalformed, m.Kind)
	}
	if len(m.LSUs) > MaxLSUs {
		return fmt.Errorf("%w: %d LSUs", ErrTooLarge, len(m.LSUs))
	}
	for i := range m.LSUs {
		l := &m.LSUs[i]
		if l.Origin == 0 {
			return fmt.Errorf("%w: LSU %d: zero origin", ErrMalformed, i)
		}
		if l.Age < 0 {
			return fmt.Errorf("%w: LSU %d: negative age", ErrMalformed, i)
		}
		if len(l.Links) > MaxLinks {
			return fmt.Errorf("%w: LSU %d: %d links", ErrTooLarge, i, len(l.Links))
		}
		if err := checkLinks(l.Origin, l.Links); err != nil {
			return fmt.Errorf("LSU %d: %w", i, err)
		}
	}
	return nil
}

// checkLinks rejects zero or self neighbours, zero costs and duplicate
// neighbours (links need not be sorted).
func checkLinks(origin uint64, links []Link) error {
	sorted := true
	for i, k := range links {
		if k.Neighbor == 0 || k.Neighbor == origin {
			return fmt.Errorf("%w: bad neighbour %d", ErrMalformed, k.Neighbor)
		}
		if k.Cost == 0 {
			return fmt.Errorf("%w: zero cost to %d", ErrMalformed, k.Neighbor)
		}
		if i > 0 && links[i-1].Neighbor >= k.Neighbor {
			sorted = false
		}
	}
	if sorted {
		return nil
	}
	c := sortedLinks(links)
	for i := 1; i < len(c); i++ {
		if c[i-1].Neighbor == c[i].Neighbor {
			return fmt.Errorf("%w: duplicate neighbour %d", ErrMalformed, c[i].Neighbor)
		}
	}
	return nil
}
