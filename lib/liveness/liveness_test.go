package liveness

import (
	"math/rand"
	"testing"
	"time"

	"github.com/ouro-net/ouro/lib/clock"
)

const (
	iv    = 10 * time.Millisecond
	floor = 3 * iv
)

var start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// run feeds the detector arrivals separated by the gaps, on a virtual
// clock that a checker samples every millisecond, and returns how many
// times the neighbour was suspected while it was still sending.
func run(t *testing.T, clk *clock.Fake, d *Detector, gaps []time.Duration) (suspected int) {
	t.Helper()
	for _, g := range gaps {
		next := clk.Now().Add(g)
		for clk.Now().Before(next) {
			clk.Advance(time.Millisecond)
			if clk.Now().Before(next) && d.Suspect(clk.Now()) {
				suspected++
				break
			}
		}
		clk.Set(next)
		d.Heard(clk.Now())
	}
	return suspected
}

// cutAfter returns how long after the last arrival the detector
// suspects the neighbour once it goes silent.
func cutAfter(clk *clock.Fake, d *Detector) time.Duration {
	last := clk.Now()
	for !d.Suspect(clk.Now()) {
		clk.Advance(time.Millisecond)
	}
	return clk.Now().Sub(last)
}

func steady(n int) []time.Duration {
	g := make([]time.Duration, n)
	for i := range g {
		g[i] = iv
	}
	return g
}

// TestSteadyLink: hellos every interval are never suspected, and a cut
// is found just after the floor, as the fixed interval × multiplier
// detector found it.
func TestSteadyLink(t *testing.T) {
	clk := clock.NewFake(start)
	d := New(floor, clk.Now())
	if n := run(t, clk, d, steady(500)); n != 0 {
		t.Fatalf("steady link suspected %d times", n)
	}
	if b := d.Bound(); b != floor {
		t.Fatalf("bound on a steady link %v, want the floor %v", b, floor)
	}
	if got := cutAfter(clk, d); got != floor+time.Millisecond {
		t.Fatalf("cut found after %v, want %v", got, floor+time.Millisecond)
	}
}

// TestJitteryLink: gaps spread between 2 and 40 ms (some above the
// floor) are learned: after a warm-up the detector does not suspect the
// neighbour, whereas the fixed detector would, and a cut is still found
// within the ceiling.
func TestJitteryLink(t *testing.T) {
	clk := clock.NewFake(start)
	d := New(floor, clk.Now())
	rng := rand.New(rand.NewSource(1))
	gaps := make([]time.Duration, 600)
	fixed := 0
	for i := range gaps {
		gaps[i] = time.Duration(2+rng.Intn(19)) * time.Millisecond
		if i%10 == 9 {
			gaps[i] = 40 * time.Millisecond
		}
		if i >= 100 && gaps[i] > floor {
			fixed++
		}
	}
	run(t, clk, d, gaps[:100]) // warm-up: early gaps may be suspected
	if n := run(t, clk, d, gaps[100:]); n != 0 {
		t.Fatalf("jittery link suspected %d times after warm-up (a fixed %v detector: %d)", n, floor, fixed)
	}
	if fixed == 0 {
		t.Fatal("the test's gaps never exceed the floor: it proves nothing")
	}
	b := d.Bound()
	if b <= 40*time.Millisecond || b > d.Ceiling {
		t.Fatalf("bound %v, want above the 40ms gaps and at most the ceiling %v", b, d.Ceiling)
	}
	if got := cutAfter(clk, d); got > d.Ceiling+time.Millisecond {
		t.Fatalf("cut found after %v, beyond the ceiling %v", got, d.Ceiling)
	}
}

// TestStarvedHost: this host was not running for 200 ms (its timer
// fired late); Pause discounts the silence, so the neighbour is not
// suspected, and the gap is not learned: the bound stays at the floor
// and a later cut is found as fast as on a steady link.
func TestStarvedHost(t *testing.T) {
	clk := clock.NewFake(start)
	d := New(floor, clk.Now())
	run(t, clk, d, steady(100))
	clk.Advance(200 * time.Millisecond) // we were stopped: nothing read
	d.Pause(clk.Now())
	if d.Suspect(clk.Now()) {
		t.Fatal("neighbour suspected for this host's own starvation")
	}
	clk.Advance(iv)
	d.Heard(clk.Now()) // the queued hellos are read at once
	if n := run(t, clk, d, steady(50)); n != 0 {
		t.Fatalf("suspected %d times after the pause", n)
	}
	if b := d.Bound(); b != floor {
		t.Fatalf("bound %v after a pause, want the floor %v: the pause was learned", b, floor)
	}
	if got := cutAfter(clk, d); got != floor+time.Millisecond {
		t.Fatalf("cut found after %v, want %v", got, floor+time.Millisecond)
	}
}

// TestRealCut: a neighbour silent for good is suspected within the
// bound whatever was learned, and stays suspected.
func TestRealCut(t *testing.T) {
	for _, tc := range []struct {
		name string
		gaps []time.Duration
	}{
		{"steady", steady(200)},
		{"slow", func() []time.Duration { // a neighbour that was starved often
			g := steady(200)
			for i := 0; i < len(g); i += 4 {
				g[i] = 60 * time.Millisecond
			}
			return g
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := clock.NewFake(start)
			d := New(floor, clk.Now())
			run(t, clk, d, tc.gaps)
			b := d.Bound()
			if got := cutAfter(clk, d); got <= b || got > b+time.Millisecond || got > d.Ceiling+time.Millisecond {
				t.Fatalf("cut found after %v, want just after the bound %v (ceiling %v)", got, b, d.Ceiling)
			}
			clk.Advance(time.Second)
			if !d.Suspect(clk.Now()) {
				t.Fatal("no longer suspected after a second of silence")
			}
		})
	}
}

// TestOutOfOrder: an arrival dated before the last one changes nothing.
func TestOutOfOrder(t *testing.T) {
	d := New(floor, start)
	d.Heard(start.Add(iv))
	d.Heard(start)
	if d.Last() != start.Add(iv) || d.n != 1 {
		t.Fatalf("last %v n %d", d.Last(), d.n)
	}
}

// TestCeiling: however slow and spread the neighbour's arrivals, a
// silence of Ceiling is always a failure.
func TestCeiling(t *testing.T) {
	clk := clock.NewFake(start)
	d := New(floor, clk.Now())
	gaps := steady(200)
	for i := 0; i < len(gaps); i += 3 {
		gaps[i] = time.Second
	}
	run(t, clk, d, gaps)
	if b := d.Bound(); b != d.Ceiling {
		t.Fatalf("bound %v, want the ceiling %v", b, d.Ceiling)
	}
	if got := cutAfter(clk, d); got != d.Ceiling+time.Millisecond {
		t.Fatalf("cut found after %v, want just after the ceiling %v", got, d.Ceiling)
	}
}
