package udp

import (
	"context"
	"net"
	"net/netip"
	"os"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ouro-net/ouro/ipcpd"
	"github.com/ouro-net/ouro/ipcpd/shim/shimtest"
	"github.com/ouro-net/ouro/ipcpd/shim/wire"
	"github.com/ouro-net/ouro/lib/namehash"
	"github.com/ouro-net/ouro/lib/pipe"
	"github.com/ouro-net/ouro/lib/qos"
)

// startFlooder floods to from a socket on from with alloc requests for
// name, each offering a data port so that every accepted flow costs the
// victim a data socket (shimtest.Flooder); with confirm set it confirms
// every "ok". It returns the flooder and its source address.
func startFlooder(t *testing.T, from string, to netip.AddrPort, name string, confirm bool) (*shimtest.Flooder, netip.AddrPort) {
	t.Helper()
	c, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.ParseIP(from)}, net.UDPAddrFromAddrPort(to))
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	buf := make([]byte, 2048)
	med := shimtest.Medium{
		Send: func(msg []byte) (int, error) {
			out = append(append(out[:0], 0, 0, 0, 0), msg...)
			return c.Write(out)
		},
		Recv: func() ([]byte, int, bool) {
			for {
				n, err := c.Read(buf)
				if err != nil {
					return nil, 0, false
				}
				if eid, p, err := splitFrame(buf[:n]); err == nil && eid == 0 {
					return p, n, true
				}
			}
		},
		Close: func() { c.Close() },
	}
	req := wire.Msg{Type: wire.AllocReq, Hash: namehash.Of(name), MTU: 1400, Port: 9, QoS: qos.Raw()}
	return shimtest.Start(t, med, req, 1<<32-1, 64, confirm), netip.MustParseAddrPort(c.LocalAddr().String())
}

// openFDs counts this process's descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("skipped: no /proc/self/fd: %v", err)
	}
	return len(ents)
}

// sourceFlows returns how many flows and pending flows src holds at u.
func sourceFlows(u *IPCP, src netip.AddrPort) (flows, pending int) {
	_, _, flows, pending = u.eng.Usage(src)
	return flows, pending
}

