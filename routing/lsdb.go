package routing

import (
	"container/heap"
	"slices"
	"time"
)

// verdict is what the database did with an offered LSU.
type verdict uint8

const (
	accepted  verdict = iota // newer: stored
	duplicate                // same sequence number as stored
	stale                    // older than stored
	expired                  // already MaxAge old on arrival, and no flush of the stored copy
	purged                   // a flush of the stored copy: now a tombstone
	refused                  // over the database's bounds (origins or links)
)

// entry is the newest LSU of one origin. born is when the origin issued
// it (arrival time minus the age it carried); it expires at born+MaxAge.
//
// A flushed entry is a tombstone: the flushed instance's origin and
// sequence number, no links, kept until MaxAge so that late copies of
// the flushed instance are recognised; it takes no part in SPF.
type entry struct {
	lsu     LSU // Age unused: see age
	born    time.Time
	flushed bool
}

// lsdb is the link-state database: per origin the newest LSU. It is not
// safe for concurrent use; the Router guards it. The origin's own entry
// (self) never expires.
//
// It is bounded: at most maxOrigins entries (tombstones included) and
// maxLinks links over all entries; an LSU that would pass a bound is
// refused (a forged flood of made-up origins cannot grow it further;
// what it holds ages out after MaxAge).
type lsdb struct {
	self       uint64
	maxAge     time.Duration
	maxOrigins int
	maxLinks   int
	links      int // links over all entries
	entries    map[uint64]*entry
	expiry     expiryHeap
}

func newLSDB(self uint64, maxAge time.Duration) *lsdb {
	return &lsdb{self: self, maxAge: maxAge, maxOrigins: DefaultMaxOrigins, maxLinks: DefaultMaxLinks,
		entries: make(map[uint64]*entry)}
}

// fits reports whether replacing the entry of l's origin with l keeps
// the database within its bounds.
func (db *lsdb) fits(l LSU) bool {
	old, ok := db.entries[l.Origin]
	if !ok && len(db.entries) >= db.maxOrigins {
		return false
	}
	n := db.links + len(l.Links)
	if ok {
		n -= len(old.lsu.Links)
	}
	return n <= db.maxLinks
}

// install offers l, received at now, for an origin other than self. It
// reports what happened and, when accepted or purged, whether the
// origin's links changed (or the origin is new), that is whether SPF
// must run again.
//
// An LSU already MaxAge old is a flush (premature ageing, RFC 2328
// 14.1, ISO 10589 7.3.16.4): it removes exactly the instance it names
// (same sequence number), leaving a tombstone; a flush of any other
// instance is ignored, so a late or forged flush cannot remove a newer
// copy. A tombstone refuses late copies of the flushed instance and is
// replaced by any other instance: the origin restarts its sequence
// numbers after flushing the maximum one.
func (db *lsdb) install(l LSU, now time.Time) (verdict, bool) {
	old, ok := db.entries[l.Origin]
	if l.Age >= db.maxAge {
		switch {
		case ok && l.Seq == old.lsu.Seq && old.flushed:
			return duplicate, false
		case ok && l.Seq == old.lsu.Seq:
			changed := len(old.lsu.Links) > 0
			db.store(LSU{Origin: l.Origin, Seq: l.Seq}, now, true)
			return purged, changed
		case ok && l.Seq < old.lsu.Seq && !old.flushed:
			return stale, false
		}
		return expired, false
	}
	if ok && old.flushed {
		if l.Seq == old.lsu.Seq {
			return duplicate, false
		}
		if !db.fits(l) {
			return refused, false
		}
		db.store(l, now.Add(-l.Age), false)
		return accepted, len(l.Links) > 0
	}
	if ok && l.Seq == old.lsu.Seq {
		return duplicate, false
	}
	if ok && l.Seq < old.lsu.Seq {
		return stale, false
	}
	if !db.fits(l) {
		return refused, false
	}
	changed := !ok || !slices.Equal(old.lsu.Links, l.Links)
	db.store(l, now.Add(-l.Age), false)
	return accepted, changed
}

