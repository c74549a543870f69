package udp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ouro-net/ouro/ipcpd"
	"github.com/ouro-net/ouro/ipcpd/shim/wire"
	"github.com/ouro-net/ouro/lib/namehash"
	"github.com/ouro-net/ouro/lib/pipe"
	"github.com/ouro-net/ouro/lib/qos"
)

// These tests run IPCPs in the test process, with a stand-in for the
// IRMd's Arrive, so that the race detector and the goroutine count see
// all of the kind's code.

// accepted is an incoming flow as the stand-in acceptor got it.
type accepted struct {
	app  *pipe.Pipe
	name string
	qos  qos.Spec
	mtu  int
}

// acceptor stands in for the IRMd and a listening application.
type acceptor struct {
	ch     chan accepted
	refuse atomic.Bool
}

func (ac *acceptor) arrive(ctx context.Context, name string, q qos.Spec, mtu int) (*ipcpd.Flow, error) {
	if ac.refuse.Load() {
		return nil, errors.New("no process accepts flows for that name")
	}
	ipcpEnd, appEnd, err := pipe.Pair()
	if err != nil {
		return nil, err
	}
	select {
	case ac.ch <- accepted{appEnd, name, q, mtu}:
	case <-ctx.Done():
		ipcpEnd.Close()
		appEnd.Close()
		return nil, ctx.Err()
	}
	return &ipcpd.Flow{Name: name, QoS: q, Pipe: ipcpEnd}, nil
}

// next returns the next accepted flow.
func (ac *acceptor) next(t *testing.T) accepted {
	t.Helper()
	select {
	case a := <-ac.ch:
		t.Cleanup(func() { a.app.Close() })
		return a
	case <-time.After(10 * time.Second):
		t.Fatal("no flow arrived")
	}
	return accepted{}
}

// noLeak fails the test if goroutines started during it outlive it; call
// it first so that its check runs after every other cleanup.
func noLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<16)
			t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf[:runtime.Stack(buf, true)])
		}
	})
}

