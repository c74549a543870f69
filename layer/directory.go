package layer

import (
	"math"
	"slices"
	"sort"
	"sync"
	"time"
)

// DirEntry is one member's announcement: its IPCP name and the names
// registered at it, with a sequence number so that newer replaces older.
// Gone marks a withdrawal: the member flushes the instance at Seq (see
// Directory).
type DirEntry struct {
	Origin uint64   `msgpack:"o"`
	IPCP   string   `msgpack:"ipcp"`
	Seq    uint64   `msgpack:"seq"`
	Names  []string `msgpack:"names"`
	Gone   bool     `msgpack:"gone"`
	// seen is when the entry was last refreshed (local only).
	seen time.Time
	// lost is since when routing has not reached the member, zero
	// while it does (local only; see Directory.Expire).
	lost time.Time
}

// MaxDirSeq is the highest directory sequence number. Sequence numbers
// never wrap: a member whose entry would need a higher one withdraws it
// (a Gone entry at MaxDirSeq), waits, and starts again at 1 (the
// OSPF/IS-IS rule, RFC 2328 12.1.6, ISO 10589 7.3.16).
const MaxDirSeq = math.MaxUint64

// Bounds on what others' entries may make a directory hold: an entry
// with more names than MaxDirNamesPerEntry, a new member past
// MaxDirEntries, or an entry that would take the names held past
// MaxDirNames is refused (counted) instead of stored. Own names are not
// counted.
const (
	MaxDirEntries       = 1 << 16
	MaxDirNamesPerEntry = 1 << 12
	MaxDirNames         = 1 << 18
)

// Verdict says what Apply did with an entry and what the caller owes
// the layer.
type Verdict uint8

// Verdicts of Apply.
const (
	// DirIgnored: a duplicate, or a withdrawal of an instance this
	// member does not hold. Nothing to send.
	DirIgnored Verdict = iota
	// DirFresh: newer than the copy held; flood it to the other
	// neighbours.
	DirFresh
	// DirStale: older than the copy held; answer the sender with the
	// entry Apply returned (the newer copy).
	DirStale
	// DirOwnNewer: a newer copy of this member's own entry (a previous
	// incarnation, or a forgery); its sequence number jumped past it:
	// flood the entry Apply returned.
	DirOwnNewer
	// DirOwnFlush: as DirOwnNewer, but at MaxDirSeq: flood the entry
	// Apply returned (the withdrawal), then call Restart once it has
	// had time to reach every member, and flood what Restart returns.
	DirOwnFlush
)

// Directory maps names to the addresses of the members where they are
// registered. Each member floods its whole entry, with a sequence
// number, whenever it changes and every refresh interval (less up to
// RefreshJitter of it at random: see NextRefresh); entries not refreshed
// within MaxAge, and entries of members routing has not reached for a
// grace period, are dropped (see Expire). Safe for concurrent use.
//
// A withdrawal (Gone) removes exactly the instance it names and leaves
// a tombstone, which refuses late copies of that instance and gives way
// to any other (the restart after a flush at MaxDirSeq); a withdrawal
// of another instance is ignored and not flooded.
type Directory struct {
	mu       sync.Mutex
	self     uint64
	entries  map[uint64]*DirEntry
	flushing bool // own entry withdrawn at MaxDirSeq, Restart pending
	names    int  // names in others' entries
	// Counters, guarded by mu.
	ownNewer, flushes, refused uint64
}

// NewDirectory returns a directory for the member at self.
func NewDirectory(self uint64, ipcp string) *Directory {
	d := &Directory{self: self, entries: map[uint64]*DirEntry{}}
	d.entries[self] = &DirEntry{Origin: self, IPCP: ipcp, Seq: 1}
	return d
}

// Own returns a copy of this member's entry as it is to be flooded (the
// withdrawal while a flush waits).
func (d *Directory) Own() DirEntry {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ownLocked()
}

