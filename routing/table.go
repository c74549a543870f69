package routing

import "slices"

// Route is how to reach one destination.
type Route struct {
	// Cost is the shortest-path cost to the destination.
	Cost uint64
	// NextHops are the neighbours on a shortest path (all of them for
	// ecmp and lfa, one for link-state), sorted, never empty.
	NextHops []uint64
	// Alternates are loop-free alternate neighbours (lfa only) that are
	// not next hops, sorted; nil when there are none.
	Alternates []uint64
}

// Table maps every reachable destination address (never the source
// itself) to its route. Tables handed out by this package are shared and
// must be treated as read-only.
type Table map[uint64]Route

// Equal reports whether t and u hold the same routes.
func (t Table) Equal(u Table) bool {
	if len(t) != len(u) {
		return false
	}
	for d, r := range t {
		q, ok := u[d]
		if !ok || q.Cost != r.Cost || !slices.Equal(q.NextHops, r.NextHops) ||
			!slices.Equal(q.Alternates, r.Alternates) {
			return false
		}
	}
	return true
}

// without returns a copy of t in which neighbour n is neither a next hop
// nor an alternate. Where n was the only next hop, the alternates become
// the next hops (Cost is then no longer exact); routes left with no next
// hop are dropped. It reports whether anything changed.
func (t Table) without(n uint64) (Table, bool) {
	changed := false
	out := make(Table, len(t))
	for d, r := range t {
		nh := remove(r.NextHops, n)
		alt := remove(r.Alternates, n)
		if len(nh) != len(r.NextHops) || len(alt) != len(r.Alternates) {
			changed = true
		}
		if len(nh) == 0 {
			nh, alt = alt, nil
		}
		if len(nh) == 0 {
			continue
		}
		out[d] = Route{Cost: r.Cost, NextHops: nh, Alternates: alt}
	}
	return out, changed
}

// remove returns s without n, sharing s when n is absent.
func remove(s []uint64, n uint64) []uint64 {
	i, ok := slices.BinarySearch(s, n)
	if !ok {
		return s
	}
	out := make([]uint64, 0, len(s)-1)
	out = append(out, s[:i]...)
	out = append(out, s[i+1:]...)
	if len(out) == 0 {
		return nil
	}
	return out
}