// newIPCP makes a bootstrapped IPCP on ip:port (port "0": any).
func newIPCP(t *testing.T, typ, ip, port string, peers ...string) (*IPCP, *acceptor) {
	t.Helper()
	i, err := New(&ipcpd.Host{Name: "t-" + ip, Type: typ, Log: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	u := i.(*IPCP)
	u.indirect = true // these tests watch the data cross the IPCP
	ac := &acceptor{ch: make(chan accepted, 8)}
	u.arrive = ac.arrive
	params := map[string]string{"ip": ip, "port": port}
	if len(peers) > 0 {
		params["peer"] = strings.Join(peers, ",")
	}
	if _, err := u.Bootstrap(context.Background(), "udp", params); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	return u, ac
}

// freePort returns a UDP port free on ip at the time of the call.
func freePort(t *testing.T, ip string) string {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(ip), 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return fmt.Sprint(c.LocalAddr().(*net.UDPAddr).Port)
}

// alloc allocates a flow from u to name and returns the application's end.
func alloc(t *testing.T, u *IPCP, name string, q qos.Spec) (*pipe.Pipe, int, error) {
	t.Helper()
	ipcpEnd, appEnd, err := pipe.Pair()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mtu, err := u.Alloc(ctx, &ipcpd.Flow{ID: 1, Name: name, QoS: q, Pipe: ipcpEnd})
	if err != nil {
		ipcpEnd.Close()
		appEnd.Close()
		return nil, 0, err
	}
	t.Cleanup(func() { appEnd.Close() })
	return appEnd, mtu, nil
}

// read reads one record within 10 s.
func read(t *testing.T, p *pipe.Pipe, buf []byte) (int, pipe.Kind) {
	t.Helper()
	p.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, k, err := p.Read(buf)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return n, k
}

// waitFor polls cond until it holds, failing after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func flowCount(u *IPCP) int { return u.eng.Flows() }

func hasIPv6Loopback() bool {
	c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func TestFlowInProcess(t *testing.T) {
	for _, tc := range []struct{ typ, ipA, ipB string }{
		{"udp4", "127.0.0.2", "127.0.0.1"},
		{"udp6", "::1", "::1"},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			if tc.typ == "udp6" && !hasIPv6Loopback() {
				t.Skip("skipped: this machine has no IPv6 loopback (::1)")
			}
			noLeak(t)
			b, acc := newIPCP(t, tc.typ, tc.ipB, "0")
			a, _ := newIPCP(t, tc.typ, tc.ipA, "0", b.local.String())
			ctx := context.Background()
			if err := b.Register(ctx, "echo"); err != nil {
				t.Fatal(err)
			}
			if ok, err := a.Query(ctx, "echo"); !ok || err != nil {
				t.Fatalf("query echo: %v %v", ok, err)
			}
			if ok, err := a.Query(ctx, "nobody"); ok || err != nil {
				t.Fatalf("query nobody: %v %v", ok, err)
			}
			q := qos.Spec{Name: "custom", Cube: qos.CubeLowLatency, InOrder: true}
			appA, mtu, err := alloc(t, a, "echo", q)
			if err != nil {
				t.Fatal(err)
			}
			in := acc.next(t)
			if in.name != "echo" || in.qos != q || in.mtu != mtu || mtu != MaxMTU {
				t.Fatalf("arrival %q %+v mtu %d, alloc mtu %d", in.name, in.qos, in.mtu, mtu)
			}
			appB := in.app
			buf := make([]byte, mtu+10)
			for i := range 100 {
				msg := []byte(fmt.Sprintf("packet %d", i))
				if err := appA.Write(msg); err != nil {
					t.Fatal(err)
				}
				n, k := read(t, appB, buf)
				if k != pipe.Data || !bytes.Equal(buf[:n], msg) {
					t.Fatalf("B got %v %q, want %q", k, buf[:n], msg)
				}
				if err := appB.Write(buf[:n]); err != nil {
					t.Fatal(err)
				}
				if n, k = read(t, appA, buf); k != pipe.Data || !bytes.Equal(buf[:n], msg) {
					t.Fatalf("A got %v %q", k, buf[:n])
				}
			}
			// The largest packet passes; one byte more is dropped (the
			// flow library would have refused it).
			big := bytes.Repeat([]byte{0xa5}, mtu)
			appA.Write(append(big, 1))
			appA.Write(big)
			if n, _ := read(t, appB, buf); n != mtu || !bytes.Equal(buf[:n], big) {
				t.Fatalf("got %d bytes, want %d", n, mtu)
			}
			text, _ := a.Show(ctx)
			for _, want := range []string{"address  " + a.local.String(), "peers    " + b.local.String(), "echo  qos custom", "flows    1"} {
				if !strings.Contains(text, want) {
					t.Errorf("show lacks %q:\n%s", want, text)
				}
			}
			if text, _ := b.Show(ctx); !strings.Contains(text, "names    echo") {
				t.Errorf("show of B lacks its name:\n%s", text)
			}
			// Deallocation reaches the far application as a Dealloc
			// record (the flow library's io.EOF).
			appA.Dealloc()
			if _, k := read(t, appB, buf); k != pipe.Dealloc {
				t.Fatalf("B read %v, want dealloc", k)
			}
			waitFor(t, "flows to go", func() bool { return flowCount(a) == 0 && flowCount(b) == 0 })
			if n := a.eng.Counters.DeallocsUnacked.Load(); n != 0 {
				t.Errorf("%d deallocs unacknowledged", n)
			}
		})
	}
}

func TestDeallocFromResponderAndAppDeath(t *testing.T) {
	noLeak(t)
	b, acc := newIPCP(t, "udp4", "127.0.0.1", "0")
	a, _ := newIPCP(t, "udp4", "127.0.0.1", "0", b.local.String())
	b.Register(context.Background(), "echo")
	buf := make([]byte, 100)

	appA, _, err := alloc(t, a, "echo", qos.Raw())
	if err != nil {
		t.Fatal(err)
	}
	acc.next(t).app.Dealloc()
	if _, k := read(t, appA, buf); k != pipe.Dealloc {
		t.Fatalf("A read %v, want dealloc", k)
	}

	// An application that dies without deallocating ends the flow too.
	appA, _, err = alloc(t, a, "echo", qos.Raw())
	if err != nil {
		t.Fatal(err)
	}
	appB := acc.next(t).app
	appA.Close()
	if _, k := read(t, appB, buf); k != pipe.Dealloc {
		t.Fatalf("B read %v, want dealloc", k)
	}
	waitFor(t, "flows to go", func() bool { return flowCount(a) == 0 && flowCount(b) == 0 })
}

func TestCloseEndsFlows(t *testing.T) {
	noLeak(t)
	b, acc := newIPCP(t, "udp4", "127.0.0.1", "0")
	a, _ := newIPCP(t, "udp4", "127.0.0.1", "0", b.local.String())
	b.Register(context.Background(), "echo")
	appA, _, err := alloc(t, a, "echo", qos.Raw())
	if err != nil {
		t.Fatal(err)
	}
	appB := acc.next(t).app
	a.Close()
	buf := make([]byte, 10)
	if _, _, err := appA.Read(buf); err == nil {
		t.Fatal("A's application still has a flow after Close")
	}
	// The peer was told.
	if _, k := read(t, appB, buf); k != pipe.Dealloc {
		t.Fatalf("B read %v, want dealloc", k)
	}
	if _, _, err := alloc(t, a, "echo", qos.Raw()); err == nil {
		t.Fatal("alloc after Close worked")
	}
}

func TestRefusals(t *testing.T) {
	noLeak(t)
	b, acc := newIPCP(t, "udp4", "127.0.0.1", "0")
	a, _ := newIPCP(t, "udp4", "127.0.0.1", "0", b.local.String())
	ctx := context.Background()
	b.Register(ctx, "echo")
	acc.refuse.Store(true)
	if _, _, err := alloc(t, a, "echo", qos.Raw()); err == nil || !strings.Contains(err.Error(), "no process accepts") {
		t.Fatalf("refused alloc: %v", err)
	}
	// The answer stays cached until the peer says the name is gone.
	if err := b.Unregister(ctx, "echo"); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.eng.Cached("echo"); !ok {
		t.Fatal("positive answer not cached")
	}
	if _, _, err := alloc(t, a, "echo", qos.Raw()); err == nil || !strings.Contains(err.Error(), "not registered there") {
		t.Fatalf("alloc to unregistered name: %v", err)
	}
	if _, ok := a.eng.Cached("echo"); ok {
		t.Fatal("refused name still cached")
	}
	if _, _, err := alloc(t, a, "echo", qos.Raw()); err == nil || !strings.Contains(err.Error(), "no peer has that name") {
		t.Fatalf("alloc to unknown name: %v", err)
	}
	if err := b.Unregister(ctx, "echo"); err == nil {
		t.Fatal("unregistered twice")
	}
}

// fakePeer answers queries with yes and alloc requests as told.
func fakePeer(t *testing.T, pendingOnce bool) (*net.UDPConn, *atomic.Int32) {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	var reqs atomic.Int32
	done := make(chan struct{})
	t.Cleanup(func() { c.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			var m wire.Msg
			if dec(buf[:n], &m) != nil {
				continue
			}
			switch m.Type {
			case wire.Query:
				c.WriteToUDPAddrPort(enc(wire.Msg{Type: wire.QueryReply, Hash: m.Hash, Found: true}), from)
			case wire.AllocReq:
				if reqs.Add(1) == 1 && pendingOnce {
					c.WriteToUDPAddrPort(enc(wire.Msg{Type: wire.AllocResp, Dst: m.Src, Status: wire.Pending}), from)
				}
			}
		}
	}()
	return c, &reqs
}

func TestPeerVanishesMidAllocation(t *testing.T) {
	for _, pending := range []bool{false, true} {
		t.Run(fmt.Sprintf("pending=%v", pending), func(t *testing.T) {
			noLeak(t)
			peer, reqs := fakePeer(t, pending)
			a, _ := newIPCP(t, "udp4", "127.0.0.1", "0", peer.LocalAddr().String())
			a.tm.AllocRetry = 20 * time.Millisecond
			_, _, err := alloc(t, a, "echo", qos.Raw())
			if err == nil || !strings.Contains(err.Error(), "sent no reply to 4 flow requests") {
				t.Fatalf("alloc to a silent peer: %v", err)
			}
			want := int32(a.tm.AllocMisses)
			if pending {
				want++
			}
			if reqs.Load() < want {
				t.Fatalf("peer saw %d requests, want at least %d", reqs.Load(), want)
			}
			if _, ok := a.eng.Cached("echo"); ok {
				t.Fatal("vanished peer still cached")
			}
			if flowCount(a) != 0 || a.eng.Counters.AllocsFailed.Load() != 1 {
				t.Fatalf("%d flows left, %d failures", flowCount(a), a.eng.Counters.AllocsFailed.Load())
			}
		})
	}
}

// counter returns the value of a Show counter.
func counter(u *IPCP, name string) uint64 {
	for _, x := range append(u.eng.Counters.List(), u.ctr.list()...) {
		if x.Name == name {
			return x.V.Load()
		}
	}
	panic("no counter " + name)
}

func TestBadInputIsCountedAndDropped(t *testing.T) {
	noLeak(t)
	b, acc := newIPCP(t, "udp4", "127.0.0.1", "0")
	a, _ := newIPCP(t, "udp4", "127.0.0.2", "0", b.local.String())
	b.Register(context.Background(), "echo")
	appA, _, err := alloc(t, a, "echo", qos.Raw())
	if err != nil {
		t.Fatal(err)
	}
	appB := acc.next(t).app
	live := b.eng.EIDs()[0]

	raw, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 3)}, net.UDPAddrFromAddrPort(b.local))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	good := enc(wire.Msg{Type: wire.Query, Hash: namehash.Of("echo")})
	badVersion := bytes.Clone(good)
	badVersion[4] = 3 // the udp version before the shared codec
	badType := bytes.Clone(good)
	badType[5] = 77
	data := func(eid uint32) []byte {
		b := make([]byte, eidLen+5)
		putDataHeader(b, eid)
		return b
	}
	sends := []struct {
		b       []byte
		counter string
	}{
		{nil, "drop-truncated"},
		{[]byte{1, 2, 3}, "drop-truncated"},
		{[]byte{0, 0, 0, 0, 1}, "drop-truncated"},
		{good[:10], "drop-truncated"},
		{badVersion, "drop-bad-version"},
		{badType, "drop-bad-type"},
		{append(bytes.Clone(good), 0), "drop-malformed"},
		{enc(wire.Msg{Type: wire.QueryReply, Hash: namehash.Of("x"), Found: true}), "drop-unsolicited"},
		{enc(wire.Msg{Type: wire.AllocResp, Dst: 5, Status: wire.NoName}), "drop-stale-reply"},
		{enc(wire.Msg{Type: wire.DeallocAck, Dst: live, Src: 1}), "drop-stale-ack"},
		{data(live + 1), "drop-unknown-eid"},
		{data(live), "drop-wrong-source"},
		{enc(wire.Msg{Type: wire.Dealloc, Dst: live, Src: 1}), "drop-stale-dealloc"},
		{make([]byte, 65500), "drop-oversize"},
	}
	want := make(map[string]uint64)
	for _, s := range sends {
		if _, err := raw.Write(s.b); err != nil {
			t.Fatal(err)
		}
		want[s.counter]++
	}
	waitFor(t, "the datagrams", func() bool { return b.eng.Counters.FramesIn.Load() >= uint64(len(sends))+2 })
	for name, n := range want {
		if got := counter(b, name); got != n {
			t.Errorf("%s = %d, want %d", name, got, n)
		}
	}
	text, _ := b.Show(context.Background())
	if !strings.Contains(text, "drop-wrong-source") {
		t.Errorf("show lacks counters:\n%s", text)
	}
	// The flow still works.
	appA.Write([]byte("still here"))
	buf := make([]byte, 64)
	if n, k := read(t, appB, buf); k != pipe.Data || string(buf[:n]) != "still here" {
		t.Fatalf("after garbage: %v %q", k, buf[:n])
	}
}

