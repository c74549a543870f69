package shim

import (
	"sort"
	"time"

	"github.com/ouro-net/ouro/ipcpd/eth/frame"
)

// What a station on the segment can make this engine hold (see
// "Limits" in the package documentation). ipcpd/udp has the same names
// and the same admission type; a later change merges the two engines.
const (
	// MaxFlows bounds the incoming flows, in every state, in total.
	MaxFlows = 1024
	// MaxFlowsPerPeer bounds the incoming flows of one source MAC.
	MaxFlowsPerPeer = 64
	// MaxPending bounds the incoming flows not yet confirmed (waiting
	// for the IRMd, or answered and waiting for the requester's
	// Confirm), in total.
	MaxPending = 64
	// MaxPendingPerPeer bounds them per source MAC.
	MaxPendingPerPeer = 8
	// ConfirmTimeout is how long an answered flow waits for the
	// requester's Confirm before it is ended.
	ConfirmTimeout = 3 * time.Second
	// ConfirmRepeats is how many times a requester sends its Confirm
	// (one per sweep, the first at once).
	ConfirmRepeats = 3
)

// limits are the caps an admission enforces.
type limits struct {
	flows, flowsPerPeer, pending, pendingPerPeer int
}

// refusal says which cap an incoming flow hit.
type refusal int

const (
	admitted        refusal = iota
	fullFlows               // MaxFlows (or the strangers' half of it)
	fullPeerFlows           // MaxFlowsPerPeer
	fullPending             // MaxPending (or the strangers' half of it)
	fullPeerPending         // MaxPendingPerPeer
)

// srcUsage is what one source holds.
type srcUsage struct{ flows, pending int }

// admission counts incoming flows per source and in total, and admits
// a new one only within the caps. Sources listed as reserved (the
// configured peers) each have their per-source cap; everybody else (the
// strangers) together get at most half of each total, so a flood from
// many strangers cannot lock the configured peers out. With no
// reserved source the strangers may use all of it. Not safe for
// concurrent use: its owner's mutex guards it.
type admission[K comparable] struct {
	lim                        limits
	reserved                   map[K]bool
	flows, pending             int // totals
	strangerFlows, strangerPen int // the strangers' share of them
	per                        map[K]*srcUsage
}

func newAdmission[K comparable](lim limits, reserved []K) *admission[K] {
	a := &admission[K]{lim: lim, reserved: make(map[K]bool, len(reserved)), per: make(map[K]*srcUsage)}
	for _, k := range reserved {
		a.reserved[k] = true
	}
	return a
}

// strangerCap is the strangers' share of total.
func (a *admission[K]) strangerCap(total int) int {
	if len(a.reserved) == 0 {
		return total
	}
	return max(1, total/2)
}

// admit counts one new pending flow from k, or says which cap it hit.
func (a *admission[K]) admit(k K) refusal {
	u := a.per[k]
	stranger := !a.reserved[k]
	switch {
	case a.flows >= a.lim.flows || stranger && a.strangerFlows >= a.strangerCap(a.lim.flows):
		return fullFlows
	case u != nil && u.flows >= a.lim.flowsPerPeer:
		return fullPeerFlows
	case a.pending >= a.lim.pending || stranger && a.strangerPen >= a.strangerCap(a.lim.pending):
		return fullPending
	case u != nil && u.pending >= a.lim.pendingPerPeer:
		return fullPeerPending
	}
	if u == nil {
		u = &srcUsage{}
		a.per[k] = u
	}
	u.flows++
	u.pending++
	a.flows++
	a.pending++
	if stranger {
		a.strangerFlows++
		a.strangerPen++
	}
	return admitted
}

// confirm moves one flow of k from pending to confirmed.
func (a *admission[K]) confirm(k K) {
	u := a.per[k]
	if u == nil || u.pending == 0 {
		return
	}
	u.pending--
	a.pending--
	if !a.reserved[k] {
		a.strangerPen--
	}
}

// release forgets one flow of k, pending or not.
func (a *admission[K]) release(k K, pending bool) {
	u := a.per[k]
	if u == nil {
		return
	}
	if pending {
		a.confirm(k)
	}
	u.flows--
	a.flows--
	if !a.reserved[k] {
		a.strangerFlows--
	}
	if u.flows <= 0 {
		delete(a.per, k)
	}
}

// sourceUsage is one row of top.
type sourceUsage[K comparable] struct {
	key K
	srcUsage
}

// top returns the n sources holding the most flows.
func (a *admission[K]) top(n int, less func(x, y K) bool) []sourceUsage[K] {
	out := make([]sourceUsage[K], 0, len(a.per))
	for k, u := range a.per {
		out = append(out, sourceUsage[K]{k, *u})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].flows != out[j].flows {
			return out[i].flows > out[j].flows
		}
		return less(out[i].key, out[j].key)
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// sources is how many sources hold flows.
func (a *admission[K]) sources() int { return len(a.per) }

// Usage reports the incoming flows and the pending ones, in total and
// those of source src.
func (e *Engine) Usage(src frame.MAC) (flows, pending, srcFlows, srcPending int) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	flows, pending = e.adm.flows, e.adm.pending
	if u := e.adm.per[src]; u != nil {
		srcFlows, srcPending = u.flows, u.pending
	}
	return
}
