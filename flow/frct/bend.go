package frct

import (
	"math/rand/v2"
	"time"
)

// Bender is a Lower that can move the connection to another of the
// layer's equal-cost paths: Bend asks the layer to carry every packet
// written after it on path label (0..MaxLabel), which every hop hashes
// with the flow's key to pick among its equal next hops (path bending,
// FlowBender). It is called with the connection's lock held, so it
// must not block for long nor call back into the Conn.
type Bender interface {
	Lower
	Bend(label uint8) error
}

// MaxLabel is the largest path label (the unicast layer's dt.MaxLabel).
const MaxLabel = 15

// Path bending policy. A round trip counts as congested when at least
// bendShare of the packets it acknowledged came back with ECN echo;
// bendRounds congested round trips in a row, or a retransmission
// timeout, ask for a bend. After a bend the next one waits at least
// bendHold round trips; a bend asked for within four holds of the last
// one doubles the hold (up to bendHoldMax), so a flow between two
// congested paths bends ever more rarely instead of flapping, and a
// quiet spell brings the hold back to bendHold.
const (
	bendShare   = 0.25
	bendRounds  = 3
	bendHold    = 8
	bendHoldMax = 256
	bendMinRTT  = time.Millisecond // hold unit floor when the RTT is tiny or unknown
)

// bender decides when the connection changes its path label. Like the
// controller it has no lock and no clock: the Conn calls it under c.mu.
type bender struct {
	label  uint8
	run    int // congested round trips in a row
	rtos   int // timeouts in a row (no ACK advanced since the first)
	hold   int // current hold after a bend, in round trips
	next   time.Time
	last   time.Time
	rng    *rand.Rand
	due    bool   // a bend was decided and not yet handed to the lower
	bends  uint64 // bends made
	held   uint64 // bends asked for while held back
	failed uint64 // bends the lower refused
}

func newBender(seed uint64) *bender {
	return &bender{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// round takes a round trip's acknowledged and echoed packet counts and
// reports whether the connection should bend now.
func (b *bender) round(now time.Time, marked, acked int, srtt time.Duration) bool {
	if acked <= 0 {
		return false
	}
	if float64(marked) < bendShare*float64(acked) {
		b.run = 0
		return false
	}
	b.run++
	if b.run < bendRounds {
		return false
	}
	return b.try(now, srtt)
}

// try bends unless held back: picks a new label (never the current one)
// and sets the hold before the next bend.
func (b *bender) try(now time.Time, srtt time.Duration) bool {
	if now.Before(b.next) {
		b.held++
		return false
	}
	unit := max(srtt, bendMinRTT)
	if b.hold == 0 || now.Sub(b.last) > 4*time.Duration(b.hold)*unit {
		b.hold = bendHold
	} else {
		b.hold = min(2*b.hold, bendHoldMax)
	}
	b.last = now
	b.next = now.Add(time.Duration(b.hold) * unit)
	b.run = 0
	b.label = uint8((int(b.label) + 1 + b.rng.IntN(MaxLabel)) % (MaxLabel + 1))
	b.bends++
	b.due = true
	return true
}

// bendOnTimeoutLocked bends on the second retransmission timeout in a
// row (rate limited like any bend): the path may be broken or badly
// congested. Not on the first: on a loaded host most single timeouts
// are a late ACK (see the spurious-timeout undo), and bending on each
// moved healthy flows around for nothing.
func (c *Conn) bendOnTimeoutLocked(now time.Time) {
	b := c.cc.bend
	if b == nil {
		return
	}
	b.rtos++
	if b.rtos >= 2 {
		b.try(now, c.srtt)
		c.bendLocked()
	}
}

// bendLocked hands a decided bend to the lower flow. A refused bend is
// counted and otherwise ignored: the flow stays on its path, which
// still works as well as before. A bend never changes the connection's
// state.
func (c *Conn) bendLocked() {
	b := c.cc.bend
	if b == nil || !b.due {
		return
	}
	b.due = false
	if err := c.lower.(Bender).Bend(b.label); err != nil {
		b.failed++
	}
}