func TestQueryFlood(t *testing.T) {
	noLeak(t)
	portA, portB := freePort(t, "127.0.0.1"), freePort(t, "127.0.0.2")
	a, _ := newIPCP(t, "udp4", "127.0.0.1", portA, "127.0.0.2:"+portB)
	b, _ := newIPCP(t, "udp4", "127.0.0.2", portB, "127.0.0.1:"+portA)
	b.Register(context.Background(), "echo")
	raw, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(b.local))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	q := enc(wire.Msg{Type: wire.Query, Hash: namehash.Of("echo")})
	const flood = 2000
	for range flood {
		raw.Write(q)
	}
	waitFor(t, "the flood to be limited", func() bool { return b.eng.Counters.QueriesLimited.Load() > 0 })
	// A configured peer has its own budget: it is still answered.
	if ok, err := a.Query(context.Background(), "echo"); !ok || err != nil {
		t.Fatalf("query during flood: %v %v", ok, err)
	}
	if ans := b.eng.Counters.QueriesAnswered.Load(); ans >= flood {
		t.Fatalf("%d of %d flood queries answered", ans, flood)
	}
}

func TestBootstrapErrors(t *testing.T) {
	noLeak(t)
	busy, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port := fmt.Sprint(busy.LocalAddr().(*net.UDPAddr).Port)
	for _, c := range []struct {
		params map[string]string
		want   string
	}{
		{map[string]string{"ip": "127.0.0.1", "port": port}, "address already in use"},
		{map[string]string{"ip": "192.0.2.1"}, "cannot assign requested address"},
		{map[string]string{"ip": "nonsense"}, "not an IP address"},
		{map[string]string{"ip": "127.0.0.1", "mtu": "9000"}, `unknown parameter "mtu"`},
		{map[string]string{"ip": "127.0.0.1", "loss": "60"}, "at most 50"},
		{map[string]string{"ip": "127.0.0.1", "loss": "x"}, "want a percentage"},
	} {
		i, _ := New(&ipcpd.Host{Name: "x", Type: "udp4", Log: hclog.NewNullLogger()})
		_, err := i.Bootstrap(context.Background(), "udp", c.params)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: got %v, want %q", c.params, err, c.want)
		}
		i.Close()
	}
	if _, err := New(&ipcpd.Host{Type: "udp5"}); err == nil {
		t.Error("type udp5 accepted")
	}
	i, _ := New(&ipcpd.Host{Name: "x", Type: "udp4", Log: hclog.NewNullLogger()})
	if _, err := i.Query(context.Background(), "x"); err == nil || !strings.Contains(err.Error(), "not bootstrapped") {
		t.Errorf("query before bootstrap: %v", err)
	}
	i.Close()
	u, _ := newIPCP(t, "udp4", "127.0.0.1", "0")
	if _, err := u.Bootstrap(context.Background(), "udp", map[string]string{"ip": "127.0.0.1"}); err == nil {
		t.Error("bootstrapped twice")
	}
}

