package shim_test

import (
	"context"
	"testing"

	"github.com/ouro-net/ouro/ipcpd/eth/frame"
	"github.com/ouro-net/ouro/ipcpd/shim/wire"
	"github.com/ouro-net/ouro/lib/clock"
	"github.com/ouro-net/ouro/lib/namehash"
	"github.com/ouro-net/ouro/lib/pipe"
	"github.com/ouro-net/ouro/lib/qos"
)

// A request for a flow the requester has confirmed (or one ending
// here) is not a lost "ok" to repeat: it is answered "pending", not
// with the old flow.
func TestRequestForConfirmedFlowPending(t *testing.T) {
	h := &hub{}
	b := newStation(t, h, 0xb, clock.Real(), quick())
	sniffer := h.port()
	b.eng.Register("srv")
	req := mgmtFrame(b.mac, mac(0xee), wire.Msg{Type: wire.AllocReq, Src: 1, Hash: namehash.Of("srv"), QoS: qos.Raw()})
	b.eng.Input(req)
	ok := nextFinal(t, sniffer)
	if ok.Status != wire.OK {
		t.Fatalf("answer %+v", ok)
	}
	b.acceptOne(t)
	b.eng.Input(mgmtFrame(b.mac, mac(0xee), wire.Msg{Type: wire.Confirm, Src: 1, Dst: ok.Src}))
	eventually(t, "confirmed", func() bool { return b.eng.Counters.ConfirmsIn.Load() == 1 })
	// The requester's IPCP restarts and hands out eid 1 again.
	b.eng.Input(req)
	_, p, _ := frame.Decode(sniffer.next(t))
	if m, err := decodeMgmt(p); err != nil || m.Type != wire.AllocResp || m.Status != wire.Pending {
		t.Fatalf("request for a confirmed flow answered %+v %v, want pending", m, err)
	}
	if n := b.eng.Counters.AllocsStale.Load(); n != 1 {
		t.Fatalf("allocs-stale = %d", n)
	}
}

// A requester killed and started again on the same address (the
// failover bench's cut and restore of a lower IPCP) reuses the eid of
// its old flow, which the responder still holds: the new allocation
// must get a new flow, and the responder's deallocation of the old one
// must not end it.
func TestRestartedRequesterGetsNewFlow(t *testing.T) {
	h := &hub{}
	a := newStation(t, h, 0xa, clock.Real(), quick())
	b := newStation(t, h, 0xb, clock.Real(), quick())
	b.eng.Register("srv")
	ctx := context.Background()
	appA, _, err := a.alloc(ctx, "srv")
	if err != nil {
		t.Fatal(err)
	}
	defer appA.Close()
	old := b.acceptOne(t)
	appA.Write([]byte("one"))
	expectData(t, old, "one") // confirmed by data
	// A is killed: nothing of its goes out any more.
	a.port.cut.Store(true)
	a.eng.Close()
	a2 := newStation(t, h, 0xa, clock.Real(), quick())
	type result struct {
		p   *pipe.Pipe
		err error
	}
	done := make(chan result, 1)
	go func() {
		p, _, err := a2.alloc(ctx, "srv")
		done <- result{p, err}
	}()
	eventually(t, "new request seen", func() bool { return b.eng.Counters.AllocsIn.Load() >= 2 })
	// B's user of the old flow learns the peer is gone (unicast: by
	// keepalive) and deallocates it.
	old.Dealloc()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.p.Close()
	fresh := b.acceptOne(t)
	r.p.Write([]byte("two"))
	expectData(t, fresh, "two")
	fresh.Write([]byte("back"))
	expectData(t, r.p, "back")
	eventually(t, "old flow gone at B", func() bool { return flowCount(b) == 1 })
	// Still up after B's deallocation of the old flow is over.
	r.p.Write([]byte("three"))
	expectData(t, fresh, "three")
}
