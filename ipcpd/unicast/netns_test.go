package unicast_test

import (
	"context"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/flow/ping"
	"github.com/ouro-net/ouro/internal/testenv"
	"github.com/ouro-net/ouro/internal/topo"
	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/qos"
)

// nsLinks are the square's links A-B, A-C, B-D, C-D, each written as
// (the side that connects, the side it connects to), as in the udp
// square. Each link is its own veth pair and its own eth-dix layer,
// named after its two ends ("ab", "ac", "bd", "cd").
var nsLinks = [][2]string{{"b", "a"}, {"c", "a"}, {"d", "b"}, {"d", "c"}}

var nsHosts = []string{"a", "b", "c", "d"}

// nsLinkLayer names the eth-dix layer of a link.
func nsLinkLayer(l [2]string) string {
	if l[0] < l[1] {
		return l[0] + l[1]
	}
	return l[1] + l[0]
}

// nsSquare is the square over eth-dix: a network namespace per host,
// a veth pair per link, an IRMd process per namespace, an eth-dix IPCP
// per veth end, and the unicast layer "net" on top.
type nsSquare struct {
	ns     map[string]string            // host -> namespace
	dir    map[string]string            // host -> IRMd run directory
	daemon map[string]*testenv.Proc     // host -> IRMd process
	dev    map[string]map[string]string // host -> lower layer -> interface
}

// irm runs an irm command at host, failing the test on error.
func (s *nsSquare) irm(t *testing.T, host string, args ...string) string {
	t.Helper()
	return testenv.MustRun(t, s.ns[host], s.dir[host], "irm", args...)
}

// lowers lists host's lower layers in link order.
func (s *nsSquare) lowers(host string) []string {
	var out []string
	for _, l := range nsLinks {
		if l[0] == host || l[1] == host {
			out = append(out, nsLinkLayer(l))
		}
	}
	return out
}

// register registers name at host in every one of host's lower layers.
func (s *nsSquare) register(t *testing.T, host, name string) {
	t.Helper()
	args := []string{"name", "register", name}
	for _, l := range s.lowers(host) {
		args = append(args, "layer", l)
	}
	s.irm(t, host, args...)
}

// show returns the text of `irm layer show net` at host (for logs),
// asked from this process through the IRMd's run-directory socket.
func (s *nsSquare) show(host string) (string, error) {
	info, err := layerInfo(s.dir[host], "net")
	return info.Render(), err
}

// status returns the status of layer net at host.
func (s *nsSquare) status(t *testing.T, host string) *ctrl.UnicastStatus {
	t.Helper()
	_, u := netStatus(t, s.dir[host], "net")
	return u
}

// waitRoute polls host's view until its route to dst runs over want
// lower flows.
func (s *nsSquare) waitRoute(t *testing.T, host, dst string, want int, timeout time.Duration) *ctrl.UnicastStatus {
	t.Helper()
	start := time.Now()
	for time.Since(start) < timeout {
		info, err := layerInfo(s.dir[host], "net")
		if u, uerr := topo.UnicastOf(info); err == nil && uerr == nil && topo.RouteNextHops(u, dst) >= want {
			t.Logf("%s's route to %s over %d lower flows after %v", host, dst, want, time.Since(start).Round(time.Millisecond))
			return u
		}
		time.Sleep(50 * time.Millisecond)
	}
	text, _ := s.show(host)
	t.Fatalf("%s's route to %s did not reach %d lower flows in %v:\n%s", host, dst, want, timeout, text)
	return nil
}

// waitName polls host's view until the directory lists name.
func (s *nsSquare) waitName(t *testing.T, host, name string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if knowsName(s.status(t, host), name) {
			return
		}
	}
	text, _ := s.show(host)
	t.Fatalf("%s never learnt name %s:\n%s", host, name, text)
}

