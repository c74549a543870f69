package udp

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ouro-net/ouro/ipcpd"
	"github.com/ouro-net/ouro/ipcpd/shim"
	"github.com/ouro-net/ouro/ipcpd/shim/admit"
	"github.com/ouro-net/ouro/ipcpd/shim/wire"
	"github.com/ouro-net/ouro/lib/clock"
	"github.com/ouro-net/ouro/lib/namehash"
	"github.com/ouro-net/ouro/lib/pipe"
	"github.com/ouro-net/ouro/lib/qos"
)

// newFakeIPCP is newIPCP on a virtual clock.
func newFakeIPCP(t *testing.T, clk clock.Clock, ip string, peers ...string) (*IPCP, *acceptor) {
	t.Helper()
	i, err := New(&ipcpd.Host{Name: "t-" + ip, Type: "udp4", Log: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	u := i.(*IPCP)
	u.clk = clk
	u.indirect = true
	ac := &acceptor{ch: make(chan accepted, 8)}
	u.arrive = ac.arrive
	params := map[string]string{"ip": ip, "port": "0"}
	if len(peers) > 0 {
		params["peer"] = peers[0]
	}
	if _, err := u.Bootstrap(context.Background(), "udp", params); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	return u, ac
}

// TestConfirmTimeoutInVirtualTime: an accepted incoming flow that its
// requester never confirms stands until ConfirmTimeout has passed on the
// IPCP's clock, not one sweep earlier, and is then ended with one
// dealloc to the requester and EOF to the application. Time is virtual:
// the test does not wait for the timeout.
func TestConfirmTimeoutInVirtualTime(t *testing.T) {
	noLeak(t)
	fake := clock.NewFake(time.Unix(1_000_000, 0))
	b, acc := newFakeIPCP(t, fake, "127.0.0.1")
	b.Register(context.Background(), "echo")
	c, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 6)}, net.UDPAddrFromAddrPort(b.local))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := wire.Msg{Type: wire.AllocReq, Src: 1, Hash: namehash.Of("echo"), MTU: 1400, QoS: qos.Raw()}
	if _, err := c.Write(enc(req)); err != nil {
		t.Fatal(err)
	}
	answer := func(want wire.Status) wire.Msg {
		t.Helper()
		buf := make([]byte, 256)
		for {
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, err := c.Read(buf)
			if err != nil {
				t.Fatalf("waiting for %v: %v", want, err)
			}
			var m wire.Msg
			if err := dec(buf[:n], &m); err != nil {
				t.Fatalf("bad answer: %v", err)
			}
			if m.Type == wire.Dealloc || m.Type == wire.AllocResp && m.Status == want {
				return m
			}
		}
	}
	ok := answer(wire.OK)
	app := acc.next(t).app
	// The sweeper is armed; wait until it is (it re-arms after each sweep).
	swept := func() {
		t.Helper()
		waitFor(t, "the sweep", func() bool { return fake.Pending() >= 1 })
	}
	swept()
	fake.Advance(admit.ConfirmTimeout - shim.SweepEvery)
	swept()
	if n := b.eng.Counters.ExpiredUnconfirmed.Load(); n != 0 || flowCount(b) != 1 {
		t.Fatalf("before the timeout: %d expired, %d flows", n, flowCount(b))
	}
	fake.Advance(2 * shim.SweepEvery)
	waitFor(t, "the expiry", func() bool { return b.eng.Counters.ExpiredUnconfirmed.Load() == 1 })
	if m := answer(wire.OK); m.Type != wire.Dealloc || m.Dst != 1 || m.Src != ok.Src {
		t.Fatalf("got %+v, want a dealloc of eid %d", m, ok.Src)
	}
	if _, k := read(t, app, make([]byte, 64)); k != pipe.Dealloc {
		t.Fatalf("the application read %v, want dealloc (EOF)", k)
	}
	if flowCount(b) != 0 {
		t.Fatalf("%d flows left", flowCount(b))
	}
}

// TestCacheTTLInVirtualTime: a positive answer is used for cacheTTL on
// the IPCP's clock (no query on the wire), and asked again after it.
func TestCacheTTLInVirtualTime(t *testing.T) {
	noLeak(t)
	b, _ := newIPCP(t, "udp4", "127.0.0.1", "0")
	b.Register(context.Background(), "echo")
	fake := clock.NewFake(time.Unix(1_000_000, 0))
	a, _ := newFakeIPCP(t, fake, "127.0.0.2", b.local.String())
	query := func() {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if ok, err := a.Query(ctx, "echo"); !ok || err != nil {
			t.Fatalf("query: %v, %v", ok, err)
		}
	}
	query()
	if n := a.eng.Counters.QueriesOut.Load(); n != 1 {
		t.Fatalf("%d queries sent, want 1", n)
	}
	fake.Advance(a.tm.CacheTTL - time.Second)
	query()
	if n := a.eng.Counters.QueriesOut.Load(); n != 1 {
		t.Fatalf("%d queries sent within the TTL, want 1 (the cached answer)", n)
	}
	fake.Advance(2 * time.Second)
	query()
	if n := a.eng.Counters.QueriesOut.Load(); n != 2 {
		t.Fatalf("%d queries sent after the TTL, want 2", n)
	}
}