// store replaces the entry of l's origin with l, born at born.
func (db *lsdb) store(l LSU, born time.Time, flushed bool) {
	e := &entry{lsu: l, born: born, flushed: flushed}
	e.lsu.Age = 0
	db.put(e)
	heap.Push(&db.expiry, expiryItem{when: e.born.Add(db.maxAge), origin: l.Origin})
}

// put replaces the entry of e's origin, keeping the link count.
func (db *lsdb) put(e *entry) {
	if old, ok := db.entries[e.lsu.Origin]; ok {
		db.links -= len(old.lsu.Links)
	}
	db.links += len(e.lsu.Links)
	db.entries[e.lsu.Origin] = e
}

// setSelf stores the router's own newest LSU, issued at now (never
// refused: it is bounded by the router's own adjacencies).
func (db *lsdb) setSelf(l LSU, now time.Time) {
	l.Age = 0
	db.put(&entry{lsu: l, born: now})
}

// get returns the stored LSU of origin with its age at now (a
// tombstone as a flush: MaxAge old).
func (db *lsdb) get(origin uint64, now time.Time) (LSU, bool) {
	e, ok := db.entries[origin]
	if !ok {
		return LSU{}, false
	}
	return db.wire(e, now), true
}

// wire returns the LSU as it goes on the wire at now, with its age.
func (db *lsdb) wire(e *entry, now time.Time) LSU {
	l := e.lsu
	l.Age = max(0, now.Sub(e.born))
	if e.flushed {
		l.Age = db.maxAge
	}
	return l
}

// all returns every live stored LSU with its age at now, sorted by
// origin (tombstones left out).
func (db *lsdb) all(now time.Time) []LSU { return db.list(now, false) }

// list is all, with the tombstones (as flushes) if tombstones is set.
func (db *lsdb) list(now time.Time, tombstones bool) []LSU {
	out := make([]LSU, 0, len(db.entries))
	for _, e := range db.entries {
		if !e.flushed || tombstones {
			out = append(out, db.wire(e, now))
		}
	}
	slices.SortFunc(out, func(a, b LSU) int {
		switch {
		case a.Origin < b.Origin:
			return -1
		case a.Origin > b.Origin:
			return 1
		}
		return 0
	})
	return out
}

// expire removes the entries that reached MaxAge by now and returns
// the origins of the live ones among them (tombstones just go).
func (db *lsdb) expire(now time.Time) []uint64 {
	var gone []uint64
	for db.expiry.Len() > 0 && !db.expiry[0].when.After(now) {
		it := heap.Pop(&db.expiry).(expiryItem)
		if db.current(it) {
			e := db.entries[it.origin]
			if !e.flushed {
				gone = append(gone, it.origin)
			}
			db.links -= len(e.lsu.Links)
			delete(db.entries, it.origin)
		}
	}
	return gone
}

// nextExpiry returns when the next entry reaches MaxAge, if any.
func (db *lsdb) nextExpiry() (time.Time, bool) {
	for db.expiry.Len() > 0 {
		if db.current(db.expiry[0]) {
			return db.expiry[0].when, true
		}
		heap.Pop(&db.expiry)
	}
	return time.Time{}, false
}

// current reports whether it is the deadline of the entry now stored.
func (db *lsdb) current(it expiryItem) bool {
	e, ok := db.entries[it.origin]
	return ok && it.origin != db.self && e.born.Add(db.maxAge).Equal(it.when)
}

// expiryItem is one deadline in the expiry heap; it is outdated once its
// origin was refreshed or removed, and is then dropped lazily.
type expiryItem struct {
	when   time.Time
	origin uint64
}

// expiryHeap is a min-heap of deadlines (container/heap).
type expiryHeap []expiryItem

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].when.Before(h[j].when) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }

// Push implements heap.Interface.
func (h *expiryHeap) Push(x any) { *h = append(*h, x.(expiryItem)) }

// Pop implements heap.Interface.
func (h *expiryHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}