// TestAllocFlood floods an IPCP with alloc requests from one source,
// first never confirming (a forged or lazy source), then confirming
// every answer, and checks that the caps hold (flows, pending,
// descriptors), that the drops are counted, that an honest peer still
// allocates and moves data, that Show answers, and that the flooder gets
// no more bytes back than it sent.
func TestAllocFlood(t *testing.T) {
	noLeak(t)
	i, err := New(&ipcpd.Host{Name: "victim", Type: "udp4", Log: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	b := i.(*IPCP)
	b.tm.AllocRetry = 50 * time.Millisecond
	b.tm.ConfirmTimeout = 400 * time.Millisecond
	b.tm.MaxFlows, b.tm.MaxFlowsPerPeer, b.tm.MaxPending, b.tm.MaxPendingPerPeer = 24, 10, 12, 4
	acc := &acceptor{ch: make(chan accepted, 1024)}
	b.arrive = acc.arrive
	if _, err := b.Bootstrap(context.Background(), "udp", map[string]string{"ip": "127.0.0.1", "port": "0"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	b.Register(context.Background(), "echo")
	// The acceptor: takes every flow, echoes, and closes on EOF.
	var echo shimtest.Echoer
	stopServe := shimtest.Accept(&echo, acc.ch, func(a accepted) *pipe.Pipe { return a.app })
	t.Cleanup(func() { stopServe(); b.Close(); echo.Wait() })

	// No collection during the test: a leaked descriptor must not be
	// closed by a finalizer before the count sees it.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	fdsBefore := openFDs(t)
	// Each flow costs the victim at most its pipe end, the application's
	// end (this process plays both), the data socket and the IPCP's copy.
	fdCap := fdsBefore + 4*b.tm.MaxFlows + 16
	check := func(what string, src netip.AddrPort) {
		t.Helper()
		flows, pending, f, p := b.eng.Usage(src)
		n := b.eng.Flows()
		tm := b.tm
		if flows > tm.MaxFlows || pending > tm.MaxPending || f > tm.MaxFlowsPerPeer || p > tm.MaxPendingPerPeer || n > tm.MaxFlows+2 {
			t.Fatalf("%s: caps broken: %d flows (%d in the table), %d pending, source %d/%d", what, flows, n, pending, f, p)
		}
		if fds := openFDs(t); fds > fdCap {
			t.Fatalf("%s: %d descriptors open, cap %d (before %d)", what, fds, fdCap, fdsBefore)
		}
	}

	// Phase 1: a flood that never confirms.
	fl, src := startFlooder(t, "127.0.0.3", b.local, "echo", false)
	waitFor(t, "refusals under the flood", func() bool {
		check("unconfirmed flood", src)
		return b.eng.Counters.Refused.PeerPending.Load() > 0 && fl.OKs.Load() > 0
	})
	// An honest peer allocates and echoes meanwhile.
	a, _ := newIPCP(t, "udp4", "127.0.0.2", "0", b.local.String())
	app, _, err := alloc(t, a, "echo", qos.Raw())
	if err != nil {
		t.Fatalf("honest allocation during the flood: %v", err)
	}
	app.Write([]byte("hello"))
	buf := make([]byte, 64)
	if n, k := read(t, app, buf); k != pipe.Data || string(buf[:n]) != "hello" {
		t.Fatalf("honest flow: %v %q", k, buf[:n])
	}
	text, err := b.Show(context.Background())
	if err != nil || !strings.Contains(text, "limits   incoming flows") || !strings.Contains(text, src.String()) {
		t.Fatalf("show during the flood: %v\n%s", err, text)
	}
	// Unconfirmed flows expire.
	waitFor(t, "unconfirmed flows to expire", func() bool {
		check("unconfirmed flood", src)
		return b.eng.Counters.ExpiredUnconfirmed.Load() > 0
	})
	fl.Halt()
	waitFor(t, "the flooder's flows to go", func() bool {
		f, _ := sourceFlows(b, src)
		return f == 0
	})
	// Their data sockets and channels went with them: what is left is
	// the honest peer's IPCP and flow.
	waitFor(t, "the expired flows' descriptors to be released", func() bool { return openFDs(t) <= fdsBefore+8 })
	t.Logf("descriptors: %d before the flood, %d after its flows expired (%d expired)", fdsBefore, openFDs(t), b.eng.Counters.ExpiredUnconfirmed.Load())

	// Phase 2: a flood that confirms every answer keeps at most its
	// per-source share.
	fl2, src2 := startFlooder(t, "127.0.0.3", b.local, "echo", true)
	waitFor(t, "the confirming flooder to reach its cap", func() bool {
		check("confirming flood", src2)
		f, _ := sourceFlows(b, src2)
		return f == b.tm.MaxFlowsPerPeer && b.eng.Counters.Refused.PeerFlows.Load() > 0
	})
	// The honest flow still works, and a second honest allocation too.
	app.Write([]byte("again"))
	if n, k := read(t, app, buf); k != pipe.Data || string(buf[:n]) != "again" {
		t.Fatalf("honest flow under the second flood: %v %q", k, buf[:n])
	}
	if _, _, err := alloc(t, a, "echo", qos.Raw()); err != nil {
		t.Fatalf("second honest allocation: %v", err)
	}
	check("confirming flood", src2)
	fl2.Halt()
	for _, f := range []*shimtest.Flooder{fl, fl2} {
		if err := f.Amplified(); err != nil {
			t.Error(err)
		}
	}
	t.Logf("flood 1: %s; flood 2: %s", fl, fl2)
	for _, name := range []string{"refused-peer-pending-full", "refused-peer-flows-full", "expired-unconfirmed", "confirms-in"} {
		if counter(b, name) == 0 {
			t.Errorf("counter %s is 0", name)
		}
	}
}

// TestBusyIsRetried: an honest burst of allocations beyond the
// responder's pending cap is not refused for good: "busy" makes the
// requester ask again, and every allocation completes.
func TestBusyIsRetried(t *testing.T) {
	noLeak(t)
	i, err := New(&ipcpd.Host{Name: "b", Type: "udp4", Log: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	b := i.(*IPCP)
	b.indirect = true
	b.tm.MaxFlows, b.tm.MaxFlowsPerPeer, b.tm.MaxPending, b.tm.MaxPendingPerPeer = 32, 16, 2, 1
	acc := &acceptor{ch: make(chan accepted, 64)}
	b.arrive = acc.arrive
	if _, err := b.Bootstrap(context.Background(), "udp", map[string]string{"ip": "127.0.0.1", "port": "0"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	b.Register(context.Background(), "echo")
	a, _ := newIPCP(t, "udp4", "127.0.0.2", "0", b.local.String())
	a.tm.AllocRetry = 20 * time.Millisecond
	const n = 6
	shimtest.AllocBurst(t, n, func() error {
		_, _, err := alloc(t, a, "echo", qos.Raw())
		return err
	})
	if b.eng.Counters.Refused.PeerPending.Load() == 0 {
		t.Log("the burst never hit the pending cap (nothing retried)")
	}
	for range n {
		acc.next(t)
	}
}

// TestStaleFloodIsBudgeted: deallocations and "ok" answers for flows
// this IPCP does not have (forged, from a reflector's victim) are
// answered only within the answer budget; the rest is counted.
func TestStaleFloodIsBudgeted(t *testing.T) {
	noLeak(t)
	b, _ := newIPCP(t, "udp4", "127.0.0.1", "0")
	c, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 5)}, net.UDPAddrFromAddrPort(b.local))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var back atomic.Uint64
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 256)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
			back.Add(1)
		}
	}()
	const n = 2000
	for i := range uint32(n) {
		c.Write(enc(wire.Msg{Type: wire.Dealloc, Dst: i + 1, Src: 7}))
		c.Write(enc(wire.Msg{Type: wire.AllocResp, Dst: i + 1, Src: 7, Status: wire.OK, MTU: 1400}))
	}
	waitFor(t, "the forged frames", func() bool { return b.eng.Counters.FramesIn.Load() >= 2*n })
	if b.eng.Counters.AnswersLimited.Load() == 0 {
		t.Fatal("no stale frame went unanswered")
	}
	c.Close()
	<-done
	if got := back.Load(); got >= 2*n/4 {
		t.Fatalf("%d answers to %d forged frames", got, 2*n)
	}
	t.Logf("%d answers to %d forged frames, %d unanswered", back.Load(), 2*n, b.eng.Counters.AnswersLimited.Load())
}