// FuzzHandle feeds arbitrary datagrams to the receive path of a live
// IPCP that has a name and a flow, as if from that flow's requester.
func FuzzHandle(f *testing.F) {
	h := namehash.Of("oping")
	for _, m := range []wire.Msg{
		{Type: wire.Query, Hash: h},
		{Type: wire.QueryReply, Hash: h, Found: true},
		{Type: wire.AllocReq, Src: 8, Hash: h, MTU: 1400, Port: 9, QoS: qos.Raw()},
		{Type: wire.AllocResp, Dst: 1, Src: 7, Status: wire.OK, MTU: 1400},
		{Type: wire.Dealloc, Dst: 1, Src: 7},
		{Type: wire.DeallocAck, Dst: 1, Src: 7},
		{Type: wire.Confirm, Dst: 1, Src: 7},
	} {
		f.Add(enc(m))
	}
	f.Add([]byte{0, 0, 0, 1, 'x'})
	f.Add([]byte{})
	i, err := New(&ipcpd.Host{Name: "fuzz", Type: "udp4", Log: hclog.NewNullLogger()})
	if err != nil {
		f.Fatal(err)
	}
	u := i.(*IPCP)
	u.indirect = true
	u.arrive = func(context.Context, string, qos.Spec, int) (*ipcpd.Flow, error) {
		ipcpEnd, appEnd, err := pipe.Pair()
		if err != nil {
			return nil, err
		}
		go func() { // drain the flow
			defer appEnd.Close()
			buf := make([]byte, 70000)
			for {
				if _, _, err := appEnd.Read(buf); err != nil && !errors.Is(err, io.ErrShortBuffer) {
					return
				}
			}
		}()
		return &ipcpd.Flow{Name: "oping", Pipe: ipcpEnd}, nil
	}
	if _, err := u.Bootstrap(context.Background(), "udp", map[string]string{"ip": "127.0.0.1", "port": "0"}); err != nil {
		f.Fatal(err)
	}
	defer u.Close()
	u.Register(context.Background(), "oping")
	c, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 7)}, net.UDPAddrFromAddrPort(u.local))
	if err != nil {
		f.Fatal(err)
	}
	defer c.Close()
	c.Write(AllocReqFrame(7, "oping", 0))
	buf := make([]byte, 256)
	for {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			f.Fatal(err)
		}
		if conf, ok := ConfirmFor(buf[:n]); ok {
			c.Write(conf)
			break
		}
	}
	src := netip.MustParseAddrPort(c.LocalAddr().String())
	// The fuzzer is the receive goroutine from here on: the socket's
	// own is stopped (what the IPCP sends fails, counted).
	u.conn.Close()
	u.rxWG.Wait()
	f.Fuzz(func(t *testing.T, b []byte) {
		u.handle(b, src, false)
		u.flushRx()
	})
}

