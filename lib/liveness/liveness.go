// Package liveness is a failure detector for one neighbour that learns
// the neighbour's inter-arrival times, so it stays fast on a steady
// link and becomes patient with a jittery or starved one.
//
// The model is the simple cousin of the phi-accrual detector of
// Cassandra and Akka: the detector keeps an exponentially weighted mean
// and variance of the gaps between arrivals (any packet, not only
// hellos, proves the neighbour alive) and suspects the neighbour once
// the current silence exceeds
//
//	bound = clamp(max(mean + K × stddev, 1.5 × peak), Floor, Ceiling)
//
// where peak is the longest recent gap, halving every PeakHalfLife: the
// mean and variance of the last few gaps forget a long gap that comes
// back now and then (a loaded host's stall, among gaps of a millisecond
// on a busy link), the peak remembers it for a while. A neighbour that
// stalled once is given that much more patience for some seconds; one
// that never stalls is judged by the floor.
//
// Floor is the configured hello interval × multiplier: on a steady link
// (gaps of one interval, little spread) the bound is the floor, exactly
// the fixed detector it replaces, so silent failures are found as fast
// as before. Gaps that spread (a jittery link, a neighbour whose
// hellos come late because its host is loaded) raise the bound, up to
// Ceiling, so a slow host is not mistaken for a dead one; a cut is
// still found within Ceiling.
//
// A gap that was this host's own fault (its timer fired late: it was
// not running, so it could not read) is no evidence about the
// neighbour: Pause forgets it instead of learning it.
//
// A Detector holds no clock and starts no goroutine: callers pass the
// time (from the injected lib/clock), which makes it testable in
// virtual time. It is not safe for concurrent use.
//
// Session runs a Detector in demand mode, after BFD's (RFC 5880): an
// adjacency that carries this side's traffic is polled in the gaps of
// that traffic and judged by the Detector; an idle one exchanges a
// keepalive (Hello, carrying the sender's interval) every idle interval
// and is judged by that interval. Why not the fixed-rate hellos of
// before, adapted: every hello costs a few hundred microseconds of CPU
// across the processes it crosses, and detection only matters where
// traffic flows, where the traffic itself proves the neighbour alive.
// Idle links then cost almost nothing, and links that carry traffic
// can afford a detection floor of half the old one.
//
// A stall of this host (its own tick late) is discounted, not learned,
// and announced (the Starved flag) so that neighbours that suspended it
// meanwhile take it back. What a suspension means for routing (held
// before it is flooded, host or link) is the owner's business:
// ipcpd/unicast/live.go.
package liveness

import (
	"math"
	"time"
)

// Default parameters.
const (
	// DefaultK is how many standard deviations above the mean gap a
	// silence must last before the neighbour is suspected.
	DefaultK = 4
	// DefaultCeilingFactor is Ceiling as a multiple of Floor.
	DefaultCeilingFactor = 8
	// alpha is the weight of a new gap in the running mean and
	// variance (about the last 16 gaps count).
	alpha = 1.0 / 16
	// warmup is how many gaps are learned before they may raise the
	// bound above the floor.
	warmup = 8
	// PeakHalfLife is how fast the memory of the longest recent gap
	// fades.
	PeakHalfLife = 10 * time.Second
	// peakSlack is the bound as a multiple of the decayed peak.
	peakSlack = 1.5
)

// Detector learns one neighbour's arrivals. Make it with New.
type Detector struct {
	// Floor is the shortest bound (interval × multiplier).
	Floor time.Duration
	// Ceiling is the longest bound: a silence this long is always a
	// failure.
	Ceiling time.Duration
	// K is the number of standard deviations of slack.
	K float64

	last     time.Time
	mean, vr float64 // of the gaps, in nanoseconds
	peak     float64 // the longest recent gap, decaying
	peakAt   time.Time
	n        int
}

// New returns a detector whose bound is never shorter than floor,
// with DefaultK and a ceiling of DefaultCeilingFactor × floor, that
// counts the neighbour as heard at now.
func New(floor time.Duration, now time.Time) *Detector {
	return &Detector{Floor: floor, Ceiling: DefaultCeilingFactor * floor, K: DefaultK, last: now}
}

// Heard records that a packet from the neighbour arrived at t. Arrivals
// out of order (t before the last one) are ignored.
func (d *Detector) Heard(t time.Time) {
	if !t.After(d.last) {
		return
	}
	gap := float64(t.Sub(d.last))
	d.last = t
	if d.n == 0 {
		d.mean = gap
	} else {
		diff := gap - d.mean
		d.mean += alpha * diff
		d.vr = (1 - alpha) * (d.vr + alpha*diff*diff)
	}
	if d.peak > 0 {
		d.peak *= math.Exp2(-float64(t.Sub(d.peakAt)) / float64(PeakHalfLife))
	}
	d.peak, d.peakAt = max(gap, d.peak), t
	d.n++
}

// Pause tells the detector that this host was not running until now
// (its own timer fired late): the silence up to now proves nothing
// about the neighbour and is not learned as a gap.
func (d *Detector) Pause(now time.Time) {
	if now.After(d.last) {
		d.last = now
	}
}

// Forgive discounts d of the current silence (this host was not
// running for d: the neighbour's packets of that time wait unread), so
// that a neighbour silent for longer than that is still found. The gap
// is not learned.
func (d *Detector) Forgive(by time.Duration, now time.Time) {
	d.last = d.last.Add(by)
	if d.last.After(now) {
		d.last = now
	}
}

// Gaps returns how many gaps the detector learned.
func (d *Detector) Gaps() int { return d.n }

// Mean returns the running mean gap.
func (d *Detector) Mean() time.Duration { return time.Duration(d.mean) }

// Peak returns the longest recent gap as last recorded (its decay since
// the last arrival not applied).
func (d *Detector) Peak() time.Duration { return time.Duration(d.peak) }

// Last returns when the neighbour was last heard (or the last Pause).
func (d *Detector) Last() time.Time { return d.last }

// Bound returns the silence after which the neighbour is suspected.
func (d *Detector) Bound() time.Duration {
	if d.n < warmup {
		return d.Floor
	}
	b := time.Duration(max(d.mean+d.K*math.Sqrt(d.vr), peakSlack*d.peak))
	return min(max(b, d.Floor), max(d.Ceiling, d.Floor))
}

// Suspect reports whether the neighbour has been silent at now for
// longer than Bound.
func (d *Detector) Suspect(now time.Time) bool { return now.Sub(d.last) > d.Bound() }
