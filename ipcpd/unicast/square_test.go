package unicast_test

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/flow/ping"
	"github.com/ouro-net/ouro/internal/testenv"
	"github.com/ouro-net/ouro/internal/topo"
	"github.com/ouro-net/ouro/lib/qos"
)

func TestMain(m *testing.M) {
	testenv.MaybeRunIPCP()
	code := m.Run()
	testenv.CleanupBinaries()
	os.Exit(code)
}

// build starts a topology of this package's IPCP binary with the tests'
// parameters (cfg's own, if set) and stops it with the test.
func build(t *testing.T, cfg topo.Config) *topo.Topo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg.Exe, cfg.Types = os.Args[0], testenv.Types()
	if cfg.Params == nil {
		cfg.Params = testParams
	}
	tp, err := topo.Build(ctx, cfg)
	if err != nil {
		t.Fatalf("build %v: %v", cfg.Links, err)
	}
	t.Cleanup(tp.Close)
	return tp
}

// waitRoute waits until host from has hops next hops towards to.
func waitRoute(t *testing.T, tp *topo.Topo, from, to string, hops int) {
	t.Helper()
	if show, err := tp.WaitRoute(from, to, hops, 20*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, show)
	}
}

// squareLinks are A-B-D-C-A: A and D are two hops apart over two equal
// paths.
var squareLinks = [][2]string{{"b", "a"}, {"c", "a"}, {"d", "b"}, {"d", "c"}}

// square is the square with lowers udp layers joining every pair.
func square(t *testing.T, lowers int) *topo.Topo {
	t.Helper()
	return build(t, topo.Config{Hosts: []string{"a", "b", "c", "d"}, Links: squareLinks, Lowers: lowers})
}

// members maps the IPCP names of host's members to their addresses.
func members(t *testing.T, tp *topo.Topo, host string) map[string]uint64 {
	t.Helper()
	_, u := hostStatus(t, tp, host)
	out := map[string]uint64{}
	for _, m := range u.Members {
		out[m.IPCP] = m.Addr
	}
	return out
}

// TestSquareOverUDP is the square A-B-D-C-A: four IRMds on loopback udp4,
// only the square's adjacencies, oping A to D with 0% loss, A's route to
// D over both B and C, four distinct addresses, and the same addresses
// after a full rebuild.
func TestSquareOverUDP(t *testing.T) {
	tp := square(t, 1)
	show, err := tp.WaitRoute("a", "d", 2, 20*time.Second)
	if err != nil {
		t.Fatalf("%v\n%s", err, show)
	}
	m := members(t, tp, "a")
	if len(m) != 4 {
		t.Fatalf("want 4 members, got %v\n%s", m, show)
	}
	seen := map[uint64]bool{}
	for _, a := range m {
		if seen[a] {
			t.Fatalf("duplicate address in %v", m)
		}
		seen[a] = true
	}
	if err := tp.Register("d", "oping"); err != nil {
		t.Fatal(err)
	}
	d := tp.Hosts["d"]
	l, err := flow.Listen("oping", d.Opt())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ping.Serve(ctx, l, nil)
	defer l.Close()
	waitDirectory(t, tp, "a", "oping")
	st, err := ping.Run(ctx, ping.Config{Name: "oping", QoS: qos.Raw(), Count: 1000, Flood: true, Size: 64,
		Opts: []flow.Option{tp.Hosts["a"].Opt()}})
	if err != nil {
		t.Fatal(err)
	}
	if st.Received != 1000 {
		for _, h := range []string{"a", "b", "c", "d"} {
			show, _ := tp.Show(h)
			t.Logf("layer show at %s:\n%s", h, show)
			info, _ := layerInfo(tp.Hosts[h].Dir, "udp1")
			t.Logf("udp1 at %s:\n%s", h, info.Render())
		}
		t.Fatalf("%s", st.Summary())
	}
	t.Logf("square A->D: %s", strings.TrimSpace(st.Summary()))

	// Deallocation reaches the far end promptly.
	sink := listenAt(t, tp, "d", "sink", "a")
	f, err := flow.Alloc(ctx, "sink", qos.Raw(), tp.Hosts["a"].Opt())
	if err != nil {
		t.Fatal(err)
	}
	g, err := sink.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	f.Close()
	g.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := g.Read(make([]byte, 64)); !errors.Is(err, io.EOF) {
		t.Fatalf("far end after close: %v", err)
	}
	t.Logf("EOF at D %v after Close at A", time.Since(start))
	cancel()

	// Tear down and rebuild: the same addresses come back.
	tp.Close()
	tp2 := square(t, 1)
	show2, err := tp2.WaitRoute("a", "d", 2, 20*time.Second)
	if err != nil {
		t.Fatalf("%v\n%s", err, show2)
	}
	m2 := members(t, tp2, "a")
	for k, v := range m {
		if m2[k] != v {
			t.Fatalf("address of %s changed across rebuild: %x -> %x", k, v, m2[k])
		}
	}
}

// listenAt registers name at host, listens for it there, and waits until
// host from knows the name; the listener closes with the test.
func listenAt(t *testing.T, tp *topo.Topo, host, name, from string) *flow.Listener {
	t.Helper()
	if err := tp.Register(host, name); err != nil {
		t.Fatal(err)
	}
	l, err := flow.Listen(name, tp.Hosts[host].Opt())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	waitDirectory(t, tp, from, name)
	return l
}

func waitDirectory(t *testing.T, tp *topo.Topo, host, name string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, u := hostStatus(t, tp, host); knowsName(u, name) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never learnt name %s", host, name)
}

// testParams loosens the adjacency keepalive for tests: race-built IPCP
// processes on two shared cores can stall for tens of milliseconds,
// which the 10 ms x 3 default would take for a dead link. Detection
// speed with the defaults is measured by bench -failover, not here.
var testParams = map[string]string{"multiplier": "10"}
