package admit

import (
	"net/netip"
	"testing"
	"time"
)

// TestAdmission checks the caps and the accounting of the admission:
// per source, in total, the strangers' half when peers are configured,
// and that confirm and release give back exactly what admit took.
func TestAdmission(t *testing.T) {
	peer := netip.MustParseAddrPort("127.0.0.1:1")
	s := func(i int) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.9"), uint16(i)) }
	a := New(Limits{Flows: 16, FlowsPerPeer: 3, Pending: 8, PendingPerPeer: 2}, []netip.AddrPort{peer})
	must := func(k netip.AddrPort, want Refusal) {
		t.Helper()
		if got := a.Admit(k); got != want {
			t.Fatalf("admit %s = %d, want %d (flows %d pending %d)", k, got, want, a.total.Flows, a.total.Pending)
		}
	}
	must(s(1), Admitted)
	must(s(1), Admitted)
	must(s(1), FullPeerPending) // 2 pending per source
	a.Confirm(s(1))
	must(s(1), Admitted)
	must(s(1), FullPeerFlows) // 3 flows per source
	a.Confirm(s(1))
	a.Confirm(s(1))
	// Strangers together get half of each total: 4 pending, 8 flows.
	for _, k := range []netip.AddrPort{s(2), s(2), s(3), s(3)} {
		must(k, Admitted)
	}
	must(s(4), FullPending)
	for _, k := range []netip.AddrPort{s(2), s(2), s(3), s(3)} {
		a.Confirm(k)
	}
	must(s(4), Admitted) // the strangers' 8th flow
	must(s(5), FullFlows)
	// The configured peer still gets in.
	must(peer, Admitted)
	must(peer, Admitted)
	// Release gives everything back.
	for _, k := range []netip.AddrPort{s(1), s(1), s(1), s(2), s(2), s(3), s(3)} {
		a.Release(k, false)
	}
	a.Release(s(4), true)
	a.Release(peer, true)
	a.Release(peer, true)
	if a.total != (Usage{}) || a.strangerFlows != 0 || a.strangerPen != 0 || a.Sources() != 0 {
		t.Fatalf("left after release: %+v", a)
	}
}

// TestBucket checks that a bucket starts full, runs dry and refills at
// its rate, on a clock passed in.
func TestBucket(t *testing.T) {
	var b Bucket
	now := time.Unix(1000, 0)
	for i := range 3 {
		if !b.Allow(now, 10, 3) {
			t.Fatalf("token %d refused from a full bucket", i)
		}
	}
	if b.Allow(now, 10, 3) {
		t.Fatal("a dry bucket allowed")
	}
	if !b.Allow(now.Add(100*time.Millisecond), 10, 3) {
		t.Fatal("no token after 100 ms at 10/s")
	}
	if b.Allow(now.Add(100*time.Millisecond), 10, 3) {
		t.Fatal("a second token after 100 ms at 10/s")
	}
	now = now.Add(time.Hour)
	for range 3 {
		b.Allow(now, 10, 3)
	}
	if b.Allow(now, 10, 3) {
		t.Fatal("the bucket held more than its burst")
	}
}

// TestRefusedCounts: each refusal lands on its cap's counter.
func TestRefusedCounts(t *testing.T) {
	var r Refused
	for _, why := range []Refusal{Admitted, FullFlows, FullPeerFlows, FullPeerFlows, FullPending, FullPeerPending, FullPeerPending, FullPeerPending} {
		r.Count(why)
	}
	if r.Flows.Load() != 1 || r.PeerFlows.Load() != 2 || r.Pending.Load() != 1 || r.PeerPending.Load() != 3 {
		t.Fatalf("counted %d %d %d %d, want 1 2 1 3", r.Flows.Load(), r.PeerFlows.Load(), r.Pending.Load(), r.PeerPending.Load())
	}
}

// TestAnswers: a source gets half the burst, a reserved source its own
// bucket outside the shared one, and many sources together no more
// than the shared burst, however many there are.
func TestAnswers(t *testing.T) {
	now := time.Unix(1000, 0)
	a := NewAnswers(1000, 100, []int{-1})
	count := func(src, n int) (ok int) {
		for range n {
			if a.Allow(now, src) {
				ok++
			}
		}
		return ok
	}
	if got := count(1, 1000); got != 50 {
		t.Fatalf("one source got %d answers, want half the burst (50)", got)
	}
	total := 50
	for src := 2; src < 3*MaxSources; src++ {
		total += count(src, 10)
	}
	if total != 100 {
		t.Fatalf("%d sources got %d answers, want the shared burst (100)", 3*MaxSources, total)
	}
	if got := count(-1, 1000); got != 50 {
		t.Fatalf("the reserved source got %d answers with the shared bucket empty, want 50", got)
	}
	now = now.Add(time.Second)
	if got := count(1, 1000); got != 50 {
		t.Fatalf("after a second: %d answers, want 50 again", got)
	}
	if len(a.sources) > MaxSources {
		t.Fatalf("%d sources tracked, cap %d", len(a.sources), MaxSources)
	}
}
