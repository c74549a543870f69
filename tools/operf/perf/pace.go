package perf

import "time"

// Pacer spaces packets evenly at a rate. It is pure arithmetic on the
// times it is given: the caller sleeps for the wait it returns, then
// sends what is due. A sender that wakes up late finds several packets
// due and catches up (in bursts of at most MaxBurst), so the average
// rate holds without spinning.
type Pacer struct {
	rate  float64 // packets per second; 0: unpaced
	start time.Time
	sent  uint64
	// MaxBurst caps the packets Due returns at once (default 64), so
	// the caller gets to look at the clock between bursts.
	MaxBurst int
}

// NewPacer paces at rate packets per second from start; a rate of 0 or
// less means no pacing (everything is always due).
func NewPacer(rate float64, start time.Time) *Pacer {
	return &Pacer{rate: rate, start: start, MaxBurst: 64}
}

// Due returns how many packets are due at now, and when none is, how
// long until the next one.
func (p *Pacer) Due(now time.Time) (n int, wait time.Duration) {
	burst := max(p.MaxBurst, 1)
	if p.rate <= 0 {
		return burst, 0
	}
	elapsed := now.Sub(p.start)
	if elapsed < 0 {
		return 0, -elapsed
	}
	// Packet k (from 0) is due at start + k/rate.
	due := uint64(elapsed.Seconds()*p.rate) + 1
	if due > p.sent {
		return int(min(due-p.sent, uint64(burst))), 0
	}
	next := p.start.Add(time.Duration(float64(p.sent) / p.rate * float64(time.Second)))
	return 0, max(next.Sub(now), time.Microsecond)
}

// Sent records that n packets went out.
func (p *Pacer) Sent(n int) { p.sent += uint64(n) }

// Count returns the packets recorded as sent.
func (p *Pacer) Count() uint64 { return p.sent }
