package unicast_test

import (
	"testing"
	"time"

	"github.com/ouro-net/ouro/ipcpd/unicast"
	"github.com/ouro-net/ouro/lib/clock"
)

// TestManagementBurstStaysIdle is the grid's cause of false downs at
// idle (bench -grid 49: 108 of 114 in 60 s, all "active"): the
// management traffic of an idle layer (routing and directory refresh
// floods, and the acknowledgements of each) made an adjacency active,
// so for Fast x Mult after each burst its peer was polled and judged
// by the active bound (15 ms), and a loaded peer's answer that came
// later was a false down. Management frames are resent by their ARQ
// and need no fast detection: after a burst of them the adjacency
// stays idle, and 40 ms of silence is nothing. Data does make it
// active: the same silence after one data packet is a suspension.
// Virtual time; the peer never answers a poll.
func TestManagementBurstStaysIdle(t *testing.T) {
	p, fc := newProbe(t)
	// silence ticks the flow on time for d with no word from the peer.
	silence := func(d time.Duration) {
		end := fc.Now().Add(d)
		for fc.Now().Before(end) && p.Up() {
			fc.Advance(min(p.Tick(), time.Millisecond))
		}
	}
	p.Tick()
	fc.Advance(100 * time.Millisecond)
	p.Heard() // the peer's idle keepalive
	for range 3 {
		for range 5 {
			p.SendMgmt()
		}
		silence(40 * time.Millisecond)
		if !p.Up() {
			t.Fatal("an idle adjacency was suspended 40 ms after a burst of management frames")
		}
		fc.Advance(30 * time.Millisecond)
		p.Heard()
	}
	if !p.SendData() {
		t.Fatal("the data packet did not leave")
	}
	silence(40 * time.Millisecond)
	if p.Up() {
		t.Fatal("an adjacency carrying data was not suspended after 40 ms of silence")
	}
}

// TestCrossPollFindsSilentLink is the silent cut of the busy one of
// two flows to the same peer, the other idle (a hello every 250 ms, so
// not heard within a poll interval): the first unanswered poll on the
// busy flow polls the peer on the idle one too, the peer answers
// there, and that link evidence suspends the busy flow after two polls,
// well before the detector's 15 ms floor. Virtual time; the peer
// answers a poll on the idle flow at the next millisecond.
func TestCrossPollFindsSilentLink(t *testing.T) {
	p, fc := newProbe(t)
	p.SiblingToSamePeer(fc.Now().Add(-200 * time.Millisecond))
	// A steady 1 ms stream both ways on the busy flow.
	for range 200 {
		if !p.SendData() {
			t.Fatal("a data packet did not leave")
		}
		fc.Advance(time.Millisecond)
		p.Heard()
		p.Tick()
	}
	if p.SiblingPolled() {
		t.Fatal("the idle flow was polled while the busy one was heard")
	}
	// The cut: data still goes out, nothing comes back on the busy flow.
	cut := fc.Now()
	answer := false
	for p.Up() && fc.Now().Sub(cut) < 100*time.Millisecond {
		p.SendData()
		fc.Advance(time.Millisecond)
		if answer {
			p.SiblingHeard()
			answer = false
		}
		p.Tick()
		if p.SiblingPolled() {
			answer = true
		}
	}
	if p.Up() {
		t.Fatal("the silent flow was never suspended")
	}
	if took := fc.Now().Sub(cut); took >= 15*time.Millisecond {
		t.Fatalf("the silent flow was suspended %v after the cut: by the detector's bound, not by link evidence (want under 15ms)", took)
	}
}

// newProbe returns a LiveProbe over a raw lower flow of a local IPCP
// (its far end is never read from) on a fake clock, closed at the
// test's cleanup.
func newProbe(t *testing.T) (*unicast.LiveProbe, *clock.Fake) {
	t.Helper()
	lowers, _ := lowerPairs(t, 1)
	lowers[0].SetWriteDeadline(time.Now().Add(30 * time.Second))
	fc := clock.NewFake(time.Unix(1000, 0))
	p, err := unicast.NewLiveProbe(fc, lowers[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p, fc
}
