package unicast_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/ouro-net/ouro/dt"
	"github.com/ouro-net/ouro/enroll"
	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/flow/ping"
	"github.com/ouro-net/ouro/internal/topo"
	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/qos"
)

func call(t *testing.T, h *topo.Host, op string, req any) {
	t.Helper()
	if err := topo.Call(h.Dir, op, req, nil); err != nil {
		t.Fatalf("%s at %s: %v", op, h.Name, err)
	}
}

// TestRecursion stacks a second unicast layer (net2) over the square's
// layer (net), exactly as net stands on udp, and pings through both.
func TestRecursion(t *testing.T) {
	tp := square(t, 1)
	if show, err := tp.WaitRoute("a", "d", 2, 20*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, show)
	}
	a, d := tp.Hosts["a"], tp.Hosts["d"]
	call(t, a, ctrl.OpIPCPBootstrap, ctrl.IPCPBootstrap{Type: "unicast", Name: "a2", Layer: "net2", Autobind: true})
	call(t, a, ctrl.OpNameRegister, ctrl.NameRegister{Name: "a2", Layers: []string{"net"}})
	call(t, a, ctrl.OpNameRegister, ctrl.NameRegister{Name: "net2", Layers: []string{"net"}})
	waitDirectory(t, tp, "d", "net2")
	call(t, d, ctrl.OpIPCPCreate, ctrl.IPCPCreate{Type: "unicast", Name: "d2"})
	call(t, d, ctrl.OpIPCPEnroll, ctrl.IPCPEnroll{Name: "d2", Layer: "net2", Autobind: true})
	call(t, d, ctrl.OpNameRegister, ctrl.NameRegister{Name: "d2", Layers: []string{"net"}})
	call(t, d, ctrl.OpIPCPConnect, ctrl.IPCPConnect{Name: "d2", Dst: "a2"})
	call(t, d, ctrl.OpNameRegister, ctrl.NameRegister{Name: "deep", Layers: []string{"net2"}})

	l, err := flow.Listen("deep", d.Opt())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ping.Serve(ctx, l, nil)
	var u *ctrl.UnicastStatus
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, u = netStatus(t, a.Dir, "net2"); knowsName(u, "deep") {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	f, err := flow.Alloc(ctx, "deep", qos.Raw(), a.Opt())
	if err != nil {
		info, _ := layerInfo(a.Dir, "net2")
		t.Fatalf("allocate through net2: %v\n%s", err, info.Render())
	}
	defer f.Close()
	if f.Layer() != "net2" {
		t.Fatalf("flow runs in layer %q, want net2", f.Layer())
	}
	st, err := ping.RunOn(ctx, f, ping.Config{Name: "deep", Count: 200, Flood: true, Size: 100})
	if err != nil || st.Received != 200 {
		t.Fatalf("ping through two layers: %v %+v", err, st)
	}
	t.Logf("through net2 over net over udp: %s", strings.TrimSpace(st.Summary()))
	// net2's adjacency runs over a flow of net.
	if len(u.Adjacencies) == 0 {
		t.Fatal("net2 has no adjacency")
	}
	for _, adj := range u.Adjacencies {
		if adj.Lower != "net" {
			t.Fatalf("net2 adjacency to %s over %q, not over net", adj.Peer, adj.Lower)
		}
	}
}

func pair(t *testing.T) *topo.Topo {
	t.Helper()
	tp := build(t, topo.Config{Hosts: []string{"a", "b"}, Links: [][2]string{{"b", "a"}}})
	waitRoute(t, tp, "a", "b", 1)
	return tp
}

