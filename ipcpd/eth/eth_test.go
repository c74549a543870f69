package eth_test

import (
	"context"
	"encoding/binary"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/internal/testenv"
	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/qos"
)

func TestMain(m *testing.M) {
	testenv.MaybeRunIPCP()
	code := m.Run()
	testenv.CleanupBinaries()
	os.Exit(code)
}

// segment is two hosts (an IRMd each, in its own namespace) on one
// veth link, each with an eth-dix IPCP in layer "eth", and an oping
// server listening on B.
type segment struct {
	nsA, nsB, a, b, dirA, dirB string
}

func setupSegment(t *testing.T) *segment {
	t.Helper()
	s := &segment{nsA: testenv.NetNS(t), nsB: testenv.NetNS(t)}
	s.a, s.b = testenv.Veth(t, s.nsA, s.nsB)
	s.dirA, _ = testenv.StartDaemon(t, s.nsA)
	s.dirB, _ = testenv.StartDaemon(t, s.nsB)
	testenv.MustRun(t, s.nsA, s.dirA, "irm", "ipcp", "bootstrap", "type", "eth-dix", "name", "ea", "layer", "eth", "dev", s.a)
	testenv.MustRun(t, s.nsB, s.dirB, "irm", "ipcp", "bootstrap", "type", "eth-dix", "name", "eb", "layer", "eth", "dev", s.b)
	testenv.MustRun(t, s.nsB, s.dirB, "irm", "name", "register", "oping", "layer", "eth")
	testenv.Start(t, s.nsB, s.dirB, "oping", "-l", "-n", "oping")
	waitListening(t, s.dirB, "oping")
	return s
}