// waitListening waits until a process listens on name at host's IRMd.
func (s *nsSquare) waitListening(t *testing.T, host, name string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var l ctrl.NameList
		if err := topo.Call(s.dir[host], ctrl.OpNameList, nil, &l); err == nil {
			for _, n := range l.Names {
				if n.Name == name && len(n.Processes) > 0 {
					return
				}
			}
		}
	}
	t.Fatalf("nobody listens on %q at %s", name, host)
}

// dump logs every host's view of the layer, for failures.
func (s *nsSquare) dump(t *testing.T) {
	t.Helper()
	for _, h := range nsHosts {
		text, err := s.show(h)
		t.Logf("layer show net at %s (err %v):\n%s", h, err, text)
	}
}

// nsAdjacency is one row of the adjacencies section of a layer show.
// outByPeer sums the packets sent on host's adjacencies per peer.
func (s *nsSquare) outByPeer(t *testing.T, host string) map[string]uint64 {
	t.Helper()
	m := map[string]uint64{}
	for _, a := range s.status(t, host).Adjacencies {
		m[a.Peer] += a.PacketsOut
	}
	return m
}

// buildNetnsSquare builds the square A-B-D-C-A over eth-dix on veth
// pairs between four network namespaces and waits until A reaches D
// over both B and C.
func buildNetnsSquare(t *testing.T) *nsSquare {
	t.Helper()
	testenv.RequireRoot(t)
	// The irm and oping binaries are race-built under -race, and such a
	// binary sleeps a second at exit (GORACE atexit_sleep_ms defaults to
	// 1000): without this, every irm command would take a second.
	t.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	start := time.Now()
	s := &nsSquare{ns: map[string]string{}, dir: map[string]string{}, daemon: map[string]*testenv.Proc{},
		dev: map[string]map[string]string{}}
	for _, h := range nsHosts {
		s.ns[h] = testenv.NetNS(t)
		s.dev[h] = map[string]string{}
	}
	for _, l := range nsLinks {
		d0, d1 := testenv.Veth(t, s.ns[l[0]], s.ns[l[1]])
		s.dev[l[0]][nsLinkLayer(l)], s.dev[l[1]][nsLinkLayer(l)] = d0, d1
	}
	for _, h := range nsHosts {
		s.dir[h], s.daemon[h] = testenv.StartDaemon(t, s.ns[h])
	}
	// Show the daemons' logs (IPCPs included) when the test fails.
	t.Cleanup(func() {
		if t.Failed() {
			for _, h := range nsHosts {
				t.Logf("IRMd log of %s:\n%s", h, s.daemon[h].Out.String())
			}
		}
	})
	for _, h := range nsHosts {
		for _, l := range s.lowers(h) {
			s.irm(t, h, "ipcp", "bootstrap", "type", "eth-dix", "name", h+"."+l, "layer", l, "dev", s.dev[h][l])
		}
	}
	// A starts the layer; the others enroll through a neighbour that is
	// already a member and make themselves reachable in their lower
	// layers.
	boot := []string{"ipcp", "bootstrap", "type", "unicast", "name", "a", "layer", "net", "autobind"}
	for k, v := range testParams {
		boot = append(boot, k, v)
	}
	s.irm(t, "a", boot...)
	s.register(t, "a", "a")
	s.register(t, "a", "net")
	for _, e := range [][2]string{{"b", "a"}, {"c", "a"}, {"d", "b"}} {
		h, via := e[0], e[1]
		s.irm(t, h, "ipcp", "create", "type", "unicast", "name", h)
		s.irm(t, h, "ipcp", "enroll", "name", h, "layer", "net", "dst", via, "autobind")
		s.register(t, h, h)
	}
	for _, l := range nsLinks {
		s.irm(t, l[0], "ipcp", "connect", "name", l[0], "dst", l[1], "layer", nsLinkLayer(l))
	}
	u := s.waitRoute(t, "a", "d", 2, 30*time.Second)
	t.Logf("square over eth-dix built in %v", time.Since(start).Round(time.Millisecond))
	if len(u.Members) != 4 {
		t.Fatalf("want 4 members, got %+v", u.Members)
	}
	for _, a := range u.Adjacencies {
		if want := nsLinkLayer([2]string{"a", a.Peer}); a.Lower != want {
			t.Fatalf("A's adjacency to %s runs over %q, want %q", a.Peer, a.Lower, want)
		}
	}
	return s
}

