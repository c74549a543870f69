package frct

import (
	"math"
	"time"
)

// Congestion controller parameters; see the package documentation,
// section Congestion control, for the design and why.
const (
	ccInitialWindow = 10  // segments (RFC 6928)
	ccMinWindow     = 2   // segments: never below, and a packet may always go when nothing is in flight, so a flow never stalls
	ccLossBeta      = 0.7 // window kept on a loss (as CUBIC)
	ccRTOBeta       = 0.5 // window kept on a retransmission timeout
	ccMaxDelayCut   = 0.5 // largest share one delay decrease takes
	ccDCTCPGain     = 0.0625
	ccGainSlowStart = 2.0  // pacing gain in slow start (as Linux)
	ccGainAvoid     = 1.25 // pacing gain in congestion avoidance
	ccPaceQuantum   = time.Millisecond
	// ccQueueDelay: the queueing delay a flow may always keep, however
	// few packets of it that is (see controller.allowed).
	ccQueueDelay = time.Millisecond
	// ccProbeInterval: a flow whose base RTT was not confirmed for this
	// long drains its queue for a round trip to measure it again.
	ccProbeInterval = 2 * time.Second
	ccBaseEpoch     = 3 * time.Second // base RTT: the smallest sample of the last 3 to 6 s
	// ccSegment is the unit of the window, in bytes: a packet counts
	// as its size on the wire in segments, and at least one (see
	// Congestion control in the package documentation).
	ccSegment = 1500
)

// segments is what a packet of wire bytes counts in the window: one
// segment per ccSegment bytes, at least one.
func segments(wire int) float64 {
	if wire <= ccSegment {
		return 1
	}
	return float64(wire) / ccSegment
}

// controller is the congestion controller of a Conn's sender: a window
// in packets that keeps about queue packets of the flow in the
// bottleneck queue (Vegas-style, from the RTT above the base RTT),
// decreased multiplicatively on loss and on ECN echo (by the marked
// share, as DCTCP), increased by one packet per round trip while the
// flow's queue is below its share, with slow start at first. The
// window's rate, cwnd/SRTT times a gain, paces the packets. It holds no
// lock and reads no clock: the Conn calls it under c.mu with the time.
type controller struct {
	queue  float64 // packets of its own the flow aims to keep queued
	maxWnd float64

	cwnd      float64
	ssthresh  float64
	slowStart bool

	// base RTT: the smallest sample over two epochs of ccBaseEpoch;
	// a drain (probe) refreshes it when no sample confirmed it for
	// ccProbeInterval
	baseCur, basePrev time.Duration
	baseEpoch         time.Time
	baseSeen          time.Time
	probing           bool
	probeStart        time.Time
	probeMin          time.Duration
	probeCwnd         float64 // window to restore after the probe

	// round: ends when the cumulative ACK passes roundEnd
	roundEnd    uint32
	roundSum    time.Duration // RTT samples of packets sent after lastCut
	roundN      int
	roundAcked  int       // packets
	roundMarked int       // packets
	roundUnits  float64   // segments acknowledged
	cwndLimited bool      // the window, not the application, limited sending this round
	lastCut     time.Time // samples of packets sent before it do not count
	recoverSeq  uint32    // losses below it belong to the last cut
	rtoSeries   uint32    // recoverSeq of the last timeout
	// window before a series of timeouts, restored if they were spurious
	undoCwnd, undoSsthresh float64
	undoSlowStart          bool
	haveRecovery           bool

	alpha float64 // DCTCP's estimate of the marked share

	// pacing: a token bucket in segments
	rate   float64 // segments per second; 0: not paced yet (no RTT)
	tokens float64
	tokAt  time.Time

	stats ccStats

	bend *bender // path bending; nil when the lower cannot bend
}

// ccStats are the controller's counters.
type ccStats struct {
	lossCuts, ecnCuts, delayCuts, rtoCuts uint64
	marked, probes, rtoUndone             uint64
}

