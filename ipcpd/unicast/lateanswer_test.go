package unicast_test

import (
	"testing"
	"time"

	"github.com/ouro-net/ouro/dt"
	"github.com/ouro-net/ouro/ipcpd/unicast"
	"github.com/ouro-net/ouro/layer"
	"github.com/ouro-net/ouro/lib/clock"
)

// TestLateAnswerDeallocated: an allocation answer for a requester that
// gave up (no pending allocation for its endpoint) is answered with a
// deallocation to the acceptor's endpoint, sent DeallocCopies times
// DeallocGap apart; a refusal is not (there is nothing to release), and
// an answer someone waits for goes to them, not into a deallocation.
func TestLateAnswerDeallocated(t *testing.T) {
	loop, _, peer, _ := forwardLoopOverLocal(t)
	fc := clock.NewFake(time.Unix(1000, 0))
	loop.UseClock(fc)

	// What the IPCP sends towards address 2, decoded.
	sent := make(chan layer.FAMsg, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := peer.Read(buf)
			if err != nil {
				return
			}
			pci, payload, err := dt.DefaultLayout().Decode(buf[1:n])
			if err != nil || pci.Dst != 2 || pci.EID != 0 {
				t.Errorf("sent a packet that is no FA message to 2: %+v %v", pci, err)
				continue
			}
			m, err := layer.DecodeFA(payload)
			if err != nil {
				t.Errorf("FA message: %v", err)
				continue
			}
			sent <- m
		}
	}()
	expectDealloc := func(srcEID, dstEID uint64) {
		t.Helper()
		select {
		case m := <-sent:
			if m.Type != layer.FADealloc || m.SrcAddr != 1 || m.SrcEID != srcEID || m.DstEID != dstEID {
				t.Fatalf("sent %+v, want a deallocation from 1 endpoint %d to endpoint %d", m, srcEID, dstEID)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no deallocation sent")
		}
	}
	nothing := func(why string) {
		t.Helper()
		select {
		case m := <-sent:
			t.Fatalf("%s: sent %+v", why, m)
		case <-time.After(100 * time.Millisecond):
		}
	}

	// The late answer: requester endpoint 41 waits for nothing any more;
	// the acceptor made endpoint 77 for it.
	if err := loop.Receive(layer.FAMsg{Type: layer.FAResponse, SrcAddr: 2, SrcEID: 77, DstEID: 41}); err != nil {
		t.Fatal(err)
	}
	expectDealloc(41, 77)
	for range unicast.DeallocCopies - 1 {
		nothing("before the next copy is due")
		fc.Advance(unicast.DeallocGap)
		expectDealloc(41, 77)
	}
	fc.Advance(10 * unicast.DeallocGap)
	nothing("after the last copy")

	// A late refusal releases nothing.
	if err := loop.Receive(layer.FAMsg{Type: layer.FAResponse, SrcAddr: 2, DstEID: 42, Err: "no"}); err != nil {
		t.Fatal(err)
	}
	nothing("a late refusal")

	// An awaited answer goes to the waiting allocation.
	ch := loop.Await(43)
	if err := loop.Receive(layer.FAMsg{Type: layer.FAResponse, SrcAddr: 2, SrcEID: 78, DstEID: 43}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-ch:
		if m.SrcEID != 78 {
			t.Fatalf("awaited answer %+v", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the awaited answer did not arrive")
	}
	nothing("an awaited answer")
}