var nsOpingSummaryRE = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

// TestSquareOverEthNetns is the square over eth-dix on veth pairs
// between four network namespaces: A reaches D over both B and C, and
// 1000 ping-pong probes (oping -f: one in flight, so no kernel queue
// can overflow) from A to D lose nothing.
func TestSquareOverEthNetns(t *testing.T) {
	testenv.RequireRoot(t)
	s := buildNetnsSquare(t)
	s.irm(t, "d", "name", "register", "oping", "layer", "net")
	testenv.Start(t, s.ns["d"], s.dir["d"], "oping", "-l", "-n", "oping")
	s.waitName(t, "a", "oping")
	s.waitListening(t, "d", "oping")
	sent, received := s.oping(t, "-f")
	if sent != 1000 || received != 1000 {
		s.dump(t)
		t.Fatalf("%d transmitted, %d received; want 1000 and 1000 (0%% loss)", sent, received)
	}
}

// oping runs 1000 quiet probes from A to the oping server at D, with
// extra arguments, and returns how many it sent and got back.
func (s *nsSquare) oping(t *testing.T, args ...string) (sent, received int) {
	t.Helper()
	args = append([]string{"-n", "oping", "-c", "1000", "-Q"}, args...)
	out, code := testenv.Run(t, s.ns["a"], s.dir["a"], "oping", args...)
	t.Logf("oping %s from A to D over eth-dix (exit %d):\n%s", strings.Join(args, " "), code, strings.TrimSpace(out))
	if code != 0 {
		s.dump(t)
		t.Fatalf("oping: exit %d", code)
	}
	m := nsOpingSummaryRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no oping summary in:\n%s", out)
	}
	sent, _ = strconv.Atoi(m[1])
	received, _ = strconv.Atoi(m[2])
	return sent, received
}

// TestCarrierFailoverNetns streams 1 ms pings from A to D across the
// eth-dix square and sets down the veth (at A's end) that carries the
// stream: the eth-dix IPCP sees the carrier loss through netlink, the
// unicast layer suspends the adjacency at once, and the stream carries
// on over the other side. Bringing the link back restores both paths.
// The two subtests cut A's link to B, then A's link to C, each time
// with a flow that the forwarding table hashed onto that link.
func TestCarrierFailoverNetns(t *testing.T) {
	testenv.RequireRoot(t)
	s := buildNetnsSquare(t)
	s.irm(t, "d", "name", "register", "oping", "layer", "net")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l, err := flow.Listen("oping", flow.WithRunDir(s.dir["d"]))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go ping.Serve(ctx, l, nil)
	s.waitName(t, "a", "oping")
	for _, peer := range []string{"b", "c"} {
		t.Run("cut a-"+peer, func(t *testing.T) { nsCarrierCut(ctx, t, s, peer) })
	}
}