// BenchmarkRoundTrip is one packet A→B→A through two IPCPs; allocs/op
// counts every allocation in the process, so 0 shows the whole data path
// (pipes, sockets, both IPCPs) allocation-free.
func BenchmarkRoundTrip(b *testing.B) {
	bb, acc := newIPCPB(b, "127.0.0.1")
	a, _ := newIPCPB(b, "127.0.0.2", bb.local.String())
	bb.Register(context.Background(), "echo")
	ipcpEnd, appA, _ := pipe.Pair()
	defer appA.Close()
	if _, err := a.Alloc(context.Background(), &ipcpd.Flow{Name: "echo", QoS: qos.Raw(), Pipe: ipcpEnd}); err != nil {
		b.Fatal(err)
	}
	appB := (<-acc.ch).app
	defer appB.Close()
	msg := make([]byte, 64)
	buf := make([]byte, 2048)
	b.ReportAllocs()
	b.SetBytes(64)
	for b.Loop() {
		appA.Write(msg)
		n, _, _ := appB.Read(buf)
		appB.Write(buf[:n])
		appA.Read(buf)
	}
}

func newIPCPB(b *testing.B, ip string, peers ...string) (*IPCP, *acceptor) {
	i, _ := New(&ipcpd.Host{Name: "b", Type: "udp4", Log: hclog.NewNullLogger()})
	u := i.(*IPCP)
	u.indirect = true // these tests watch the data cross the IPCP
	ac := &acceptor{ch: make(chan accepted, 8)}
	u.arrive = ac.arrive
	params := map[string]string{"ip": ip, "port": "0", "peer": strings.Join(peers, ",")}
	if _, err := u.Bootstrap(context.Background(), "udp", params); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { u.Close() })
	return u, ac
}

// TestDrillRate checks the loss drill: close to the asked share of
// packets dropped, and never two in a row.
func TestDrillRate(t *testing.T) {
	for _, loss := range []float64{0.05, 0.3, 0.5} {
		d := newDrill(loss, 7)
		const n = 100000
		drops, prev := 0, false
		for range n {
			dropped := d.drop()
			if dropped && prev {
				t.Fatalf("loss %.2f: two drops in a row", loss)
			}
			if dropped {
				drops++
			}
			prev = dropped
		}
		if got := float64(drops) / n; got < loss-0.02 || got > loss+0.02 {
			t.Errorf("loss %.2f: dropped %.3f of packets", loss, got)
		}
	}
}
