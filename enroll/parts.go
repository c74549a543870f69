package enroll

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Messages larger than a lower flow's MTU.
//
// A lower flow refuses a frame above its MTU, so a message that can grow
// with the layer (the enrollment response, a directory entry with many
// names, an LSU with many links) is cut into parts that each fit one
// frame. Where the message is a list of independent records (directory
// entries, LSUs) the sender packs whole records into frames instead,
// and only a single record too large for one frame, or a message that
// is one logical reply (the enrollment response), travels in parts.
//
// A part is PartMarker, the message id (4 bytes), the part's index and
// the number of parts (2 bytes each, big endian), then the part's
// bytes. PartMarker is 0xc1, the one byte msgpack never uses, so a part
// is told from a whole message (every message here is msgpack) by its
// first byte.
//
// The receiver reassembles in a Reassembler, which bounds what a peer
// can make it hold: the parts of one message (MaxParts), the bytes of
// one message, the messages pending at once (of one source and of all)
// and their bytes in total, and how long a message may stay
// incomplete. Anything beyond is refused with an error (and the
// incomplete message dropped), never held; under pressure the source
// holding the most gives way first, so one hostile peer cannot crowd
// out the others. A part of a message just delivered (sent again
// because its acknowledgement was lost) is recognised and ignored.

// PartMarker leads every part (see above).
const PartMarker = 0xc1

// PartHeader is the size of a part's header.
const PartHeader = 1 + 4 + 2 + 2

// MaxParts bounds the parts of one message.
const MaxParts = 2048

// MinPartRoom is the smallest room per part Split accepts: a header and
// a useful amount of payload.
const MinPartRoom = PartHeader + 32

// Errors of the reassembly (wrapped).
var (
	// ErrPart means a part is malformed or inconsistent with the
	// others of its message.
	ErrPart = errors.New("malformed message part")
	// ErrPartBounds means a message in parts exceeds a bound of the
	// Reassembler.
	ErrPartBounds = errors.New("message in parts exceeds the reassembly bounds")
)

// IsPart reports whether b is a part rather than a whole message: it
// starts with PartMarker and holds a part's header. Anything else is
// left to the whole message's decoder (which refuses it if garbage).
func IsPart(b []byte) bool { return len(b) >= PartHeader && b[0] == PartMarker }

// Split cuts msg into parts of at most room bytes each, header
// included, all carrying id. A message that fits one part is still
// one part. It fails if room is below MinPartRoom or msg needs more
// than MaxParts parts.
func Split(id uint32, msg []byte, room int) ([][]byte, error) {
	if room < MinPartRoom {
		return nil, fmt.Errorf("split: %d bytes per part is too small (at least %d)", room, MinPartRoom)
	}
	chunk := room - PartHeader
	n := max(1, (len(msg)+chunk-1)/chunk)
	if n > MaxParts {
		return nil, fmt.Errorf("split: a message of %d bytes needs %d parts of %d bytes, more than %d", len(msg), n, room, MaxParts)
	}
	out := make([][]byte, 0, n)
	for i := range n {
		c := msg[i*chunk : min(len(msg), (i+1)*chunk)]
		p := make([]byte, PartHeader+len(c))
		p[0] = PartMarker
		binary.BigEndian.PutUint32(p[1:], id)
		binary.BigEndian.PutUint16(p[5:], uint16(i))
		binary.BigEndian.PutUint16(p[7:], uint16(n))
		copy(p[PartHeader:], c)
		out = append(out, p)
	}
	return out, nil
}

// ReassemblyLimits bounds a Reassembler.
type ReassemblyLimits struct {
	// MaxBytes bounds one reassembled message.
	MaxBytes int
	// MaxPending bounds the messages incomplete at once (of all
	// sources); a new one beyond it evicts one (see evict).
	MaxPending int
	// MaxPerSource, if positive, bounds the messages incomplete at once
	// from one source; a new one beyond it evicts that source's oldest,
	// so one source cannot crowd out the others.
	MaxPerSource int
	// MaxTotal bounds the bytes held by all incomplete messages; a
	// part beyond it evicts others (see evict), or is refused.
	MaxTotal int
	// Timeout is how long a message may stay incomplete; it is dropped
	// at the next part that arrives after that.
	Timeout time.Duration
}

type partKey struct {
	src uint64
	id  uint32
}

type partial struct {
	parts   [][]byte
	have    int
	bytes   int
	started time.Time
}

// Reassembler joins the parts of messages from several sources. It is
// not safe for concurrent use: the caller locks.
type Reassembler struct {
	lim     ReassemblyLimits
	pending map[partKey]*partial
	total   int
	// done remembers the last completed messages, so that a part sent
	// again after its message completed (its acknowledgement was lost)
	// does not open a message that never completes.
	done    [doneMemory]partKey
	doneAt  int
	doneSet map[partKey]bool
	// Dropped counts incomplete messages given up (timed out, evicted,
	// over a bound or inconsistent).
	Dropped uint64
}

// NewReassembler returns an empty Reassembler with the given limits.
func NewReassembler(lim ReassemblyLimits) *Reassembler {
	return &Reassembler{lim: lim, pending: map[partKey]*partial{}, doneSet: map[partKey]bool{}}
}

// doneMemory is how many completed messages a Reassembler remembers.
const doneMemory = 64

