package unicast_test

import (
	"testing"
	"time"

	"github.com/ouro-net/ouro/ipcpd/unicast"
	"github.com/ouro-net/ouro/lib/clock"
)

// TestFlapDamping is the one flap damping (adj.go: suspendAs, revive,
// holdTime) in virtual time, hello 10 ms x 10, damping 1 s: a first
// failure may return after two hellos of proof; each further one within
// a minute waits the damping interval, doubling up to 32 times; a short
// suspension for silence (congestion) does not count; a minute of quiet
// forgets the flaps; and with no other lower flow up nothing is held.
func TestFlapDamping(t *testing.T) {
	const hello, damping = 10 * time.Millisecond, time.Second
	fc := clock.NewFake(time.Unix(1000, 0))
	d, err := unicast.NewDamper(fc, hello, 10, damping)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	flap := func(hard bool) time.Duration {
		d.Suspend(hard)
		h := d.HoldTime()
		fc.Advance(h)
		d.Revive()
		fc.Advance(time.Second) // up for a while, then the next flap
		return h
	}
	want := []time.Duration{2 * hello, damping, 2 * damping, 4 * damping, 8 * damping, 16 * damping, 32 * damping, 32 * damping}
	for i, w := range want {
		if h := flap(true); h != w {
			t.Fatalf("flap %d (carrier loss): held %v, want %v", i+1, h, w)
		}
	}
	if n := d.Flaps(); n != len(want) {
		t.Fatalf("%d flaps counted, want %d", n, len(want))
	}

	// A suspension for silence that ends within 10 x multiplier hellos
	// (1 s) was congestion: it does not count.
	n := d.Flaps()
	d.Suspend(false)
	fc.Advance(500 * time.Millisecond)
	d.Revive()
	if d.Flaps() != n {
		t.Fatalf("a 500 ms silence counted as a flap: %d -> %d", n, d.Flaps())
	}
	// One that lasts longer does.
	d.Suspend(false)
	fc.Advance(2 * time.Second)
	d.Revive()
	if d.Flaps() != n+1 {
		t.Fatalf("a 2 s silence did not count: %d -> %d", n, d.Flaps())
	}

	// A minute of quiet forgets the flaps.
	fc.Advance(2 * time.Minute)
	if h := flap(true); h != 2*hello {
		t.Fatalf("first flap after a quiet minute: held %v, want %v", h, 2*hello)
	}
	if h := flap(true); h != damping {
		t.Fatalf("second flap after a quiet minute: held %v, want %v", h, damping)
	}

	// The only way out is never held back.
	d.SetOther(false)
	d.Suspend(true)
	if h := d.HoldTime(); h != 2*hello {
		t.Fatalf("with no other lower flow up: held %v, want %v", h, 2*hello)
	}
}
