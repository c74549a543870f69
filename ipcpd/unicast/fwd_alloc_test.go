package unicast_test

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestForwardNoAlloc: the forwarding loop (receiveFrame, receiveDT,
// forwardTo, deliverTo and flush, as readAdj runs them) does not
// allocate per packet, neither forwarding to a lower flow nor delivering
// to a local endpoint. The lower flow is a real one (a local layer), so
// the batch write to its channel is measured too.
func TestForwardNoAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector (.ci/run runs this test without -race)")
	}
	loop, lower, peer, epApp := forwardLoopOverLocal(t)
	var forwarded, delivered atomic.Int64
	drained := make(chan struct{}, 2)
	drain := func(read func([]byte) error, n *atomic.Int64) {
		defer func() { drained <- struct{}{} }()
		buf := make([]byte, 2048)
		for read(buf) == nil {
			n.Add(1)
		}
	}
	go drain(func(b []byte) error { _, err := peer.Read(b); return err }, &forwarded)
	go drain(func(b []byte) error { _, _, err := epApp.Read(b); return err }, &delivered)
	const runs = 1000
	allocs := testing.AllocsPerRun(runs, loop.Step)
	// A burst the far end does not read at once queues in the
	// adjacency's egress scheduler, which forwards it a moment later.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		fwd, local, dropped := loop.Counts()
		if fwd == runs+1 && local == runs+1 && dropped == 0 {
			break
		}
		if time.Now().After(deadline) || dropped != 0 {
			t.Fatalf("forwarded %d, delivered %d, dropped %d; want %d, %d, 0", fwd, local, dropped, runs+1, runs+1)
		}
	}
	if allocs != 0 {
		t.Fatalf("%v allocations per forwarded and delivered packet pair, want 0", allocs)
	}
	// What left arrived: the far end of the lower flow and the
	// endpoint's application read every packet.
	for deadline := time.Now().Add(10 * time.Second); forwarded.Load() != runs+1 || delivered.Load() != runs+1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the far ends read %d forwarded and %d delivered packets, want %d each", forwarded.Load(), delivered.Load(), runs+1)
		}
	}
	lower.Close()
	peer.Close()
	epApp.Close()
	<-drained
	<-drained
}
