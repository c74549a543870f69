package unicast_test

import (
	"testing"
	"time"

	"github.com/ouro-net/ouro/dt"
	"github.com/ouro-net/ouro/ipcpd"
	"github.com/ouro-net/ouro/layer"
	"github.com/ouro-net/ouro/lib/pipe"
)

// TestRepeatedAnswerKeepsFlow: a requester that repeated its request
// (the first copy, or its answer, was slow: a next hop suspended under
// it) gets the acceptor's answer once per copy. The second answer,
// arriving once the allocation is done, is for the endpoint that is up,
// not a late answer to a requester that gave up: it must not be
// answered with a deallocation, which would end the acceptor's
// endpoint while ours keeps sending (every packet then "no endpoint"
// there: TestCarrierFailoverNetns under load).
func TestRepeatedAnswerKeepsFlow(t *testing.T) {
	loop, _, peer, _ := forwardLoopOverLocal(t)
	sent := make(chan layer.FAMsg, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := peer.Read(buf)
			if err != nil {
				return
			}
			if _, payload, err := dt.DefaultLayout().Decode(buf[1:n]); err == nil {
				if m, err := layer.DecodeFA(payload); err == nil {
					sent <- m
				}
			}
		}
	}()

	// Our endpoint 41 is up with acceptor endpoint 77 at member 2: the
	// answer to the first copy of the request set it up.
	ipcpEnd, appEnd, err := pipe.Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer ipcpEnd.Close()
	defer appEnd.Close()
	loop.AddEndpoint(41, 2, 77, &ipcpd.Flow{Pipe: ipcpEnd})
	// The answer to the repetition.
	if err := loop.Receive(layer.FAMsg{Type: layer.FAResponse, SrcAddr: 2, SrcEID: 77, DstEID: 41}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-sent:
		t.Fatalf("a repeated answer for an endpoint that is up was answered: %+v", m)
	case <-time.After(200 * time.Millisecond):
	}
	// An answer from another acceptor endpoint for the same eid is a
	// late one still: it gets its deallocation.
	if err := loop.Receive(layer.FAMsg{Type: layer.FAResponse, SrcAddr: 2, SrcEID: 78, DstEID: 41}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-sent:
		if m.Type != layer.FADealloc || m.SrcEID != 41 || m.DstEID != 78 {
			t.Fatalf("sent %+v, want a deallocation of endpoint 78", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no deallocation for a late answer")
	}
}
