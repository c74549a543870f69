package udp_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/flow/ping"
	"github.com/ouro-net/ouro/internal/testenv"
	"github.com/ouro-net/ouro/ipcpd/udp"
	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/qos"
)

func TestMain(m *testing.M) {
	testenv.MaybeRunIPCP()
	code := m.Run()
	testenv.CleanupBinaries()
	os.Exit(code)
}

// port returns a UDP port free on ip at the time of the call.
func port(t *testing.T, ip string) string {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(ip), 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return strconv.Itoa(c.LocalAddr().(*net.UDPAddr).Port)
}

func hostPort(ip, port string) string { return net.JoinHostPort(ip, port) }

// skipNoIPv6 skips, saying why, when there is no IPv6 loopback.
func skipNoIPv6(t *testing.T) {
	c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skipf("skipped: this machine has no IPv6 loopback (::1): %v", err)
	}
	c.Close()
}

// pair starts two in-process IRMds, each with an IPCP of typ in layer
// "udp" listing the other as its peer, and returns them with A's address.
func pair(t *testing.T, typ, ipA, ipB string) (*testenv.Host, *testenv.Host, string) {
	t.Helper()
	hA, hB := testenv.StartHost(t), testenv.StartHost(t)
	pA, pB := port(t, ipA), port(t, ipB)
	hA.Bootstrap(t, typ, "a", "udp", map[string]string{"ip": ipA, "port": pA, "peer": hostPort(ipB, pB)})
	hB.Bootstrap(t, typ, "b", "udp", map[string]string{"ip": ipB, "port": pB, "peer": hostPort(ipA, pA)})
	return hA, hB, hostPort(ipA, pA)
}

// show returns `irm layer show udp` of a host: its text, for messages
// and the checks of what users read, and its status, for fields.
func show(t *testing.T, h *testenv.Host) (string, *ctrl.ShimStatus) {
	t.Helper()
	var info ctrl.LayerInfo
	if err := h.Call(ctrl.OpLayerShow, ctrl.LayerShow{Layer: "udp"}, &info); err != nil {
		t.Fatal(err)
	}
	if info.Status == nil || info.Status.Shim == nil {
		t.Fatalf("layer show udp has no shim status:\n%s", info.Text)
	}
	return info.Text, info.Status.Shim
}

// serve runs an oping server for name on h until the test ends.
func serve(t *testing.T, h *testenv.Host, name string) {
	t.Helper()
	h.Register(t, name, "udp")
	l, err := flow.Listen(name, h.Opt())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		ping.Serve(ctx, l, nil)
	}()
	t.Cleanup(func() {
		cancel()
		l.Close()
		<-done
	})
}

// TestPingAcrossHosts is the udp4/udp6 shim's end-to-end test: two
// IRMds with their own run directories, one IPCP each (127.0.0.1 and 127.0.0.2, or
// ::1 twice), each the other's peer, and 1000 pings ping-pong (one in flight: a
// raw flow promises no delivery of a burst that overflows a socket
// buffer, but loses nothing when nothing queues).
func TestPingAcrossHosts(t *testing.T) {
	for _, c := range []struct{ typ, ipA, ipB string }{
		{"udp4", "127.0.0.1", "127.0.0.2"},
		{"udp6", "::1", "::1"},
	} {
		t.Run(c.typ, func(t *testing.T) {
			if c.typ == "udp6" {
				skipNoIPv6(t)
			}
			hA, hB, addrA := pair(t, c.typ, c.ipA, c.ipB)
			serve(t, hB, "oping")

			// Garbage first: counted, dropped, and harmless (version 3,
			// the udp version before the shared codec: a bad version;
			// version 4, type 99: a bad type).
			raw, err := net.Dial("udp", addrA)
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range [][]byte{{1}, {0, 0, 0, 0, 3, 1}, {0, 0, 0, 0, 4, 99}, {9, 9, 9, 9, 'x'}} {
				raw.Write(b)
			}
			raw.Close()
			deadline := time.Now().Add(10 * time.Second)
			for text, st := show(t, hA); st.Counters["rx-datagrams"] < 4; text, st = show(t, hA) {
				if time.Now().After(deadline) {
					t.Fatalf("garbage not seen:\n%s", text)
				}
				time.Sleep(10 * time.Millisecond)
			}

			st, err := ping.Run(context.Background(), ping.Config{Name: "oping", QoS: qos.Raw(), Count: 1000,
				Flood: true, Size: 64, Wait: 10 * time.Second, Opts: []flow.Option{hA.Opt()}})
			if err != nil {
				t.Fatal(err)
			}
			if st.Transmitted != 1000 || st.Received != 1000 {
				t.Fatalf("%d transmitted, %d received", st.Transmitted, st.Received)
			}
			text, sh := show(t, hA)
			// The flow went direct: the applications' packets crossed
			// their data sockets, not the IPCPs' (what the client wrote
			// before it took its socket went through its IPCP's copy).
			for name, want := range map[string]int{"drop-truncated": 1, "drop-bad-version": 1, "drop-bad-type": 1,
				"drop-unknown-eid": 1, "rx-data": 0, "flows-direct": 1} {
				if got := sh.Counters[name]; got != uint64(want) {
					t.Errorf("%s = %d, want %d\n%s", name, got, want, text)
				}
			}
			if !strings.Contains(text, "peers    "+hostPort(c.ipB, "")) {
				t.Errorf("show lacks the peer:\n%s", text)
			}
		})
	}
}