// newController makes a controller whose window never exceeds maxWnd
// segments.
func newController(maxWnd float64, queue int) *controller {
	maxW := maxWnd
	return &controller{
		queue:     float64(queue),
		maxWnd:    maxW,
		cwnd:      min(ccInitialWindow, maxW),
		ssthresh:  math.Inf(1),
		slowStart: true,
		tokens:    ccInitialWindow,
	}
}

// window is the number of segments the controller lets be in flight.
func (cc *controller) window() int { return max(int(cc.cwnd), 1) }

// base returns the base RTT, or 0 before any sample.
func (cc *controller) base() time.Duration {
	switch {
	case cc.basePrev == 0:
		return cc.baseCur
	case cc.baseCur == 0:
		return cc.basePrev
	}
	return min(cc.baseCur, cc.basePrev)
}

// onSample takes an RTT sample of a packet sent at sentAt.
func (cc *controller) onSample(now, sentAt time.Time, rtt time.Duration) {
	if rtt <= 0 {
		rtt = time.Nanosecond
	}
	if cc.baseEpoch.IsZero() || now.Sub(cc.baseEpoch) >= ccBaseEpoch {
		cc.basePrev, cc.baseCur, cc.baseEpoch = cc.baseCur, 0, now
	}
	if cc.baseCur == 0 || rtt < cc.baseCur {
		cc.baseCur = rtt
	}
	if b := cc.base(); rtt <= b+b/16 {
		cc.baseSeen = now
	}
	if cc.probing && sentAt.After(cc.probeStart) && (cc.probeMin == 0 || rtt < cc.probeMin) {
		cc.probeMin = rtt
	}
	if !sentAt.Before(cc.lastCut) {
		cc.roundSum += rtt
		cc.roundN++
	}
}

// probe runs at every round end. A flow that came to a queue others
// built takes their queue for part of its base RTT and would keep it
// standing; one whose path grew longer would see a queue that is not
// there. So a flow whose base was not confirmed for ccProbeInterval
// drains: it sends at the minimum window until a round of packets sent
// after the drain began comes back (their RTT samples feed the base
// like any other, and the smallest sample of the last 3-6 s is the
// base, so one drain that meets others' queue does no harm), then
// restores its window. A newcomer's drain empties what it queued and
// shows it the lower base; flows that drain at once see an empty
// queue, and the others confirm their base from the dip.
func (cc *controller) probe(now time.Time, srtt time.Duration) {
	switch {
	case !cc.probing && !cc.baseSeen.IsZero() && now.Sub(cc.baseSeen) >= ccProbeInterval:
		cc.probing, cc.probeStart, cc.probeMin = true, now, 0
		cc.probeCwnd = cc.cwnd
		cc.cwnd = ccMinWindow
		cc.stats.probes++
	case cc.probing && cc.probeMin > 0 && now.Sub(cc.probeStart) >= srtt:
		cc.probing = false
		cc.baseSeen = now
		cc.cwnd = max(cc.cwnd, cc.probeCwnd)
	}
}

// queued estimates how many of this flow's packets wait in the
// bottleneck queue, as Vegas does: the window times the share of the
// round's mean RTT that is queueing delay. The mean, not the minimum:
// a flow with fewer packets has fewer samples, and a minimum over fewer
// samples is larger, which would cut slow flows harder than fast ones.
// ok is false when the round gave no sample.
func (cc *controller) queued() (q float64, ok bool) {
	b := cc.base()
	if cc.roundN == 0 || b == 0 {
		return 0, false
	}
	r := (cc.roundSum / time.Duration(cc.roundN)).Seconds()
	return cc.cwnd * max(0, r-b.Seconds()) / r, true
}

// allowed is how many packets of its own the flow may keep queued: its
// share cc.queue, or, when more, what ccQueueDelay of queueing delay
// holds at its rate (the window over the round's mean RTT) less
// cc.queue. Where ccQueueDelay holds fewer than 2*cc.queue packets
// (below about 180 Mbit/s of 1400-byte packets) nothing changes; a
// faster flow may queue up to about ccQueueDelay, which a path whose
// cost is per packet and per wake-up (loopback, IPCP processes that
// batch what waits for them) needs to run at speed. Fairness holds: a
// flow above its allowance gives back half its excess, about
// r*(delay-T), proportional to its rate r (a multiplicative decrease),
// and a slower flow still aims at cc.queue packets, so it grows until
// every flow at the bottleneck has at least that rate.
func (cc *controller) allowed() float64 {
	if cc.roundN == 0 {
		return cc.queue
	}
	r := (cc.roundSum / time.Duration(cc.roundN)).Seconds()
	return max(cc.queue, cc.cwnd*ccQueueDelay.Seconds()/r-cc.queue)
}

