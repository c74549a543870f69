package shim_test

import (
	"testing"
	"time"

	"github.com/ouro-net/ouro/ipcpd/shim"
	"github.com/ouro-net/ouro/ipcpd/shim/admit"
	"github.com/ouro-net/ouro/ipcpd/shim/wire"
	"github.com/ouro-net/ouro/lib/clock"
	"github.com/ouro-net/ouro/lib/namehash"
	"github.com/ouro-net/ouro/lib/qos"
)

// TestIdleSweeperSleeps: the sweeper's timer is armed only while a
// flow needs it. An idle engine arms no timer at all (an idle shim does
// not wake up); an incoming flow awaiting its confirmation arms it, it
// is ended after ConfirmTimeout in virtual time, and the engine goes
// quiet again.
func TestIdleSweeperSleeps(t *testing.T) {
	clk := clock.NewFake(time.Unix(1000, 0))
	h := &hub{}
	b := newStation(t, h, 0xb, clk, quick())
	sniffer := h.port()
	b.eng.Register("srv")
	clk.Advance(shim.SweepEvery)
	eventually(t, "no timer armed at idle", func() bool { return !b.eng.SweepArmed() && clk.Pending() == 0 })

	b.eng.Input(mgmtFrame(b.mac, mac(0xee), wire.Msg{Type: wire.AllocReq, Src: 1, Hash: namehash.Of("srv"), QoS: qos.Raw()}))
	if ok := nextFinal(t, sniffer); ok.Status != wire.OK {
		t.Fatalf("answer %+v", ok)
	}
	b.acceptOne(t)
	eventually(t, "the sweeper armed for the unconfirmed incoming flow", func() bool { return clk.Pending() >= 1 })
	for end := clk.Now().Add(admit.ConfirmTimeout + 2*shim.SweepEvery); clk.Now().Before(end); {
		eventually(t, "the sweeper armed", func() bool { return clk.Pending() >= 1 || b.eng.Counters.ExpiredUnconfirmed.Load() == 1 })
		clk.Advance(shim.SweepEvery)
	}
	eventually(t, "the unconfirmed flow ended", func() bool { return b.eng.Counters.ExpiredUnconfirmed.Load() == 1 })
	clk.Advance(shim.SweepEvery)
	eventually(t, "quiet again", func() bool { return !b.eng.SweepArmed() && clk.Pending() == 0 })
}
