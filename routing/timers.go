package routing

import "time"

// scheduleSPFLocked arms the hold-down unless a run is already armed or
// running; a run in progress re-arms itself if events arrived meanwhile.
func (r *Router) scheduleSPFLocked() {
	r.spfDirty = true
	if r.spfPending || r.closed {
		return
	}
	r.spfPending = true
	if r.spfTimer == nil {
		r.spfTimer = r.cfg.Clock.AfterFunc(r.cfg.HoldDown, r.runSPF)
	} else {
		r.spfTimer.Reset(r.cfg.HoldDown)
	}
}

// runSPF is the hold-down expiry: it recomputes the table from the
// database, hands it to OnTable, and re-arms if events arrived since.
// Runs are serialised, so OnTable sees SPF tables in order.
func (r *Router) runSPF() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.spfDirty = false
	now, start := r.cfg.Clock.Now(), time.Now()
	g := NewGraph(r.db.all(now))
	r.table = r.solver.table(g, r.cfg.Self, r.cfg.Policy)
	r.tableGen++
	r.tableOut = true
	r.stats.noteSPF(now, start)
	r.unlockApply()

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.spfDirty && !r.closed {
		r.spfTimer.Reset(r.cfg.HoldDown)
		return
	}
	r.spfPending = false
}

// refresh re-originates the router's LSU every RefreshInterval (same
// links, so no SPF).
func (r *Router) refresh() {
	r.mu.Lock()
	defer r.unlockApply()
	if r.closed {
		return
	}
	r.issueLocked(0)
	r.refreshTimer.Reset(r.refreshDelayLocked())
}

// refreshDelayLocked returns RefreshInterval shortened by up to 1/8, from
// a per-router pseudo-random sequence seeded by the address (so virtual
// time tests stay deterministic).
func (r *Router) refreshDelayLocked() time.Duration {
	// splitmix64
	r.rng += 0x9e3779b97f4a7c15
	z := r.rng
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	ri := r.cfg.RefreshInterval
	return ri - time.Duration(z%uint64(ri/8+1))
}

// rearmAgeLocked points the ageing timer at the next expiry.
func (r *Router) rearmAgeLocked() {
	next, ok := r.db.nextExpiry()
	if !ok || r.closed {
		if r.ageArmed {
			r.ageTimer.Stop()
			r.ageArmed = false
		}
		return
	}
	if r.ageArmed && r.ageAt.Equal(next) {
		return
	}
	d := max(0, next.Sub(r.cfg.Clock.Now()))
	if r.ageTimer == nil {
		r.ageTimer = r.cfg.Clock.AfterFunc(d, r.age)
	} else {
		r.ageTimer.Reset(d)
	}
	r.ageArmed, r.ageAt = true, next
}

// age removes the members whose LSU reached MaxAge.
func (r *Router) age() {
	r.mu.Lock()
	defer r.unlockApply()
	if r.closed {
		return
	}
	r.ageArmed = false
	gone := r.db.expire(r.cfg.Clock.Now())
	if len(gone) > 0 {
		r.stats.AgedOut += uint64(len(gone))
		r.scheduleSPFLocked()
	}
	r.rearmAgeLocked()
}