// onAck is called for every ACK that advances the cumulative ACK:
// acked data packets, of units segments, left flight, ece tells whether
// the ACK echoes congestion experienced, una and nxt are the sender's
// edges after it.
func (cc *controller) onAck(now time.Time, acked int, units float64, ece bool, una, nxt uint32, srtt time.Duration) {
	cc.roundAcked += acked
	cc.roundUnits += units
	if cc.bend != nil {
		cc.bend.rtos = 0 // the path answers
	}
	if ece {
		cc.roundMarked += acked
		cc.stats.marked += uint64(acked)
	}
	if cc.haveRecovery && !seqLT(una, cc.recoverSeq) {
		cc.haveRecovery = false
	}
	if cc.slowStart {
		cc.grow(units)
	}
	if seqLT(una, cc.roundEnd) {
		cc.setRate(srtt)
		return
	}
	// A round ended: one decision for it.
	if cc.bend != nil {
		cc.bend.round(now, cc.roundMarked, cc.roundAcked, srtt)
	}
	cc.probe(now, srtt)
	if !cc.probing {
		cc.decide(now, nxt)
	}
	cc.roundEnd = nxt
	cc.roundSum, cc.roundN = 0, 0
	cc.roundAcked, cc.roundMarked, cc.roundUnits = 0, 0, 0
	cc.cwndLimited = false
	cc.setRate(srtt)
}

// decide adjusts the window at the end of a round: ECN echo first
// (DCTCP), then the flow's own queue against its share cc.queue.
func (cc *controller) decide(now time.Time, nxt uint32) {
	if cc.roundAcked > 0 {
		f := float64(cc.roundMarked) / float64(cc.roundAcked)
		cc.alpha = (1-ccDCTCPGain)*cc.alpha + ccDCTCPGain*f
	}
	if cc.roundMarked > 0 {
		if !cc.haveRecovery {
			cc.decrease(now, nxt, 1-max(cc.alpha, 1.0/16)/2)
			cc.stats.ecnCuts++
		}
		return
	}
	q, ok := cc.queued()
	allow := cc.allowed()
	switch {
	case !ok:
	case q > allow:
		// Too many packets of ours queued: give back half the excess
		// (at most ccMaxDelayCut of the window).
		cc.slowStart = false
		cc.cwnd = max(cc.cwnd-min((q-allow)/2, cc.cwnd*ccMaxDelayCut), ccMinWindow)
		cc.ssthresh = cc.cwnd
		cc.lastCut = now
		cc.stats.delayCuts++
	case !cc.slowStart:
		// Additive increase: one segment per round, less when fewer
		// segments than a window were acknowledged.
		cc.grow(min(1, cc.roundUnits/cc.cwnd) * cc.cwnd)
	}
}

// grow opens the window for acked packets: by as many in slow start,
// by one packet per window otherwise. Only a window that limited the
// sender grows, and never by more than the packets actually
// acknowledged, so ACK division or duplicate ACKs buy nothing.
func (cc *controller) grow(acked float64) {
	if acked <= 0 || !cc.cwndLimited || cc.probing {
		return
	}
	if cc.slowStart {
		cc.cwnd += acked
		if cc.cwnd >= cc.ssthresh {
			cc.slowStart = false
		}
	} else {
		cc.cwnd += acked / cc.cwnd
	}
	cc.cwnd = min(cc.cwnd, cc.maxWnd)
}

// decrease keeps share of the window and starts a recovery epoch:
// signals about packets sent before now cause no second decrease.
func (cc *controller) decrease(now time.Time, nxt uint32, share float64) {
	cc.cwnd = max(cc.cwnd*share, ccMinWindow)
	cc.ssthresh = cc.cwnd
	cc.slowStart = false
	cc.lastCut = now
	cc.recoverSeq = nxt
	cc.haveRecovery = true
	cc.roundSum, cc.roundN = 0, 0
}