// remember records k as completed, forgetting the oldest one recorded.
func (r *Reassembler) remember(k partKey) {
	if len(r.doneSet) == doneMemory {
		delete(r.doneSet, r.done[r.doneAt])
	}
	r.done[r.doneAt] = k
	r.doneAt = (r.doneAt + 1) % doneMemory
	r.doneSet[k] = true
}

// Pending returns the number of incomplete messages and their bytes.
func (r *Reassembler) Pending() (msgs, bytes int) { return len(r.pending), r.total }

// Add takes one part from src. It returns the whole message once its
// last part has come, nil while parts are missing, or an error for a
// malformed part or one over a bound (the message it belongs to is
// then dropped). A part seen before is ignored.
func (r *Reassembler) Add(src uint64, b []byte, now time.Time) ([]byte, error) {
	if len(b) < PartHeader || b[0] != PartMarker {
		return nil, fmt.Errorf("%w: %d bytes", ErrPart, len(b))
	}
	k := partKey{src: src, id: binary.BigEndian.Uint32(b[1:])}
	idx, n := int(binary.BigEndian.Uint16(b[5:])), int(binary.BigEndian.Uint16(b[7:]))
	data := b[PartHeader:]
	if n == 0 || idx >= n || (len(data) == 0 && n > 1) {
		r.drop(k)
		return nil, fmt.Errorf("%w: part %d of %d with %d bytes", ErrPart, idx, n, len(data))
	}
	if n > MaxParts {
		r.drop(k)
		return nil, fmt.Errorf("%w: %d parts, at most %d", ErrPartBounds, n, MaxParts)
	}
	r.expire(now)
	p := r.pending[k]
	if p == nil {
		if r.doneSet[k] {
			return nil, nil // a part of a message already delivered
		}
		if n == 1 {
			if len(data) > r.lim.MaxBytes {
				return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrPartBounds, len(data), r.lim.MaxBytes)
			}
			return append([]byte(nil), data...), nil
		}
		if r.lim.MaxPerSource > 0 {
			for r.fromSource(k.src) >= r.lim.MaxPerSource && r.evictFrom(k.src) {
			}
		}
		for len(r.pending) >= r.lim.MaxPending && r.evict(nil) {
		}
		p = &partial{parts: make([][]byte, n), started: now}
		r.pending[k] = p
	}
	if len(p.parts) != n {
		r.drop(k)
		return nil, fmt.Errorf("%w: part says %d parts, its message has %d", ErrPart, n, len(p.parts))
	}
	if p.parts[idx] != nil {
		return nil, nil
	}
	if p.bytes+len(data) > r.lim.MaxBytes {
		r.drop(k)
		return nil, fmt.Errorf("%w: more than %d bytes", ErrPartBounds, r.lim.MaxBytes)
	}
	for r.total+len(data) > r.lim.MaxTotal {
		if !r.evict(&k) {
			r.drop(k)
			return nil, fmt.Errorf("%w: incomplete messages would hold more than %d bytes", ErrPartBounds, r.lim.MaxTotal)
		}
	}
	p.parts[idx] = append([]byte(nil), data...)
	p.have++
	p.bytes += len(data)
	r.total += len(data)
	if p.have < n {
		return nil, nil
	}
	msg := make([]byte, 0, p.bytes)
	for _, c := range p.parts {
		msg = append(msg, c...)
	}
	r.total -= p.bytes
	delete(r.pending, k)
	r.remember(k)
	return msg, nil
}

// drop gives up the incomplete message k, if any.
func (r *Reassembler) drop(k partKey) {
	if p := r.pending[k]; p != nil {
		r.total -= p.bytes
		delete(r.pending, k)
		r.Dropped++
	}
}

// expire drops the messages incomplete for longer than the timeout.
func (r *Reassembler) expire(now time.Time) {
	for k, p := range r.pending {
		if now.Sub(p.started) > r.lim.Timeout {
			r.drop(k)
		}
	}
}

// fromSource counts the incomplete messages of src.
func (r *Reassembler) fromSource(src uint64) int {
	n := 0
	for k := range r.pending {
		if k.src == src {
			n++
		}
	}
	return n
}

// evictFrom drops the oldest incomplete message of src; false if none.
func (r *Reassembler) evictFrom(src uint64) bool {
	var oldest partKey
	var at time.Time
	found := false
	for k, p := range r.pending {
		if k.src == src && (!found || p.started.Before(at)) {
			oldest, at, found = k, p.started, true
		}
	}
	if found {
		r.drop(oldest)
	}
	return found
}

// evict drops the oldest incomplete message of the source holding the
// most bytes in incomplete messages (so a source filling the bounds
// pays for it, not the others), never keep; false if there is none.
func (r *Reassembler) evict(keep *partKey) bool {
	held := map[uint64]int{}
	for k, p := range r.pending {
		if keep == nil || k != *keep {
			held[k.src] += p.bytes + 1
		}
	}
	var heavy uint64
	most := 0
	for src, b := range held {
		if b > most || (b == most && src < heavy) {
			heavy, most = src, b
		}
	}
	if most == 0 {
		return false
	}
	var oldest partKey
	var at time.Time
	found := false
	for k, p := range r.pending {
		if k.src == heavy && (keep == nil || k != *keep) && (!found || p.started.Before(at)) {
			oldest, at, found = k, p.started, true
		}
	}
	if found {
		r.drop(oldest)
	}
	return found
}