// nsCarrierCut runs one cut of A's link to peer.
func nsCarrierCut(ctx context.Context, t *testing.T, s *nsSquare, peer string) {
	layer := nsLinkLayer([2]string{"a", peer})
	dev := s.dev["a"][layer]
	f := nsFlowOver(ctx, t, s, peer)
	defer f.Close()

	type result struct {
		st  *ping.Stats
		err error
	}
	done := make(chan result, 1)
	go func() {
		st, err := ping.RunOn(ctx, f, ping.Config{Name: "oping", QoS: qos.Raw(), Count: 3000,
			Interval: time.Millisecond, Size: 64})
		done <- result{st, err}
	}()
	time.Sleep(500 * time.Millisecond)
	logStart := len(s.daemon["a"].Out.String())
	t.Logf("setting %s (A's end of link %s) down", dev, layer)
	testenv.LinkSet(t, s.ns["a"], dev, "down")
	downAt := time.Now()
	linkUp := false
	defer func() {
		if !linkUp {
			testenv.LinkSet(t, s.ns["a"], dev, "up")
		}
	}()
	var r result
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("ping run did not end")
	}
	if r.err != nil {
		s.dump(t)
		t.Fatalf("flow failed across the carrier loss: %v", r.err)
	}
	st := r.st
	lost := st.Transmitted - st.Received
	t.Logf("cut a-%s by carrier loss: %d sent, %d lost, longest gap %.1f ms", peer, st.Transmitted, lost, st.LongestGapMS)
	if st.Transmitted != 3000 {
		t.Errorf("%d probes sent, want 3000", st.Transmitted)
	}
	// Generous bound: carrier loss is seen at once; allow for a noisy,
	// shared machine.
	if lost > 300 {
		s.dump(t)
		t.Errorf("lost %d of %d packets across the cut", lost, st.Transmitted)
	}

	// The link is still down: A's adjacency over it must say so, and A's
	// log must say why.
	u := s.status(t, "a")
	text, _ := s.show("a")
	found := false
	for _, a := range u.AdjacenciesTo(peer) {
		if a.Lower == layer {
			found = true
			if a.Up {
				t.Errorf("A's adjacency to %s over %s is up with its link down:\n%s", peer, layer, text)
			}
		}
	}
	if !found {
		t.Errorf("A has no adjacency to %s over %s:\n%s", peer, layer, text)
	}
	if n := topo.RouteNextHops(u, "d"); n != 1 {
		t.Errorf("A's route to D over %d lower flows with a link down, want 1:\n%s", n, text)
	}
	logs := s.daemon["a"].Out.String()[logStart:]
	want := regexp.MustCompile(`adjacency down.*peer=` + peer + `.*lower=` + layer + `.*reason="lower flow reports carrier loss"`)
	if line := want.FindString(logs); line == "" {
		t.Errorf("A's log lacks the carrier-loss suspension of its adjacency to %s; log since the cut:\n%s", peer, logs)
	} else {
		t.Logf("A's log: %s", line)
	}

	// Back up: both paths return.
	testenv.LinkSet(t, s.ns["a"], dev, "up")
	linkUp = true
	t.Logf("link %s was down for %v", layer, time.Since(downAt).Round(time.Millisecond))
	s.waitRoute(t, "a", "d", 2, 10*time.Second)
}

// nsFlowOver allocates a raw flow from A to "oping" at D that A's
// forwarding table sends through peer: it sends a burst of non-probe
// packets (the server ignores them) on each new flow and keeps the one
// whose packets left through peer.
func nsFlowOver(ctx context.Context, t *testing.T, s *nsSquare, peer string) *flow.Flow {
	t.Helper()
	junk := make([]byte, ping.HeaderSize) // type 0: not a probe, not echoed
	for try := 1; try <= 12; try++ {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		f, err := flow.Alloc(actx, "oping", qos.Raw(), flow.WithRunDir(s.dir["a"]))
		cancel()
		if err != nil {
			t.Fatalf("allocate oping at D from A: %v", err)
		}
		before := s.outByPeer(t, "a")
		for range 200 {
			if _, err := f.Write(junk); err != nil {
				t.Fatalf("write: %v", err)
			}
		}
		time.Sleep(50 * time.Millisecond)
		after := s.outByPeer(t, "a")
		delta := map[string]int64{}
		for _, p := range []string{"b", "c"} {
			delta[p] = int64(after[p] - before[p])
		}
		other := map[string]string{"b": "c", "c": "b"}[peer]
		if delta[peer] > delta[other]+100 {
			t.Logf("flow %d goes through %s (try %d; packets out via b %d, via c %d)", f.ID(), peer, try, delta["b"], delta["c"])
			return f
		}
		f.Close()
	}
	s.dump(t)
	t.Fatalf("no flow from A to D hashed through %s in 12 tries", peer)
	return nil
}
