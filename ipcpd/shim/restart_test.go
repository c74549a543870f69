package shim_test

import (
	"context"
	"testing"

	"github.com/ouro-net/ouro/ipcpd/shim/wire"
	"github.com/ouro-net/ouro/lib/clock"
	"github.com/ouro-net/ouro/lib/namehash"
	"github.com/ouro-net/ouro/lib/pipe"
	"github.com/ouro-net/ouro/lib/qos"
)

// A request for a flow the requester has confirmed is not a lost "ok"
// to repeat: the requester restarted and reuses the eid. The old flow
// ends (its application reads the deallocation) and the request gets
// a new flow, not the old one.
func TestRequestForConfirmedFlowReplacesIt(t *testing.T) {
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
	old := b.acceptOne(t)
	b.eng.Input(mgmtFrame(b.mac, mac(0xee), wire.Msg{Type: wire.Confirm, Src: 1, Dst: ok.Src}))
	eventually(t, "confirmed", func() bool { return b.eng.Counters.ConfirmsIn.Load() == 1 })
	// The requester's IPCP restarts and hands out eid 1 again.
	b.eng.Input(req)
	expectKind(t, old, pipe.Dealloc)
	again := nextFinal(t, sniffer)
	if again.Status != wire.OK || again.Src == ok.Src || again.Dst != 1 {
		t.Fatalf("request for a confirmed flow answered %+v; the old flow's answer was %+v", again, ok)
	}
	b.acceptOne(t)
	if n := b.eng.Counters.AllocsRestarted.Load(); n != 1 {
		t.Fatalf("allocs-restarted-peer = %d", n)
	}
	eventually(t, "one flow", func() bool { return flowCount(b) == 1 })
	// Its repetitions (our "ok" lost) get the new flow's "ok" again.
	b.eng.Input(req)
	if m := nextFinal(t, sniffer); m.Status != wire.OK || m.Src != again.Src {
		t.Fatalf("repeated request answered %+v, want %+v", m, again)
	}
}

// A requester killed and started again on the same address (the
// failover bench's cut and restore of a lower IPCP) reuses the eid of
// its old flow, which the responder still holds: the new allocation
// gets a new flow at the responder, which works both ways.
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
	p, _, err := a2.alloc(ctx, "srv")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	expectKind(t, old, pipe.Dealloc)
	fresh := b.acceptOne(t)
	p.Write([]byte("two"))
	expectData(t, fresh, "two")
	fresh.Write([]byte("back"))
	expectData(t, p, "back")
	eventually(t, "old flow gone at B", func() bool { return flowCount(b) == 1 })
}