func (d *Directory) ownLocked() DirEntry {
	e := *d.entries[d.self]
	if d.flushing {
		return DirEntry{Origin: d.self, IPCP: e.IPCP, Seq: MaxDirSeq, Gone: true}
	}
	return e
}

// SetOwn replaces this member's names, bumping its sequence number, and
// returns the new entry to flood. While a flush waits, the names are
// kept for the restart and the withdrawal is returned.
func (d *Directory) SetOwn(names []string, now time.Time) DirEntry {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.entries[d.self]
	e.Names = append([]string(nil), names...)
	sort.Strings(e.Names)
	e.seen = now
	if !d.flushing {
		if e.Seq >= MaxDirSeq {
			d.flushing = true
			d.flushes++
		} else {
			e.Seq++
		}
	}
	return d.ownLocked()
}

// Flushing reports whether this member's entry is withdrawn at
// MaxDirSeq, waiting for Restart.
func (d *Directory) Flushing() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.flushing
}

// Restart ends a flush: this member's entry starts again at sequence
// number 1; the entry returned is to be flooded.
func (d *Directory) Restart(now time.Time) DirEntry {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.entries[d.self]
	if d.flushing {
		d.flushing = false
		e.Seq = 1
		e.seen = now
	}
	return d.ownLocked()
}

// Counters returns how many newer copies of this member's own entry
// arrived (each made it re-originate), how many times it flushed, and
// how many entries were refused for the bounds.
func (d *Directory) Counters() (ownNewer, flushes, refused uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ownNewer, d.flushes, d.refused
}

// Refresh bumps this member's sequence number (for periodic flooding).
func (d *Directory) Refresh(now time.Time) DirEntry {
	d.mu.Lock()
	names := d.entries[d.self].Names
	d.mu.Unlock()
	return d.SetOwn(names, now)
}

// Apply installs an entry received from a neighbour and says what to do
// about it (see Verdict); the entry returned is the one to send, if any.
// Entries for this member are never overwritten by others' copies.
func (d *Directory) Apply(e DirEntry, now time.Time) (Verdict, DirEntry) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e.Origin == 0 {
		return DirIgnored, DirEntry{}
	}
	if e.Origin == d.self {
		return d.applyOwnLocked(e)
	}
	cur, ok := d.entries[e.Origin]
	if e.Gone {
		switch {
		case ok && e.Seq == cur.Seq && !cur.Gone:
			d.names -= len(cur.Names)
			cur.Gone, cur.Names, cur.seen = true, nil, now
			return DirFresh, DirEntry{}
		case ok && e.Seq < cur.Seq && !cur.Gone:
			return DirStale, *cur
		}
		return DirIgnored, DirEntry{}
	}
	switch {
	case ok && cur.Gone && e.Seq == cur.Seq:
		return DirIgnored, DirEntry{} // a late copy of a withdrawn instance
	case ok && cur.Gone:
		// the restart after a withdrawal
	case ok && e.Seq == cur.Seq:
		cur.seen = now
		return DirIgnored, DirEntry{}
	case ok && e.Seq < cur.Seq:
		return DirStale, *cur
	}
	held := 0
	if ok {
		held = len(cur.Names)
	}
	if len(e.Names) > MaxDirNamesPerEntry || (!ok && len(d.entries) >= MaxDirEntries) ||
		d.names-held+len(e.Names) > MaxDirNames {
		d.refused++
		return DirIgnored, DirEntry{}
	}
	d.names += len(e.Names) - held
	e.seen = now
	e.Names = append([]string(nil), e.Names...)
	d.entries[e.Origin] = &e
	return DirFresh, DirEntry{}
}

