// Package admit holds what the shim IPCPs (ipcpd/udp for udp4/udp6,
// ipcpd/shim for eth-dix and tap) share to bound what a stranger
// can make them hold: the caps on incoming flows and their defaults
// (MaxFlows, MaxPending, ...), the Admission that counts flows per
// source against those caps, the token Bucket their answer rate limits
// are made of (Answers, the budget itself), and the "limits" lines of `irm layer show`.
//
// An incoming flow is admitted as pending (waiting for the IRMd, or
// answered and waiting for the requester's confirmation), confirmed
// when the requester confirms it, and released when it ends. Sources
// listed as reserved (the configured peers of a udp shim) each have
// their per-source caps; all other sources, the strangers, together
// get at most half of each total, so that a flood from many strangers
// cannot lock the configured peers out. With no reserved source the
// strangers may use all of it.
//
// Nothing here is safe for concurrent use or reads a clock: the owner
// guards it with its mutex and passes the time in.
package admit

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

// The default caps of a shim IPCP (see the package documentation).
const (
	// MaxFlows bounds the incoming flows, in every state, in total.
	MaxFlows = 1024
	// MaxFlowsPerPeer bounds the incoming flows of one source.
	MaxFlowsPerPeer = 64
	// MaxPending bounds the incoming flows not yet confirmed (waiting
	// for the IRMd, or answered and waiting for the requester's
	// confirmation), in total.
	MaxPending = 64
	// MaxPendingPerPeer bounds them per source.
	MaxPendingPerPeer = 8
	// ConfirmTimeout is how long an answered flow waits for the
	// requester's confirmation before it is ended.
	ConfirmTimeout = 3 * time.Second
	// ConfirmRepeats is how many times a requester sends its
	// confirmation (the first at once, then one per retry or sweep).
	ConfirmRepeats = 3
)

// Limits are the caps an Admission enforces.
type Limits struct {
	Flows, FlowsPerPeer, Pending, PendingPerPeer int
}

// Default returns the default caps.
func Default() Limits {
	return Limits{Flows: MaxFlows, FlowsPerPeer: MaxFlowsPerPeer, Pending: MaxPending, PendingPerPeer: MaxPendingPerPeer}
}

// Refusal says which cap an incoming flow hit.
type Refusal int

// The outcomes of Admit.
const (
	Admitted        Refusal = iota
	FullFlows               // MaxFlows (or the strangers' half of it)
	FullPeerFlows           // MaxFlowsPerPeer
	FullPending             // MaxPending (or the strangers' half of it)
	FullPeerPending         // MaxPendingPerPeer
)

// Refused counts the refusals by cap; it is safe for concurrent use.
// `irm layer show` names them refused-flows-full,
// refused-peer-flows-full, refused-pending-full and
// refused-peer-pending-full.
type Refused struct {
	Flows, PeerFlows, Pending, PeerPending atomic.Uint64
}

// Count counts one refusal; Admitted counts nothing.
func (r *Refused) Count(why Refusal) {
	switch why {
	case FullFlows:
		r.Flows.Add(1)
	case FullPeerFlows:
		r.PeerFlows.Add(1)
	case FullPending:
		r.Pending.Add(1)
	case FullPeerPending:
		r.PeerPending.Add(1)
	}
}

// Usage is what one source, or all of them, hold.
type Usage struct{ Flows, Pending int }

// Admission counts incoming flows per source and in total, and admits
// a new one only within the caps.
type Admission[K comparable] struct {
	lim                        Limits
	reserved                   map[K]bool
	total                      Usage
	strangerFlows, strangerPen int // the strangers' share of total
	per                        map[K]*Usage
}

// New returns an Admission enforcing lim, with the reserved sources.
func New[K comparable](lim Limits, reserved []K) *Admission[K] {
	a := &Admission[K]{lim: lim, reserved: make(map[K]bool, len(reserved)), per: make(map[K]*Usage)}
	for _, k := range reserved {
		a.reserved[k] = true
	}
	return a
}

// Limits returns the caps a enforces.
func (a *Admission[K]) Limits() Limits { return a.lim }

// strangerCap is the strangers' share of total.
func (a *Admission[K]) strangerCap(total int) int {
	if len(a.reserved) == 0 {
		return total
	}
	return max(1, total/2)
}

// Admit counts one new pending flow from k, or says which cap it hit.
func (a *Admission[K]) Admit(k K) Refusal {
	u := a.per[k]
	stranger := !a.reserved[k]
	switch {
	case a.total.Flows >= a.lim.Flows || stranger && a.strangerFlows >= a.strangerCap(a.lim.Flows):
		return FullFlows
	case u != nil && u.Flows >= a.lim.FlowsPerPeer:
		return FullPeerFlows
	case a.total.Pending >= a.lim.Pending || stranger && a.strangerPen >= a.strangerCap(a.lim.Pending):
		return FullPending
	case u != nil && u.Pending >= a.lim.PendingPerPeer:
		return FullPeerPending
	}
	if u == nil {
		u = &Usage{}
		a.per[k] = u
	}
	u.Flows++
	u.Pending++
	a.total.Flows++
	a.total.Pending++
	if stranger {
		a.strangerFlows++
		a.strangerPen++
	}
	return Admitted
}