// TestBadInput checks the unicast layer's answers to bad requests and
// hostile peers; the IPCP keeps serving throughout.
func TestBadInput(t *testing.T) {
	tp := pair(t)
	a, b := tp.Hosts["a"], tp.Hosts["b"]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// Enrolling in a layer that does not exist.
	call(t, b, ctrl.OpIPCPCreate, ctrl.IPCPCreate{Type: "unicast", Name: "x"})
	err := topo.Call(b.Dir, ctrl.OpIPCPEnroll, ctrl.IPCPEnroll{Name: "x", Layer: "nosuch"}, nil)
	if err == nil || !strings.Contains(err.Error(), "nosuch") {
		t.Fatalf("enroll in a missing layer: %v", err)
	}
	// Enrolling through a member of another layer.
	err = topo.Call(b.Dir, ctrl.OpIPCPEnroll, ctrl.IPCPEnroll{Name: "x", Layer: "other", Dst: "a"}, nil)
	if err == nil || !strings.Contains(err.Error(), "not other") {
		t.Fatalf("enroll through a member of another layer: %v", err)
	}

	// A hello of the wrong version is refused with a clear error.
	f, err := flow.Alloc(ctx, "a", qos.Raw(), b.Opt(), flow.WithLayer("udp1"))
	if err != nil {
		t.Fatal(err)
	}
	var reply enroll.Hello
	err = enroll.Exchange(ctx, f, 1, enroll.Hello{V: 99, Addr: 7, Layer: "net"}, &reply)
	if err != nil || !strings.Contains(reply.Err, "version") {
		t.Fatalf("wrong-version hello: %v %+v", err, reply)
	}
	f.Close()

	// A well-formed neighbour that then sends garbage routing updates
	// and a data packet whose TTL runs out.
	f, err = flow.Alloc(ctx, "a", qos.Raw(), b.Opt(), flow.WithLayer("udp1"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	reply = enroll.Hello{}
	if err := enroll.Exchange(ctx, f, 1, enroll.Hello{V: enroll.Version, Addr: 0xabcd, IPCP: "intruder", Layer: "net"}, &reply); err != nil || reply.Err != "" {
		t.Fatalf("hello: %v %+v", err, reply)
	}
	// Routing frames: kind 2, a 4-byte sequence number, the update.
	f.Write([]byte{2, 0, 0, 0, 1, 0xc1, 0xc1, 0xc1})
	stale, _ := msgpack.Marshal([]any{9, 1, nil})
	f.Write(append([]byte{2, 0, 0, 0, 2}, stale...))
	layout := dt.DefaultLayout()
	pkt := make([]byte, 1+layout.Len()+4)
	layout.Encode(pkt[1:], &dt.PCI{Dst: 0x12345678, TTL: 1, EID: 5})
	f.Write(pkt)
	var k ctrl.UnicastCounters
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		_, u := hostStatus(t, tp, "a")
		if k = u.Counters; k.TTLExpired == 1 && k.LSUsMalformed == 2 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if k.TTLExpired != 1 || k.LSUsMalformed != 2 {
		show, _ := tp.Show("a")
		t.Fatalf("hostile input not counted (ttl expired %d, want 1; malformed lsus %d, want 2):\n%s", k.TTLExpired, k.LSUsMalformed, show)
	}

	// A flow to a name nobody accepts fails clearly.
	if err := tp.Register("b", "ghost"); err != nil {
		t.Fatal(err)
	}
	waitDirectory(t, tp, "a", "ghost")
	if _, err := flow.Alloc(ctx, "ghost", qos.Raw(), a.Opt()); err == nil || !strings.Contains(err.Error(), "no process accepts") {
		t.Fatalf("alloc to a name nobody accepts: %v", err)
	}
	// The layer still works.
	if err := tp.Register("b", "echo"); err != nil {
		t.Fatal(err)
	}
	l, err := flow.Listen("echo", b.Opt())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go ping.Serve(ctx, l, nil)
	waitDirectory(t, tp, "a", "echo")
	st, err := ping.Run(ctx, ping.Config{Name: "echo", Count: 10, Interval: time.Millisecond, Opts: []flow.Option{a.Opt()}})
	if err != nil || st.Received != 10 {
		t.Fatalf("layer broken after bad input: %v %+v", err, st)
	}
}
