package dt

import (
	"sync"
	"testing"
)

func TestCounters(t *testing.T) {
	var c Counters
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				c.In(10)
				c.Out(20)
				c.Drop(DropNoRoute)
				c.Drop(DropTTL)
				c.Drop(DropMalformed)
				c.Drop(DropQueueFull)
				c.Drop(DropReason(200)) // ignored
				c.Mark()
			}
		})
	}
	wg.Wait()
	want := CounterSnapshot{
		PacketsIn: 400, BytesIn: 4000, PacketsOut: 400, BytesOut: 8000,
		DropNoRoute: 400, DropTTL: 400, DropMalformed: 400, DropQueueFull: 400,
		ECNMarked: 400,
	}
	got := c.Snapshot()
	if got != want {
		t.Fatalf("Snapshot = %+v, want %+v", got, want)
	}
	if got.Drops() != 1600 {
		t.Fatalf("Drops = %d, want 1600", got.Drops())
	}
}

func TestDropReasonString(t *testing.T) {
	for r, want := range map[DropReason]string{
		DropNoRoute: "no-route", DropTTL: "ttl-expired", DropMalformed: "malformed",
		DropQueueFull: "queue-full", DropReason(9): "drop-reason(9)",
	} {
		if got := r.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", uint8(r), got, want)
		}
	}
}
