package udp

import (
	"net/netip"
	"testing"
)

// TestAdmission checks the caps and the accounting of the admission:
// per source, in total, the strangers' half when peers are configured,
// and that confirm and release give back exactly what admit took.
func TestAdmission(t *testing.T) {
	peer := netip.MustParseAddrPort("127.0.0.1:1")
	s := func(i int) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.9"), uint16(i)) }
	a := newAdmission(limits{flows: 16, flowsPerPeer: 3, pending: 8, pendingPerPeer: 2}, []netip.AddrPort{peer})
	must := func(k netip.AddrPort, want refusal) {
		t.Helper()
		if got := a.admit(k); got != want {
			t.Fatalf("admit %s = %d, want %d (flows %d pending %d)", k, got, want, a.flows, a.pending)
		}
	}
	must(s(1), admitted)
	must(s(1), admitted)
	must(s(1), fullPeerPending) // 2 pending per source
	a.confirm(s(1))
	must(s(1), admitted)
	must(s(1), fullPeerFlows) // 3 flows per source
	a.confirm(s(1))
	a.confirm(s(1))
	// Strangers together get half of each total: 4 pending, 8 flows.
	for _, k := range []netip.AddrPort{s(2), s(2), s(3), s(3)} {
		must(k, admitted)
	}
	must(s(4), fullPending)
	for _, k := range []netip.AddrPort{s(2), s(2), s(3), s(3)} {
		a.confirm(k)
	}
	must(s(4), admitted) // the strangers' 8th flow
	must(s(5), fullFlows)
	// The configured peer still gets in.
	must(peer, admitted)
	must(peer, admitted)
	// Release gives everything back.
	for _, k := range []netip.AddrPort{s(1), s(1), s(1), s(2), s(2), s(3), s(3)} {
		a.release(k, false)
	}
	a.release(s(4), true)
	a.release(peer, true)
	a.release(peer, true)
	if a.flows != 0 || a.pending != 0 || a.strangerFlows != 0 || a.strangerPen != 0 || a.sources() != 0 {
		t.Fatalf("left after release: %+v", a)
	}
}
