package shim_test

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ouro-net/ouro/ipcpd/eth/frame"
	"github.com/ouro-net/ouro/ipcpd/shim"
	"github.com/ouro-net/ouro/lib/clock"
	"github.com/ouro-net/ouro/lib/pipe"
)

func TestQueryAllocDataDealloc(t *testing.T) {
	base := runtime.NumGoroutine()
	h := &hub{}
	a := newStation(t, h, 0xa, clock.Real(), quick())
	b := newStation(t, h, 0xb, clock.Real(), quick())
	b.eng.Register("srv")
	ctx := context.Background()

	if ok, err := a.eng.Query(ctx, "srv"); !ok || err != nil {
		t.Fatalf("query srv = %v %v", ok, err)
	}
	if ok, err := a.eng.Query(ctx, "nobody"); ok || err != nil {
		t.Fatalf("query nobody = %v %v", ok, err)
	}
	// A station does not answer for its own names: Query is about the wire.
	if ok, _ := b.eng.Query(ctx, "srv"); ok {
		t.Fatal("b found its own name on the wire")
	}
	appA, mtu, err := a.alloc(ctx, "srv")
	if err != nil {
		t.Fatal(err)
	}
	if mtu != 1500-frame.Overhead {
		t.Fatalf("mtu = %d", mtu)
	}
	appB := b.acceptOne(t)
	if err := appA.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	expectData(t, appB, "ping")
	if err := appB.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	expectData(t, appA, "pong")
	// Small payloads and empty ones keep their length.
	appA.Write([]byte{})
	expectData(t, appB, "")
	// A packet over the MTU is dropped and counted, not sent.
	appA.Write(make([]byte, mtu+1))
	appA.Write([]byte("after"))
	expectData(t, appB, "after")
	if a.eng.Counters.TooBig.Load() != 1 {
		t.Errorf("too-big = %d", a.eng.Counters.TooBig.Load())
	}
	// The same as data.
	st := a.eng.Status(nil)
	if st.FlowCount != 1 || len(st.Flows) != 1 || st.Flows[0].Name != "srv" || st.Flows[0].State != "up" ||
		st.Flows[0].MTU != 1496 || st.Flows[0].PktsIn < 2 || !st.Carrier || st.Counters["drop-too-big"] != 1 ||
		st.Counters["tx-data"] < 2 || len(st.Resolved) != 1 || st.Resolved[0].Addr != b.mac.String() ||
		st.Limits.MaxFlows != 1024 {
		t.Errorf("status %+v", st)
	}
	show := a.eng.Show()
	for _, want := range []string{"MAC 02:00:00:00:00:0a", "EtherType 0xa000", "flow MTU 1496", "carrier  up", "srv  qos raw  mtu 1496  up"} {
		if !strings.Contains(show, want) {
			t.Errorf("show lacks %q:\n%s", want, show)
		}
	}

	// The application closes: the peer's application reads EOF.
	appA.Dealloc()
	expectKind(t, appB, pipe.Dealloc)
	eventually(t, "both flows removed", func() bool { return flowCount(a) == 0 && flowCount(b) == 0 })

	a.eng.Close()
	b.eng.Close()
	appB.Close()
	noLeak(t, base)
}

func TestManyFlows(t *testing.T) {
	h := &hub{}
	a := newStation(t, h, 0xa, clock.Real(), quick())
	b := newStation(t, h, 0xb, clock.Real(), quick())
	b.eng.Register("srv")
	var apps, peers []*pipe.Pipe
	for range 20 {
		p, _, err := a.alloc(context.Background(), "srv")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		apps = append(apps, p)
		peers = append(peers, b.acceptOne(t))
	}
	// Every flow reaches its own peer: endpoint ids demultiplex.
	for i, p := range apps {
		p.Write([]byte{byte(i)})
	}
	for i, p := range peers {
		expectData(t, p, string([]byte{byte(i)}))
	}
}

func TestAllocRefused(t *testing.T) {
	h := &hub{}
	a := newStation(t, h, 0xa, clock.Real(), quick())
	b := newStation(t, h, 0xb, clock.Real(), quick())
	b.eng.Register("srv")
	ctx := context.Background()
	if ok, _ := a.eng.Query(ctx, "srv"); !ok {
		t.Fatal("srv not found")
	}
	// The acceptor is gone: the peer refuses.
	b.refuse.Store(true)
	if _, _, err := a.alloc(ctx, "srv"); err == nil || !strings.Contains(err.Error(), "no process accepts") {
		t.Fatalf("alloc with no acceptor: %v", err)
	}
	// The name left after A cached it: the peer says so and A forgets it.
	b.refuse.Store(false)
	b.eng.Unregister("srv")
	if _, _, err := a.alloc(ctx, "srv"); err == nil || !strings.Contains(err.Error(), "not registered") {
		t.Fatalf("alloc to unregistered name: %v", err)
	}
	if _, _, err := a.alloc(ctx, "srv"); err == nil || !strings.Contains(err.Error(), "no peer has that name") {
		t.Fatalf("alloc after forgetting: %v", err)
	}
	if b.eng.Counters.AllocsRefused.Load() != 2 {
		t.Errorf("refused = %d", b.eng.Counters.AllocsRefused.Load())
	}
	if flowCount(a) != 0 || flowCount(b) != 0 {
		t.Errorf("flows left: %d %d", flowCount(a), flowCount(b))
	}
}

