package perf

import (
	"testing"
	"time"
)

func TestPacerSpacing(t *testing.T) {
	t0 := time.Unix(0, 0)
	p := NewPacer(1000, t0)
	if n, _ := p.Due(t0); n != 1 {
		t.Fatalf("due at start: %d, want 1", n)
	}
	p.Sent(1)
	if n, wait := p.Due(t0); n != 0 || wait != time.Millisecond {
		t.Fatalf("after one: %d due, wait %v; want 0, 1ms", n, wait)
	}
	// Waking 10 ms late finds ten packets due: catch-up.
	if n, _ := p.Due(t0.Add(10 * time.Millisecond)); n != 10 {
		t.Fatalf("after 10 ms: %d due, want 10", n)
	}
	// Bursts are capped.
	if n, _ := p.Due(t0.Add(time.Second)); n != p.MaxBurst {
		t.Fatalf("after 1 s: %d due, want the %d cap", n, p.MaxBurst)
	}
}

func TestPacerUnpaced(t *testing.T) {
	p := NewPacer(0, time.Unix(0, 0))
	if n, wait := p.Due(time.Unix(0, 0)); n != p.MaxBurst || wait != 0 {
		t.Fatalf("unpaced: %d, %v", n, wait)
	}
}

// A sender that always oversleeps still holds the average rate.
func TestPacerCatchUp(t *testing.T) {
	t0 := time.Unix(0, 0)
	for _, late := range []time.Duration{0, 300 * time.Microsecond, 7 * time.Millisecond} {
		p := NewPacer(2000, t0)
		now := t0
		end := t0.Add(time.Second)
		wakeups := 0
		for now.Before(end) {
			n, wait := p.Due(now)
			if n == 0 {
				now = now.Add(wait + late)
				wakeups++
				continue
			}
			p.Sent(n)
		}
		// Only what fell due during the last oversleep may be missing.
		short := uint64(late.Seconds() * 2000)
		if got := p.Count(); got+short < 2000 || got > 2000 {
			t.Errorf("oversleeping by %v: sent %d in 1 s, want 2000 (less %d)", late, got, short)
		}
		if late > time.Millisecond && wakeups > 200 {
			t.Errorf("oversleeping by %v: %d wake-ups, want bursts", late, wakeups)
		}
	}
}
