package layer

import (
	"sort"
	"sync"
	"time"
)

// DirEntry is one member's announcement: its IPCP name and the names
// registered at it, with a sequence number so that newer replaces older.
type DirEntry struct {
	Origin uint64   `msgpack:"o"`
	IPCP   string   `msgpack:"ipcp"`
	Seq    uint64   `msgpack:"seq"`
	Names  []string `msgpack:"names"`
	Gone   bool     `msgpack:"gone"`
	// seen is when the entry was last refreshed (local only).
	seen time.Time
}

// Directory maps names to the addresses of the members where they are
// registered. Each member floods its whole entry, with a sequence
// number, whenever it changes and every refresh interval; entries not
// refreshed within MaxAge, and entries of members routing no longer
// reaches, are dropped. Safe for concurrent use.
type Directory struct {
	mu      sync.Mutex
	self    uint64
	entries map[uint64]*DirEntry
}

// NewDirectory returns a directory for the member at self.
func NewDirectory(self uint64, ipcp string) *Directory {
	d := &Directory{self: self, entries: map[uint64]*DirEntry{}}
	d.entries[self] = &DirEntry{Origin: self, IPCP: ipcp, Seq: 1}
	return d
}

// Own returns a copy of this member's entry.
func (d *Directory) Own() DirEntry {
	d.mu.Lock()
	defer d.mu.Unlock()
	return *d.entries[d.self]
}

// SetOwn replaces this member's names, bumping its sequence number, and
// returns the new entry to flood.
func (d *Directory) SetOwn(names []string, now time.Time) DirEntry {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.entries[d.self]
	e.Seq++
	e.Names = append([]string(nil), names...)
	sort.Strings(e.Names)
	e.seen = now
	return *e
}

// Refresh bumps this member's sequence number (for periodic flooding).
func (d *Directory) Refresh(now time.Time) DirEntry { return d.SetOwn(d.Own().Names, now) }

// Apply installs an entry received from a neighbour. It reports whether
// the entry was new (and so must be flooded further). Entries for this
// member are never overwritten by others' copies; a newer copy of our own
// entry (after a restart) makes us jump our sequence number past it.
func (d *Directory) Apply(e DirEntry, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e.Origin == 0 {
		return false
	}
	if e.Origin == d.self {
		own := d.entries[d.self]
		if e.Seq >= own.Seq {
			own.Seq = e.Seq + 1
		}
		return false
	}
	cur, ok := d.entries[e.Origin]
	if ok && e.Seq <= cur.Seq {
		if e.Seq == cur.Seq {
			cur.seen = now
		}
		return false
	}
	e.seen = now
	e.Names = append([]string(nil), e.Names...)
	d.entries[e.Origin] = &e
	return true
}

// Snapshot returns every entry, this member's first.
func (d *Directory) Snapshot() []DirEntry {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := []DirEntry{*d.entries[d.self]}
	for o, e := range d.entries {
		if o != d.self && !e.Gone {
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
		if e.Gone {
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

// Expire drops entries not refreshed since before cutoff and entries of
// members for which alive returns false; it returns how many it dropped.
func (d *Directory) Expire(cutoff time.Time, alive func(uint64) bool) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for o, e := range d.entries {
		if o == d.self {
			continue
		}
		if e.seen.Before(cutoff) || (alive != nil && !alive(o)) {
			delete(d.entries, o)
			n++
		}
	}
	return n
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