// Confirm moves one flow of k from pending to confirmed.
func (a *Admission[K]) Confirm(k K) {
	u := a.per[k]
	if u == nil || u.Pending == 0 {
		return
	}
	u.Pending--
	a.total.Pending--
	if !a.reserved[k] {
		a.strangerPen--
	}
}

// Release forgets one flow of k, pending or not.
func (a *Admission[K]) Release(k K, pending bool) {
	u := a.per[k]
	if u == nil {
		return
	}
	if pending {
		a.Confirm(k)
	}
	u.Flows--
	a.total.Flows--
	if !a.reserved[k] {
		a.strangerFlows--
	}
	if u.Flows <= 0 {
		delete(a.per, k)
	}
}

// Total is what all sources hold.
func (a *Admission[K]) Total() Usage { return a.total }

// Of is what source k holds.
func (a *Admission[K]) Of(k K) Usage {
	if u := a.per[k]; u != nil {
		return *u
	}
	return Usage{}
}

// Sources is how many sources hold flows.
func (a *Admission[K]) Sources() int { return len(a.per) }

// Source is one row of Top.
type Source[K comparable] struct {
	Key K
	Usage
}

// Top returns the n sources holding the most flows, ties broken by less.
func (a *Admission[K]) Top(n int, less func(x, y K) bool) []Source[K] {
	out := make([]Source[K], 0, len(a.per))
	for k, u := range a.per {
		out = append(out, Source[K]{k, *u})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Flows != out[j].Flows {
			return out[i].Flows > out[j].Flows
		}
		return less(out[i].Key, out[j].Key)
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// Show writes the "limits" line of `irm layer show` and, when any
// source holds flows, the "sources" line naming the top ones, each
// line starting with indent.
func (a *Admission[K]) Show(w io.Writer, indent string, confirm time.Duration, top int, less func(x, y K) bool) {
	lim := a.lim
	fmt.Fprintf(w, "%slimits   incoming flows %d of %d (%d per source), pending %d of %d (%d per source), confirm within %v\n",
		indent, a.total.Flows, lim.Flows, lim.FlowsPerPeer, a.total.Pending, lim.Pending, lim.PendingPerPeer, confirm)
	if n := a.Sources(); n > 0 {
		var rows []string
		for _, t := range a.Top(top, less) {
			rows = append(rows, fmt.Sprintf("%v %d (%d pending)", t.Key, t.Flows, t.Pending))
		}
		fmt.Fprintf(w, "%ssources  %d; most flows: %s\n", indent, n, strings.Join(rows, ", "))
	}
}

// Bucket is a token bucket; its owner guards it and passes the time.
type Bucket struct {
	tokens float64
	last   time.Time
}

// Allow takes a token if one is left, refilling at rate per second up
// to burst; a new bucket starts full.
func (b *Bucket) Allow(now time.Time, rate, burst float64) bool {
	if b.last.IsZero() {
		b.tokens = burst
	} else if el := now.Sub(b.last); el > 0 {
		b.tokens = min(burst, b.tokens+el.Seconds()*rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// The answer budget's shape (see Answers).
const (
	// DefaultAnswerRate is how many answers per second all sources
	// together get; DefaultAnswerBurst is that bucket's size.
	DefaultAnswerRate  = 1000
	DefaultAnswerBurst = 100
	// SourceShare: one source gets 1/SourceShare of the rate (and half
	// the burst).
	SourceShare = 10
	// MaxSources bounds the sources tracked with a bucket of their own.
	MaxSources = 1024
)

// Answers is the budget of the answers that create no state (query
// replies, refusals, deallocs of "ok"s for flows given up): each source
// has a bucket of 1/SourceShare of the rate and half the burst, so one
// noisy source cannot silence the others, and all sources but the
// reserved ones also draw on one shared bucket of the whole rate, so
// that many (forged) sources cannot make the shim answer more. At most
// MaxSources sources have a bucket; beyond, they are all forgotten at
// once (the shared bucket still bounds the answers). Its owner guards
// it and passes the time in.
type Answers[K comparable] struct {
	rate, burst float64
	reserved    map[K]*Bucket
	sources     map[K]*Bucket
	shared      Bucket
}

// NewAnswers returns a budget of rate answers per second, burst at
// once, in total; the reserved sources (configured peers) have their
// own bucket and do not draw on the shared one.
func NewAnswers[K comparable](rate, burst float64, reserved []K) *Answers[K] {
	a := &Answers[K]{rate: rate, burst: burst, reserved: make(map[K]*Bucket, len(reserved)), sources: make(map[K]*Bucket)}
	for _, k := range reserved {
		a.reserved[k] = &Bucket{}
	}
	return a
}

// Allow takes a token for one answer to src, or says there is none.
func (a *Answers[K]) Allow(now time.Time, src K) bool {
	rate, burst := a.rate/SourceShare, max(1, a.burst/2)
	if b := a.reserved[src]; b != nil {
		return b.Allow(now, rate, burst)
	}
	b := a.sources[src]
	if b == nil {
		if len(a.sources) >= MaxSources {
			clear(a.sources)
		}
		b = &Bucket{}
		a.sources[src] = b
	}
	return b.Allow(now, rate, burst) && a.shared.Allow(now, a.rate, a.burst)
}