// A peer that vanishes mid-allocation fails the allocation after the
// timeout, in virtual time.
func TestPeerVanishes(t *testing.T) {
	clk := clock.NewFake(time.Unix(1000, 0))
	h := &hub{}
	a := newStation(t, h, 0xa, clk, shim.Timers{})
	b := newStation(t, h, 0xb, clk, shim.Timers{})
	b.eng.Register("srv")
	if ok, err := a.eng.Query(context.Background(), "srv"); !ok || err != nil {
		t.Fatalf("query = %v %v", ok, err)
	}
	b.port.cut.Store(true)
	done := make(chan error, 1)
	go func() {
		_, _, err := a.alloc(context.Background(), "srv")
		done <- err
	}()
	// Wait until the allocation waits on its timers (beside the two
	// sweepers'), then let virtual time pass.
	eventually(t, "allocation waiting", func() bool { return clk.Pending() >= 4 })
	var err error
	for i := 0; ; i++ {
		clk.Advance(shim.DefaultAllocRetry)
		select {
		case err = <-done:
		case <-time.After(20 * time.Millisecond):
			if i > 100 {
				t.Fatal("allocation never failed")
			}
			continue
		}
		break
	}
	if err == nil || !strings.Contains(err.Error(), "02:00:00:00:00:0b sent no reply to 4 flow requests") {
		t.Fatalf("err = %v", err)
	}
	t.Logf("error: %v", err)
	if a.eng.Counters.AllocsTimedOut.Load() != 1 || flowCount(a) != 0 {
		t.Fatalf("timed out %d, flows %d", a.eng.Counters.AllocsTimedOut.Load(), flowCount(a))
	}
}

func TestCarrier(t *testing.T) {
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
	appB := b.acceptOne(t)

	a.eng.SetCarrier(false)
	expectKind(t, appA, pipe.Down)
	if ok, _ := a.eng.Query(ctx, "srv"); ok {
		t.Error("query succeeds without carrier")
	}
	if _, _, err := a.alloc(ctx, "srv"); err == nil || !strings.Contains(err.Error(), "no carrier") {
		t.Errorf("alloc without carrier: %v", err)
	}
	a.eng.SetCarrier(false) // no change, no event
	a.eng.SetCarrier(true)
	expectKind(t, appA, pipe.Up)
	// The flow survived the flap.
	appB.Write([]byte("still here"))
	expectData(t, appA, "still here")
	if n := a.eng.Counters.CarrierChanges.Load(); n != 2 {
		t.Errorf("carrier changes = %d", n)
	}
}

// Closing an engine unblocks its reader and writers, tells the peers,
// and leaves no goroutine behind.
func TestCloseEndsEverything(t *testing.T) {
	base := runtime.NumGoroutine()
	h := &hub{}
	a := newStation(t, h, 0xa, clock.Real(), quick())
	b := newStation(t, h, 0xb, clock.Real(), quick())
	b.eng.Register("srv")
	appA, _, err := a.alloc(context.Background(), "srv")
	if err != nil {
		t.Fatal(err)
	}
	appB := b.acceptOne(t)
	if err := a.eng.Close(); err != nil {
		t.Fatal(err)
	}
	// A's application sees its IPCP gone; B's sees a deallocation.
	if _, _, err := readKind(t, appA); err == nil {
		t.Error("A's application read no error")
	}
	expectKind(t, appB, pipe.Dealloc)
	if _, _, err := a.alloc(context.Background(), "srv"); err == nil {
		t.Error("alloc on a closed engine")
	}
	a.eng.Close() // twice is fine
	b.eng.Close()
	appA.Close()
	appB.Close()
	noLeak(t, base)
}

func TestNewErrors(t *testing.T) {
	if _, err := shim.NewEther(shim.EtherConfig{}); err == nil {
		t.Error("no medium accepted")
	}
	h := &hub{}
	_, err := shim.NewEther(shim.EtherConfig{Kind: "test", Dev: shim.Device{Name: "x", MTU: 4, Medium: h.port()},
		Arrive: nil})
	if err == nil {
		t.Error("no arrive accepted")
	}
}

func TestParams(t *testing.T) {
	dev, et, err := shim.Params("eth-dix", map[string]string{"dev": "eth0"})
	if dev != "eth0" || et != 0xA000 || err != nil {
		t.Errorf("defaults = %q %x %v", dev, et, err)
	}
	if _, et, _ := shim.Params("eth-dix", map[string]string{"dev": "eth0", "ethertype": "0x88b5"}); et != 0x88b5 {
		t.Errorf("ethertype = %x", et)
	}
	for _, p := range []map[string]string{
		{},
		{"dev": "eth0", "ip": "1.2.3.4"},
		{"dev": "eth0", "ethertype": "0x0100"},
		{"dev": "eth0", "ethertype": "banana"},
		{"dev": "eth0", "ethertype": "0x10000"},
	} {
		if _, _, err := shim.Params("eth-dix", p); err == nil {
			t.Errorf("%v accepted", p)
		} else {
			t.Logf("%v: %v", p, err)
		}
	}
}