// waitListening waits until a process listens on name at the IRMd of dir.
func waitListening(t *testing.T, dir, name string) {
	t.Helper()
	for range 500 {
		var l ctrl.NameList
		if err := testenv.CallDir(dir, ctrl.OpNameList, nil, &l); err == nil {
			for _, n := range l.Names {
				if n.Name == name && len(n.Processes) > 0 {
					return
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("nobody listens on %q", name)
}

var lossRE = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received, ([0-9.]+)% packet loss`)

// pingLoss parses oping's summary.
func pingLoss(t *testing.T, out string) (sent, received int, loss float64) {
	t.Helper()
	m := lossRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no oping summary in:\n%s", out)
	}
	sent, _ = strconv.Atoi(m[1])
	received, _ = strconv.Atoi(m[2])
	loss, _ = strconv.ParseFloat(m[3], 64)
	return sent, received, loss
}

func TestEthOping(t *testing.T) {
	s := setupSegment(t)
	// Ping-pong (-f: one probe in flight): no queue can overflow, so
	// nothing may be lost; a back-to-back burst may lose to kernel queues.
	out := testenv.MustRun(t, s.nsA, s.dirA, "oping", "-n", "oping", "-c", "1000", "-f", "-Q")
	t.Logf("oping:\n%s", out)
	sent, received, loss := pingLoss(t, out)
	if sent != 1000 || received != 1000 || loss != 0 {
		t.Fatalf("sent %d, received %d, loss %v%%", sent, received, loss)
	}
	show := testenv.MustRun(t, s.nsA, s.dirA, "irm", "layer", "show", "eth")
	t.Logf("layer show:\n%s", show)
	for _, want := range []string{s.a, "EtherType 0xa000", "flow MTU 1496", "carrier  up", "PACKET_QDISC_BYPASS"} {
		if !strings.Contains(show, want) {
			t.Errorf("layer show lacks %q", want)
		}
	}
}

// probe is an oping request the server echoes.
func probe(seq uint64) []byte {
	b := make([]byte, 64)
	b[0] = 1
	binary.BigEndian.PutUint64(b[1:], seq)
	binary.BigEndian.PutUint64(b[9:], uint64(time.Now().UnixNano()))
	return b
}

// echo sends probes until one comes back.
func echo(t *testing.T, f *flow.Flow, replies <-chan []byte, seq *uint64) {
	t.Helper()
	for range 50 {
		*seq++
		if _, err := f.Write(probe(*seq)); err != nil {
			t.Fatalf("write: %v", err)
		}
		select {
		case r, ok := <-replies:
			if !ok {
				t.Fatal("flow ended")
			}
			if r[0] == 2 {
				return
			}
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatal("no echo")
}

// TestEthCarrier: the test process allocates a flow through the IRMd in
// namespace A, then takes the link down at either end. The IPCP sees
// the carrier loss through netlink and the flow's Read loop reports
// DOWN; the link back up reports UP and the flow still works.
func TestEthCarrier(t *testing.T) {
	s := setupSegment(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f, err := flow.Alloc(ctx, "oping", qos.Raw(), flow.WithRunDir(s.dirA))
	if err != nil {
		t.Fatalf("alloc: %v", err)
	}
	defer f.Close()
	if f.MTU() != 1496 {
		t.Errorf("MTU = %d, want 1496", f.MTU())
	}
	replies := make(chan []byte, 64)
	go func() {
		defer close(replies)
		buf := make([]byte, 2048)
		for {
			n, err := f.Read(buf)
			if err != nil {
				return
			}
			select {
			case replies <- append([]byte(nil), buf[:n]...):
			default:
			}
		}
	}()
	var seq uint64
	echo(t, f, replies, &seq)

	wait := func(want flow.State) flow.Event {
		t.Helper()
		select {
		case ev := <-f.Events():
			if ev.State != want {
				t.Fatalf("event %v, want %v", ev.State, want)
			}
			return ev
		case <-time.After(5 * time.Second):
			t.Fatalf("no %v event", want)
			return flow.Event{}
		}
	}
	for _, end := range []struct{ what, ns, dev string }{
		{"peer end (" + s.b + ")", s.nsB, s.b},
		{"local end (" + s.a + ")", s.nsA, s.a},
	} {
		start := time.Now()
		testenv.LinkSet(t, end.ns, end.dev, "down")
		returned := time.Now()
		ev := wait(flow.Down)
		lat := max(ev.At.Sub(returned), 0)
		t.Logf("%s down: DOWN seen %v after `ip link set` returned (%v after it started)",
			end.what, lat, ev.At.Sub(start))
		if lat > 2*time.Second {
			t.Errorf("DOWN took %v", lat)
		}
		if f.State() != flow.Down {
			t.Errorf("state %v after DOWN event", f.State())
		}
		start = time.Now()
		testenv.LinkSet(t, end.ns, end.dev, "up")
		returned = time.Now()
		ev = wait(flow.Up)
		t.Logf("%s up: UP seen %v after `ip link set` returned (%v after it started)",
			end.what, max(ev.At.Sub(returned), 0), ev.At.Sub(start))
		if f.State() != flow.Up {
			t.Errorf("state %v after UP event", f.State())
		}
		echo(t, f, replies, &seq)
	}
}

// Bad bootstrap parameters and devices fail with a clear error, without
// root: the IRMd runs in this process and the IPCP re-executes the test
// binary.
func TestEthBootstrapErrors(t *testing.T) {
	h := testenv.StartHost(t)
	cases := []struct {
		params map[string]string
		want   string
	}{
		{map[string]string{}, "missing parameter dev"},
		{map[string]string{"dev": "lo", "mtu": "9000"}, "unknown parameter mtu"},
		{map[string]string{"dev": "lo", "ethertype": "0x800x"}, "ethertype"},
		{map[string]string{"dev": "nosuchdev0"}, "no such network interface"},
		{map[string]string{"dev": "lo"}, "not an Ethernet device"},
	}
	for i, c := range cases {
		name := "e" + strconv.Itoa(i)
		err := h.Call(ctrl.OpIPCPBootstrap, ctrl.IPCPBootstrap{Type: "eth-dix", Name: name, Layer: "eth", Params: c.params}, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err %v, want %q", c.params, err, c.want)
		} else {
			t.Logf("%v: %v", c.params, err)
		}
	}
}