// onLoss is called when a data packet seq is declared lost on SACK or
// duplicate-ACK evidence.
func (cc *controller) onLoss(now time.Time, seq, nxt uint32) {
	if cc.haveRecovery && seqLT(seq, cc.recoverSeq) {
		return
	}
	cc.decrease(now, nxt, ccLossBeta)
	cc.stats.lossCuts++
}

// onRTO is called when the retransmission timer expires.
// The window halves at each; the first of a series also halves the
// slow-start threshold, so once the path answers again slow start
// regrows the window to half of what it was before the outage.
func (cc *controller) onRTO(now time.Time, nxt uint32) {
	first := !cc.haveRecovery || cc.rtoSeries != cc.recoverSeq
	ss := cc.ssthresh
	if first {
		cc.undoCwnd, cc.undoSsthresh, cc.undoSlowStart = cc.cwnd, cc.ssthresh, cc.slowStart
		ss = max(cc.cwnd*ccRTOBeta, ccMinWindow)
	}
	cc.decrease(now, nxt, ccRTOBeta)
	cc.ssthresh = ss
	cc.slowStart = cc.cwnd < ss
	cc.rtoSeries = cc.recoverSeq
	cc.stats.rtoCuts++
}

// undoRTO restores the window a series of timeouts took when they
// prove spurious: the path only stalled (a scheduler, not a queue, held
// the ACKs), and nothing was lost.
func (cc *controller) undoRTO() {
	if cc.undoCwnd == 0 {
		return
	}
	cc.cwnd = max(cc.cwnd, cc.undoCwnd)
	cc.ssthresh, cc.slowStart = cc.undoSsthresh, cc.undoSlowStart
	cc.undoCwnd = 0
	cc.haveRecovery = false
	cc.stats.rtoUndone++
}

// setRate derives the pacing rate from the window and the smoothed RTT.
func (cc *controller) setRate(srtt time.Duration) {
	if srtt <= 0 {
		return
	}
	g := ccGainAvoid
	if cc.slowStart {
		g = ccGainSlowStart
	}
	cc.rate = g * cc.cwnd / srtt.Seconds()
}

// burst is the most segments the pacer lets go back to back.
func (cc *controller) burst() float64 {
	return max(ccMinWindow, min(cc.rate*ccPaceQuantum.Seconds(), cc.cwnd/2))
}

// refill adds the tokens earned since the last call.
func (cc *controller) refill(now time.Time) {
	if cc.rate == 0 {
		cc.tokAt = now
		return
	}
	if dt := now.Sub(cc.tokAt); dt > 0 {
		cc.tokens = min(cc.tokens+cc.rate*dt.Seconds(), max(cc.burst(), cc.tokens))
		cc.tokAt = now
	}
}

// paceWait returns how long the sender must wait before the next
// packet; 0 means it may send now. It waits for half a burst at a time
// so that a real clock is not asked for sub-packet sleeps.
func (cc *controller) paceWait(now time.Time) time.Duration {
	if cc.rate == 0 {
		return 0
	}
	cc.refill(now)
	if cc.tokens >= 1 {
		return 0
	}
	want := max(1, cc.burst()/2) - cc.tokens
	return max(time.Duration(want/cc.rate*float64(time.Second)), time.Microsecond)
}

// onSend takes a token for a new packet of one segment; limited tells
// whether the window is now full (the window, not the application,
// limits).
func (cc *controller) onSend(now time.Time, limited bool) { cc.onSendUnits(now, 1, limited) }

// onSendUnits is onSend for a packet of units segments: it takes that
// many tokens (the bucket may owe up to one packet's worth), so a large
// packet waits as long as the small ones it replaces.
func (cc *controller) onSendUnits(now time.Time, units float64, limited bool) {
	cc.refill(now)
	if cc.rate > 0 {
		cc.tokens -= units
		if cc.tokens < -units {
			cc.tokens = -units
		}
	}
	if limited {
		cc.cwndLimited = true
	}
}
