package routing

import (
	"fmt"
	"slices"
)

// NeighborUp reports an adjacency to n with the given cost (0 means 1).
// The router re-originates its LSU with the link, floods it, sends n a
// full database sync and schedules SPF. Calling it for a neighbour that
// is already up changes its cost if needed and syncs n again. Zero and
// self addresses are ignored. Flap damping is the caller's (the unicast
// IPCP holds a flapping lower flow back before it reports it up).
func (r *Router) NeighborUp(n uint64, cost uint32) {
	if n == 0 || n == r.cfg.Self {
		return
	}
	cost = max(cost, 1)
	r.mu.Lock()
	defer r.unlockApply()
	if r.closed {
		return
	}
	r.upLocked(n, cost)
}

func (r *Router) upLocked(n uint64, cost uint32) {
	i, up := r.linkIndex(n)
	switch {
	case !up:
		r.links = slices.Insert(r.links, i, Link{Neighbor: n, Cost: cost})
		r.originateLocked(n)
	case r.links[i].Cost != cost:
		r.links[i].Cost = cost
		r.originateLocked(n)
	}
	r.stats.Syncs++
	r.sendLocked(n, KindSync, r.exportLocked())
}

// NeighborDown reports that the adjacency to n is gone. At once, n
// leaves every next-hop set of the current table (alternates step in
// where n was the only next hop) and OnTable gets that table; the
// router floods a withdrawal (its LSU without n) and schedules SPF.
func (r *Router) NeighborDown(n uint64) {
	r.mu.Lock()
	defer r.unlockApply()
	if r.closed {
		return
	}
	i, up := r.linkIndex(n)
	if !up {
		return
	}
	r.links = slices.Delete(r.links, i, i+1)
	r.stats.Withdrawals++
	r.originateLocked(0)
	if t, changed := r.table.without(n); changed {
		r.table = t
		r.tableGen++
		r.tableOut = true
	}
}

// SetCost changes the cost of the adjacency to n (0 means 1), floods the
// new LSU and schedules SPF. Unknown neighbours are ignored.
func (r *Router) SetCost(n uint64, cost uint32) {
	cost = max(cost, 1)
	r.mu.Lock()
	defer r.unlockApply()
	if r.closed {
		return
	}
	if i, up := r.linkIndex(n); up && r.links[i].Cost != cost {
		r.links[i].Cost = cost
		r.originateLocked(0)
	}
}

// Receive handles a message from neighbour from. Newer LSUs are stored
// and flooded to every other neighbour, and SPF is scheduled if the
// topology changed; duplicates are counted; older ones are counted and
// answered with the newer copy; a flush (an LSU MaxAge old) removes the
// instance it names. An LSU of this router's own address with a
// sequence number at least as high as its own makes it jump past that
// number and re-originate, or flush and restart at MaxSeq. Malformed messages are counted and rejected
// with an error wrapping ErrMalformed, ErrUnknownVersion or ErrTooLarge.
func (r *Router) Receive(from uint64, msg []byte) error {
	m, derr := Decode(msg)
	r.mu.Lock()
	defer r.unlockApply()
	if r.closed {
		return ErrClosed
	}
	r.stats.MessagesReceived++
	if derr != nil {
		r.stats.Malformed++
		return fmt.Errorf("routing: receive from %d: %w", from, derr)
	}
	now := r.cfg.Clock.Now()
	var fresh, reply []LSU
	spf := false
	for _, l := range m.LSUs {
		r.stats.LSUsReceived++
		if l.Origin == r.cfg.Self {
			reply = r.ownLSULocked(l, reply)
			continue
		}
		v, changed := r.db.install(l, now)
		switch v {
		case accepted:
			r.stats.LSUsAccepted++
			fresh = append(fresh, l)
			spf = spf || changed
		case duplicate:
			r.stats.LSUsDuplicate++
		case stale:
			r.stats.LSUsStale++
			if cur, ok := r.db.get(l.Origin, now); ok {
				reply = append(reply, cur)
			}
		case purged:
			r.stats.Purged++
			fresh = append(fresh, l)
			spf = spf || changed
		case expired:
			r.stats.LSUsStale++
		case refused:
			r.stats.LSUsRefused++
		}
	}
	if len(fresh) > 0 {
		r.floodLocked(fresh, from)
		r.rearmAgeLocked()
	}
	if spf {
		r.scheduleSPFLocked()
	}
	if _, up := r.linkIndex(from); up && len(reply) > 0 {
		r.sendLocked(from, KindUpdate, reply)
	}
	return nil
}

// ownLSULocked handles a copy of this router's own LSU coming back. A
// newer copy (a previous incarnation, or a forgery), or one with our
// sequence number but other links, or a flush of our current one, makes
// the router re-originate above it; above MaxSeq there is nothing, so
// the router flushes and restarts. While a flush waits, copies are
// ignored.
func (r *Router) ownLSULocked(l LSU, reply []LSU) []LSU {
	cur, _ := r.db.get(r.cfg.Self, r.cfg.Clock.Now())
	flush := l.Age >= r.cfg.MaxAge
	switch {
	case r.flushing:
		r.stats.LSUsDuplicate++
	case l.Seq > r.seq || (l.Seq == r.seq && (flush || !slices.Equal(l.Links, cur.Links))):
		r.stats.LSUsStale++
		r.stats.OwnNewer++
		if l.Seq == MaxSeq {
			r.flushLocked()
			break
		}
		r.seq = l.Seq
		r.originateLocked(0)
	case l.Seq == r.seq:
		r.stats.LSUsDuplicate++
	default:
		r.stats.LSUsStale++
		reply = append(reply, cur)
	}
	return reply
}

// linkIndex returns where n is (or would be) in r.links.
func (r *Router) linkIndex(n uint64) (int, bool) {
	return slices.BinarySearchFunc(r.links, n, func(l Link, n uint64) int {
		switch {
		case l.Neighbor < n:
			return -1
		case l.Neighbor > n:
			return 1
		}
		return 0
	})
}