// TestDeallocGivesEOF closes a flow at either end and expects the other
// end's Read to return io.EOF.
func TestDeallocGivesEOF(t *testing.T) {
	hA, hB, _ := pair(t, "udp4", "127.0.0.1", "127.0.0.2")
	hB.Register(t, "sink", "udp")
	l, err := flow.Listen("sink", hB.Opt())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, closer := range []string{"allocator", "acceptor"} {
		a, err := flow.Alloc(ctx, "sink", qos.Raw(), hA.Opt())
		if err != nil {
			t.Fatal(err)
		}
		b, err := l.Accept(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if a.MTU() != b.MTU() || a.MTU() <= 0 || a.MTU() > 65000 {
			t.Fatalf("MTUs %d and %d", a.MTU(), b.MTU())
		}
		if _, err := a.Write(make([]byte, a.MTU()+1)); err == nil {
			t.Fatal("write above the MTU accepted")
		}
		a.Write([]byte("hi"))
		buf := make([]byte, 16)
		b.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := b.Read(buf); err != nil || string(buf[:n]) != "hi" {
			t.Fatalf("read %q %v", buf[:n], err)
		}
		closing, other := a, b
		if closer == "acceptor" {
			closing, other = b, a
		}
		closing.Close()
		other.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := other.Read(buf); !errors.Is(err, io.EOF) {
			t.Fatalf("%s closed: other end read %v, want io.EOF", closer, err)
		}
		other.Close()
	}
}

// TestBootstrapErrorsReachTheUser checks that a bad or busy address
// fails the bootstrap with a message that says why.
func TestBootstrapErrorsReachTheUser(t *testing.T) {
	h := testenv.StartHost(t)
	busy, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	inUse := strconv.Itoa(busy.LocalAddr().(*net.UDPAddr).Port)
	for i, c := range []struct {
		params map[string]string
		want   string
	}{
		{map[string]string{"ip": "127.0.0.1", "port": inUse}, "address already in use"},
		{map[string]string{"ip": "127.0.0.300"}, `ip "127.0.0.300" is not an IP address`},
		{map[string]string{"port": "3435"}, "missing parameter ip"},
	} {
		err := h.Call(ctrl.OpIPCPBootstrap, ctrl.IPCPBootstrap{Type: "udp4", Name: fmt.Sprint("bad", i), Layer: "udp", Params: c.params}, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: got %v, want %q", c.params, err, c.want)
		}
	}
}

// TestPingWithBinaries does the same with the real irm, IRMds and oping
// as processes.
func TestPingWithBinaries(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short: builds and runs the binaries")
	}
	dirA, _ := testenv.StartDaemon(t, "")
	dirB, _ := testenv.StartDaemon(t, "")
	pA, pB := port(t, "127.0.0.1"), port(t, "127.0.0.2")
	testenv.MustRun(t, "", dirA, "irm", "ipcp", "bootstrap", "type", "udp4", "name", "a", "layer", "udp",
		"ip", "127.0.0.1", "port", pA, "peer", "127.0.0.2:"+pB)
	testenv.MustRun(t, "", dirB, "irm", "ipcp", "bootstrap", "type", "udp4", "name", "b", "layer", "udp",
		"ip", "127.0.0.2", "port", pB, "peer", "127.0.0.1:"+pA)
	testenv.MustRun(t, "", dirB, "irm", "name", "register", "oping", "layer", "udp")
	srv := testenv.Start(t, "", dirB, "oping", "-l", "-n", "oping")
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(srv.Out.String(), "serving") {
		if time.Now().After(deadline) {
			t.Fatalf("oping server did not start: %s", srv.Out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	out := testenv.MustRun(t, "", dirA, "oping", "-n", "oping", "-c", "1000", "-f", "-Q")
	if !strings.Contains(out, "1000 packets transmitted, 1000 received, 0% packet loss") {
		t.Fatalf("oping:\n%s", out)
	}
	out = testenv.MustRun(t, "", dirA, "irm", "layer", "show", "udp", "--json")
	var info ctrl.LayerInfo
	if err := json.Unmarshal([]byte(out), &info); err != nil || info.Status == nil || info.Status.Shim == nil {
		t.Fatalf("irm layer show udp --json: %v\n%s", err, out)
	}
	// The flow went direct: no data came through the IPCP's socket.
	if st := info.Status.Shim; st.Address != "127.0.0.1:"+pA || st.Counters["flows-direct"] != 1 || st.Counters["rx-data"] != 0 {
		t.Fatalf("irm layer show udp --json:\n%s", out)
	}
}

// TestAllocFloodProcesses is the allocation flood with real processes:
// a stranger with no IRMd floods B's udp4 IPCP (a process under its
// IRMd, with an oping server accepting every flow) with alloc requests,
// confirming every "ok", while A pings B. B's IPCP keeps at most its
// per-source cap of flows and a bounded number of descriptors, counts
// the refusals, answers show, and A still allocates and gets replies.
func TestAllocFloodProcesses(t *testing.T) {
	hA, hB, _ := pair(t, "udp4", "127.0.0.1", "127.0.0.2")
	serve(t, hB, "oping")
	var addrB string
	var pid int
	for _, i := range hB.IPCPs(t) {
		if i.Name == "b" {
			pid = i.PID
		}
	}
	if _, st := show(t, hB); st.Address != "" {
		addrB = st.Address
	}
	if pid == 0 || addrB == "" {
		t.Fatalf("no IPCP b (pid %d, address %q)", pid, addrB)
	}
	fds := func() int {
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		if err != nil {
			t.Skipf("skipped: cannot read /proc/%d/fd: %v", pid, err)
		}
		return len(ents)
	}
	fdsBefore := fds()
	c, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 3)}, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addrB)))
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{}, 2)
	var sent, back int
	go func() {
		defer func() { done <- struct{}{} }()
		for eid := uint32(1); ; eid++ {
			select {
			case <-stop:
				return
			default:
			}
			b := udp.AllocReqFrame(eid, "oping", 9)
			if _, err := c.Write(b); err == nil {
				sent += len(b)
			}
			if eid%64 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		buf := make([]byte, 2048)
		for {
			n, err := c.Read(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			back += n
			if conf, ok := udp.ConfirmFor(buf[:n]); ok {
				c.Write(conf)
			}
		}
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
			c.Close()
			<-done
			<-done
		}
	}()

	// The flood reaches the per-source cap and stays there.
	deadline := time.Now().Add(20 * time.Second)
	for text, st := show(t, hB); st.Counters["refused-peer-flows-full"] == 0; text, st = show(t, hB) {
		if time.Now().After(deadline) {
			t.Fatalf("the flood never hit the per-source cap:\n%s", text)
		}
		time.Sleep(20 * time.Millisecond)
	}
	st, err := ping.Run(context.Background(), ping.Config{Name: "oping", QoS: qos.Raw(), Count: 200,
		Interval: time.Millisecond, Size: 64, Wait: 5 * time.Second, Opts: []flow.Option{hA.Opt()}})
	if err != nil {
		t.Fatalf("honest ping during the flood: %v", err)
	}
	t.Logf("honest ping during the flood: %d sent, %d received, rtt median %.3f ms", st.Transmitted, st.Received, st.MedianMS)
	if st.Received == 0 {
		t.Fatal("no reply to the honest ping during the flood")
	}
	text, sh := show(t, hB)
	// The oping server took up to the cap from the flooder, plus the
	// honest flows: A's ping flow (and a slot or two in flux).
	if n := sh.Limits.Flows; n > udp.TestMaxFlowsPerPeer+3 {
		t.Fatalf("%d incoming flows, cap %d per source:\n%s", n, udp.TestMaxFlowsPerPeer, text)
	}
	// Each flow costs B's IPCP its channel and a copy of its data socket.
	if n := fds(); n > fdsBefore+2*(udp.TestMaxFlowsPerPeer+3)+8 {
		t.Fatalf("%d descriptors in B's IPCP (%d before the flood)", n, fdsBefore)
	}
	close(stop)
	c.Close()
	<-done
	<-done
	if back > sent {
		t.Fatalf("amplification: the flooder sent %d bytes, got %d back", sent, back)
	}
	t.Logf("flood: %d B sent, %d B back; B: %d descriptors (%d before)\n%s", sent, back, fds(), fdsBefore, text)
}
