package shim_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ouro-net/ouro/ipcpd/eth/frame"
	"github.com/ouro-net/ouro/ipcpd/shim/shimtest"
	"github.com/ouro-net/ouro/ipcpd/shim/wire"
	"github.com/ouro-net/ouro/lib/clock"
	"github.com/ouro-net/ouro/lib/namehash"
	"github.com/ouro-net/ouro/lib/pipe"
)

// startEthFlooder floods victim with allocation requests from src on
// a port of its own on the hub (shimtest.Flooder); with confirm set it
// confirms every OK.
func startEthFlooder(t *testing.T, h *hub, victim, src frame.MAC, name string, confirm bool) *shimtest.Flooder {
	t.Helper()
	p, done := h.port(), make(chan struct{})
	hdr := frame.Header{Dst: victim, Src: src, EtherType: etype}
	med := shimtest.Medium{
		Send: func(msg []byte) (int, error) {
			b := frame.Append(nil, hdr, msg)
			return len(b), p.WriteFrame(b)
		},
		Recv: func() ([]byte, int, bool) {
			for {
				select {
				case b := <-p.in:
					if hd, msg, err := frame.Decode(b); err == nil && hd.Dst == src && hd.EID == frame.MgmtEID {
						return msg, len(b), true
					}
				case <-done:
					return nil, 0, false
				}
			}
		},
		Close: func() { close(done) },
	}
	return shimtest.Start(t, med, wire.Msg{Type: wire.AllocReq, Hash: namehash.Of(name), MTU: 1400}, maxEthEID, 32, confirm)
}

// maxEthEID is the largest eid an Ethernet frame carries.
const maxEthEID = 0xFFFF

// sourceLine reports whether Show names src.
func sourceLine(text string, src frame.MAC) bool { return strings.Contains(text, src.String()) }

// TestAllocFlood floods a station with allocation requests from one
// MAC, first never confirming, then confirming every OK, while another
// station allocates and exchanges data: the caps hold, refusals and
// expiries are counted, the honest flow works, Show answers, and the
// flooder gets no more bytes back than it sent.
func TestAllocFlood(t *testing.T) {
	h := &hub{}
	timers := quick()
	timers.MaxFlows, timers.MaxFlowsPerPeer, timers.MaxPending, timers.MaxPendingPerPeer = 24, 10, 12, 4
	timers.ConfirmTimeout = 400 * time.Millisecond
	b := newStation(t, h, 0xb, clock.Real(), timers)
	b.eng.Register("srv")
	// The accepting application: echoes until the flow ends.
	var echo shimtest.Echoer
	stopServe := shimtest.Accept(&echo, b.accepted, func(p *pipe.Pipe) *pipe.Pipe { return p })
	t.Cleanup(func() { stopServe(); b.eng.Close(); echo.Wait() })

	st := func() (flows, pending, srcFlows, srcPending int, text string) {
		text = b.eng.Show()
		flows, pending, srcFlows, srcPending = b.eng.Usage(mac(0xee))
		return
	}
	check := func(what string) {
		t.Helper()
		flows, pending, f, p, text := st()
		if flows > timers.MaxFlows || pending > timers.MaxPending || f > timers.MaxFlowsPerPeer || p > timers.MaxPendingPerPeer {
			t.Fatalf("%s: caps broken: %d flows, %d pending, source %d/%d\n%s", what, flows, pending, f, p, text)
		}
	}
	c := &b.eng.Counters

	fl := startEthFlooder(t, h, b.mac, mac(0xee), "srv", false)
	eventually(t, "refusals under the flood", func() bool {
		check("unconfirmed flood")
		return c.Refused.PeerPending.Load() > 0 && fl.OKs.Load() > 0
	})
	a := newStation(t, h, 0xa, clock.Real(), quick())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	app, _, err := a.alloc(ctx, "srv")
	if err != nil {
		t.Fatalf("honest allocation during the flood: %v", err)
	}
	defer app.Close()
	app.Write([]byte("hello"))
	expectData(t, app, "hello")
	if text := b.eng.Show(); !strings.Contains(text, "limits   incoming flows") || !sourceLine(text, mac(0xee)) {
		t.Fatalf("show during the flood:\n%s", text)
	}
	eventually(t, "unconfirmed flows to expire", func() bool {
		check("unconfirmed flood")
		return c.ExpiredUnconfirmed.Load() > 0
	})
	fl.Halt()
	eventually(t, "the flooder's flows to go", func() bool {
		_, _, f, _, _ := st()
		return f == 0
	})

	fl2 := startEthFlooder(t, h, b.mac, mac(0xee), "srv", true)
	eventually(t, "the confirming flooder to reach its cap", func() bool {
		check("confirming flood")
		_, _, f, _, _ := st()
		return f == timers.MaxFlowsPerPeer && c.Refused.PeerFlows.Load() > 0
	})
	app.Write([]byte("again"))
	expectData(t, app, "again")
	app2, _, err := a.alloc(ctx, "srv")
	if err != nil {
		t.Fatalf("second honest allocation: %v", err)
	}
	app2.Close()
	check("confirming flood")
	fl2.Halt()
	for _, f := range []*shimtest.Flooder{fl, fl2} {
		if err := f.Amplified(); err != nil {
			t.Error(err)
		}
	}
	t.Logf("flood 1: %s; flood 2: %s", fl, fl2)
	t.Logf("counters: %s", c.String())
	if c.ConfirmsIn.Load() == 0 {
		t.Error("no confirmation counted")
	}
}

// TestBusyIsRetried: an honest burst of allocations beyond the
// responder's pending cap is not refused for good: Busy makes the
// requester repeat its request, and every allocation completes.
func TestBusyIsRetried(t *testing.T) {
	h := &hub{}
	tb := quick()
	tb.MaxPending, tb.MaxPendingPerPeer = 2, 1
	b := newStation(t, h, 0xb, clock.Real(), tb)
	b.eng.Register("srv")
	ta := quick()
	ta.AllocRetry = 20 * time.Millisecond
	a := newStation(t, h, 0xa, clock.Real(), ta)
	const n = 6
	shimtest.AllocBurst(t, n, func() error {
		app, _, err := a.alloc(context.Background(), "srv")
		if err == nil {
			t.Cleanup(func() { app.Close() })
		}
		return err
	})
	if b.eng.Counters.Refused.PeerPending.Load() == 0 {
		t.Log("the burst never hit the pending cap (nothing retried)")
	}
	for range n {
		b.acceptOne(t)
	}
}
