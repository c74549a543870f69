package dt

import (
	"sync"
	"sync/atomic"
)

// NextHop is one lower flow a packet can leave by.
type NextHop struct {
	ID     uint64 // opaque id of the lower flow
	Weight uint32 // relative share of flows; 0 means 1
}

func (nh NextHop) weight() uint32 {
	if nh.Weight == 0 {
		return 1
	}
	return nh.Weight
}

// Entry is the forwarding state for one destination. Alternates (for
// example loop-free alternates) are used only when no primary is left.
type Entry struct {
	Primary    []NextHop
	Alternates []NextHop
}

// route is an installed, immutable Entry with its active hop set.
type route struct {
	entry  Entry  // normalized copy, as Snapshot reports it
	active hopSet // primaries, else alternates; may be empty
}

// table is an immutable forwarding table.
type table struct {
	routes map[uint64]*route
}

// FIB is a forwarding table from destination address to next-hop set.
// Create it with NewFIB. Lookup may run concurrently with everything
// else; updates serialize among themselves.
type FIB struct {
	seed uint64
	mu   sync.Mutex // serializes updates
	tab  atomic.Pointer[table]
}

// NewFIB returns an empty table whose flow hashing is salted with seed.
// Each IPCP should draw its own random seed, so that consecutive stages
// do not make correlated choices.
func NewFIB(seed uint64) *FIB {
	f := &FIB{seed: seed}
	f.tab.Store(&table{routes: map[uint64]*route{}})
	return f
}

// Lookup is LookupLabel with path label 0.
func (f *FIB) Lookup(dst, eid uint64, qos uint8) (id uint64, ok bool) {
	return f.LookupLabel(dst, eid, qos, 0)
}

// LookupLabel returns the next hop for the flow (dst, eid, qos) on path
// label: a primary if any is left, else an alternate. The same flow and
// label get the same next hop for as long as that next hop stays in the
// set; another label is another draw among the n next hops, so it moves
// the flow with probability 1-1/n (path bending). ok is false when
// there is no route or the route has no next hop left. LookupLabel is
// lock-free, does not allocate, and costs O(n) in the set size.
func (f *FIB) LookupLabel(dst, eid uint64, qos, label uint8) (id uint64, ok bool) {
	t := f.tab.Load()
	if t == nil {
		return 0, false
	}
	r := t.routes[dst]
	if r == nil || len(r.active.hops) == 0 {
		return 0, false
	}
	if len(r.active.hops) == 1 {
		return r.active.hops[0].id, true
	}
	return r.active.pick(flowHash(f.seed, dst, eid, qos, label)), true
}

// Replace installs routes as the whole new table, atomically. The map
// and its slices are copied; the caller may reuse them. A table
// computed before a RemoveNextHop brings the removed next hop back, so
// it must come from a link-state view that already has the withdrawal.
func (f *FIB) Replace(routes map[uint64]Entry) {
	t := &table{routes: make(map[uint64]*route, len(routes))}
	for dst, e := range routes {
		t.routes[dst] = f.newRoute(e)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tab.Store(t)
}

// Set installs or replaces the route to dst. It copies the whole route
// map; use Replace to load many routes at once.
func (f *FIB) Set(dst uint64, e Entry) {
	r := f.newRoute(e)
	f.update(func(routes map[uint64]*route) { routes[dst] = r })
}

// Delete removes the route to dst, if any.
func (f *FIB) Delete(dst uint64) {
	f.update(func(routes map[uint64]*route) { delete(routes, dst) })
}

// RemoveNextHop drops the next hop id from the primaries and the
// alternates of every entry in one atomic step (local repair when a
// lower flow dies) and returns how many entries changed. Flows that
// were on other next hops keep theirs. An entry left with no next hop
// stays installed but Lookup reports no route for it.
func (f *FIB) RemoveNextHop(id uint64) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.tab.Load()
	changed := 0
	for _, r := range old.routes {
		if r.entry.has(id) {
			changed++
		}
	}
	if changed == 0 {
		return 0
	}
	t := &table{routes: make(map[uint64]*route, len(old.routes))}
	for dst, r := range old.routes {
		if r.entry.has(id) {
			r = f.newRoute(Entry{
				Primary:    without(r.entry.Primary, id),
				Alternates: without(r.entry.Alternates, id),
			})
		}
		t.routes[dst] = r
	}
	f.tab.Store(t)
	return changed
}

// Snapshot returns a deep copy of the table: entries as installed,
// after removal of duplicate and removed next hops.
func (f *FIB) Snapshot() map[uint64]Entry {
	t := f.tab.Load()
	out := make(map[uint64]Entry, len(t.routes))
	for dst, r := range t.routes {
		out[dst] = Entry{
			Primary:    cloneHops(r.entry.Primary),
			Alternates: cloneHops(r.entry.Alternates),
		}
	}
	return out
}

// update applies edit to a copy of the route map and publishes it.
func (f *FIB) update(edit func(map[uint64]*route)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.tab.Load()
	t := &table{routes: make(map[uint64]*route, len(old.routes)+1)}
	for dst, r := range old.routes {
		t.routes[dst] = r
	}
	edit(t.routes)
	f.tab.Store(t)
}

// newRoute normalizes e (copies it, drops duplicate next hops and
// alternates that are also primaries) and prepares its active set.
func (f *FIB) newRoute(e Entry) *route {
	prim := dedupe(nil, e.Primary, nil)
	alt := dedupe(nil, e.Alternates, prim)
	r := &route{entry: Entry{Primary: prim, Alternates: alt}}
	if len(prim) > 0 {
		r.active = newHopSet(f.seed, prim)
	} else {
		r.active = newHopSet(f.seed, alt)
	}
	return r
}

// has reports whether id is a primary or an alternate of e.
func (e Entry) has(id uint64) bool {
	return indexOf(e.Primary, id) >= 0 || indexOf(e.Alternates, id) >= 0
}

// dedupe appends to dst the hops of src that are neither earlier in src
// nor in skip; the first occurrence of an id wins. Sets are small, so
// the quadratic scan is cheaper than a map.
func dedupe(dst, src, skip []NextHop) []NextHop {
	for _, nh := range src {
		if indexOf(dst, nh.ID) < 0 && indexOf(skip, nh.ID) < 0 {
			dst = append(dst, nh)
		}
	}
	return dst
}

// without returns a copy of hops without id.
func without(hops []NextHop, id uint64) []NextHop {
	var out []NextHop
	for _, nh := range hops {
		if nh.ID != id {
			out = append(out, nh)
		}
	}
	return out
}

func indexOf(hops []NextHop, id uint64) int {
	for i, nh := range hops {
		if nh.ID == id {
			return i
		}
	}
	return -1
}

func cloneHops(hops []NextHop) []NextHop {
	if hops == nil {
		return nil
	}
	return append([]NextHop(nil), hops...)
}