// applyOwnLocked handles a copy of this member's own entry.
func (d *Directory) applyOwnLocked(e DirEntry) (Verdict, DirEntry) {
	own := d.entries[d.self]
	if d.flushing {
		return DirIgnored, DirEntry{}
	}
	same := e.Seq == own.Seq && !e.Gone && slices.Equal(e.Names, own.Names)
	if e.Seq < own.Seq || same {
		return DirIgnored, DirEntry{}
	}
	d.ownNewer++
	if e.Seq >= MaxDirSeq {
		d.flushing = true
		d.flushes++
		return DirOwnFlush, d.ownLocked()
	}
	own.Seq = e.Seq + 1
	return DirOwnNewer, d.ownLocked()
}

// Snapshot returns every entry, this member's first, withdrawals
// included (a neighbour holding the withdrawn instance drops it).
func (d *Directory) Snapshot() []DirEntry {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := []DirEntry{d.ownLocked()}
	for o, e := range d.entries {
		if o != d.self {
			out = append(out, *e)
		}
	}
	sort.Slice(out[1:], func(i, j int) bool { return out[1+i].Origin < out[1+j].Origin })
	return out
}

// Lookup returns every address where name is registered.
func (d *Directory) Lookup(name string) []uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []uint64
	for o, e := range d.entries {
		if e.Gone && o != d.self {
			continue
		}
		for _, n := range e.Names {
			if n == name {
				out = append(out, o)
				break
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Reach records which members routing reaches now (alive says), for
// Expire's grace period: call it on every change of the routing table.
func (d *Directory) Reach(alive func(uint64) bool, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.reachLocked(alive, now)
}

func (d *Directory) reachLocked(alive func(uint64) bool, now time.Time) {
	for o, e := range d.entries {
		switch {
		case o == d.self:
		case alive(o):
			e.lost = time.Time{}
		case e.lost.IsZero():
			e.lost = now
		}
	}
}

// Expire drops the entries not refreshed since before now-maxAge, and
// the entries of members routing has not reached for grace or longer:
// since Reach or an earlier Expire first saw alive say no, with no yes
// between. It returns how many it dropped.
//
// The grace keeps the names of a member that is only briefly
// unreachable (a stall of a few tens of milliseconds, a short
// partition, a link held down by damping): were they dropped, they
// would be learnt again only at the member's next refresh, since the
// database sync of a returning adjacency floods them no further than
// the first members that still hold them. A stale entry costs little
// meanwhile: a lookup ranks unreachable members last. The unicast IPCP
// gives the layer's RefreshInterval as grace and expires at each
// refresh, so the entries of a member that is gone go within two
// refresh intervals of its loss, and within MaxAge in any case.
func (d *Directory) Expire(now time.Time, maxAge, grace time.Duration, alive func(uint64) bool) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if alive != nil {
		d.reachLocked(alive, now)
	}
	cutoff := now.Add(-maxAge)
	n := 0
	for o, e := range d.entries {
		if o == d.self {
			continue
		}
		if e.seen.Before(cutoff) || (!e.lost.IsZero() && now.Sub(e.lost) >= grace) {
			d.names -= len(e.Names)
			delete(d.entries, o)
			n++
		}
	}
	return n
}

// RefreshJitter is the largest share of the refresh interval cut at
// random from each wait between two directory refreshes of a member, so
// that members which came up together do not flood their entries
// together ever after. Waits are only ever shortened (as IS-IS jitters
// its timers, ISO 10589 10.1): an entry is still refreshed at least
// every refresh interval, so none expires sooner than without jitter.
const RefreshJitter = 0.25

// NextRefresh returns the wait before a member's next directory
// refresh: interval less a share of up to RefreshJitter of it; u is
// drawn uniformly from [0, 1) by the caller's random source.
func NextRefresh(interval time.Duration, u float64) time.Duration {
	u = min(max(u, 0), 1)
	return interval - time.Duration(u*RefreshJitter*float64(interval))
}

// Members returns address → IPCP name of every known member.
func (d *Directory) Members() map[uint64]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[uint64]string, len(d.entries))
	for o, e := range d.entries {
		out[o] = e.IPCP
	}
	return out
}
