package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ouro-net/ouro/internal/testenv"
	"github.com/ouro-net/ouro/internal/topo"
	"github.com/ouro-net/ouro/lib/ctrl"
)

// The tests in this file drive a running unicast layer through the irm
// CLI: hosts are IRMds on loopback (internal/topo), the commands are
// the irm binary run against each host's run directory.

// layerTopo builds hosts joined by links in a unicast layer "net" with
// fast hellos and the given extra bootstrap parameters.
func layerTopo(t *testing.T, hosts []string, links [][2]string, params map[string]string) *topo.Topo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p := map[string]string{"multiplier": "10"}
	for k, v := range params {
		p[k] = v
	}
	tp, err := topo.Build(ctx, topo.Config{Hosts: hosts, Links: links, Params: p, Exe: os.Args[0], Types: testenv.Types()})
	if err != nil {
		t.Fatalf("build %v: %v", links, err)
	}
	t.Cleanup(tp.Close)
	return tp
}

// irmAt runs irm against host's IRMd and fails the test on error.
func irmAt(t *testing.T, tp *topo.Topo, host string, args ...string) string {
	t.Helper()
	return testenv.MustRun(t, "", tp.Hosts[host].Dir, "irm", args...)
}

// layerStatus runs `irm layer show net --json` at host and returns the
// unicast status it prints.
func layerStatus(t *testing.T, tp *topo.Topo, host string) *ctrl.UnicastStatus {
	t.Helper()
	var info ctrl.LayerInfo
	out := irmAt(t, tp, host, "layer", "show", "net", "--json")
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("irm layer show net --json at %s: %v\n%s", host, err, out)
	}
	u, err := topo.UnicastOf(info)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// route returns host's route to the member called dst: next hops and
// alternates joined by commas ("-" for none).
func route(t *testing.T, tp *topo.Topo, host, dst string) (hops, alts string) {
	t.Helper()
	r, ok := layerStatus(t, tp, host).Route(dst)
	if !ok {
		return "", ""
	}
	return dashJoin(r.NextHops), dashJoin(r.Alternates)
}

func dashJoin(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ",")
}

// routeCost returns the cost of host's route to dst ("" without one).
func routeCost(t *testing.T, tp *topo.Topo, host, dst string) string {
	t.Helper()
	if r, ok := layerStatus(t, tp, host).Route(dst); ok {
		return strconv.FormatUint(r.Cost, 10)
	}
	return ""
}

// waitRouteIs waits until host's route to dst has exactly the next hops
// (and alternates, unless alts is "*") given.
func waitRouteIs(t *testing.T, tp *topo.Topo, host, dst, hops, alts string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		h, a := route(t, tp, host, dst)
		if sameSet(h, hops) && (alts == "*" || sameSet(a, alts)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's route to %s: next hops %q alternates %q; want %q %q\n%s", host, dst, h, a, hops, alts,
				irmAt(t, tp, host, "layer", "show", "net"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func sameSet(a, b string) bool {
	x, y := strings.Split(a, ","), strings.Split(b, ",")
	if len(x) != len(y) {
		return false
	}
	for _, v := range x {
		if !strings.Contains(","+b+",", ","+v+",") {
			return false
		}
	}
	return true
}

// adjOut sums the packets out of host's adjacencies to peer;
// comps lists their components ("dt+mgmt", "dt" or "mgmt").
func adjOut(t *testing.T, tp *topo.Topo, host, peer string) (out uint64, comps []string) {
	t.Helper()
	for _, a := range layerStatus(t, tp, host).AdjacenciesTo(peer) {
		comps = append(comps, a.Comp)
		out += a.PacketsOut
	}
	return out, comps
}

// pingServer serves oping on name at host (registered in net).
func pingServer(t *testing.T, tp *topo.Topo, host, name string) *testenv.Proc {
	t.Helper()
	irmAt(t, tp, host, "name", "register", name, "layer", "net")
	p := testenv.Start(t, "", tp.Hosts[host].Dir, "oping", "-l", "-n", name)
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(p.Out.String(), "serving"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("oping server at %s did not start", host)
		}
	}
	return p
}

// pingFrom pings name from host until a ping gets through (the name may
// still be spreading), then n ping-pong probes, which must all return.
func pingFrom(t *testing.T, tp *topo.Topo, host, name string, n int) {
	t.Helper()
	dir := tp.Hosts[host].Dir
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, code := testenv.Run(t, "", dir, "oping", "-n", name, "-c", "1", "-Q"); code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s cannot reach %s", host, name)
		}
	}
	want := strconv.Itoa(n) + " received"
	if out := testenv.MustRun(t, "", dir, "oping", "-n", name, "-c", strconv.Itoa(n), "-f", "-Q"); !strings.Contains(out, want) {
		t.Fatalf("ping %s from %s:\n%s", name, host, out)
	}
}

var squareLinks = [][2]string{{"b", "a"}, {"c", "a"}, {"d", "b"}, {"d", "c"}}

// TestRoutingPoliciesRunning: the routing policy given at bootstrap
// (`routing ecmp|link-state|lfa`) shapes the running layer's routes, and
// data flows over them. The square A-B-D-C-A with a diagonal B-C: A
// reaches D over B and C at equal cost, and C is a loop-free alternate
// for A's route to B (C-B 1 < C-A-B 2).
func TestRoutingPoliciesRunning(t *testing.T) {
	links := append([][2]string{{"b", "c"}}, squareLinks...)
	for _, c := range []struct{ policy, toD, toB, altB string }{
		{"ecmp", "b,c", "b", "-"},
		{"link-state", "*", "b", "-"},
		{"lfa", "b,c", "b", "c"},
	} {
		t.Run(c.policy, func(t *testing.T) {
			tp := layerTopo(t, []string{"a", "b", "c", "d"}, links, map[string]string{"routing": c.policy})
			if c.toD == "*" { // one of the two, the lowest neighbour address
				deadline := time.Now().Add(20 * time.Second)
				for h, _ := route(t, tp, "a", "d"); h != "b" && h != "c"; h, _ = route(t, tp, "a", "d") {
					if time.Now().After(deadline) {
						t.Fatalf("link-state route to d: %q, want one next hop", h)
					}
					time.Sleep(20 * time.Millisecond)
				}
			} else {
				waitRouteIs(t, tp, "a", "d", c.toD, "*")
			}
			waitRouteIs(t, tp, "a", "b", c.toB, c.altB)
			pingServer(t, tp, "d", "pol")
			pingFrom(t, tp, "a", "pol", 20)
		})
	}
}

// TestCostDisconnectComponent, on the square A-B-D-C-A:
//   - `ipcp disconnect` removes A's adjacency to the peer its ping
//     stream used, and `ipcp connect ... cost 2` brings it back dearer:
//     still A's way to that peer, but A's route to D leaves it, and the
//     next pings all go the cheaper way;
//   - `ipcp connect ... component mgmt` gives routing an adjacency but
//     no data path (the FIB skips it), and `component dt` adds the data
//     path back.
func TestCostDisconnectComponent(t *testing.T) {
	tp := layerTopo(t, []string{"a", "b", "c", "d"}, squareLinks, nil)
	waitRouteIs(t, tp, "a", "d", "b,c", "-")
	pingServer(t, tp, "d", "far")
	_, before, err := tp.ActivePeer("a", []string{"b", "c"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pingFrom(t, tp, "a", "far", 200)
	used, _, err := tp.ActivePeer("a", []string{"b", "c"}, before)
	if err != nil {
		t.Fatal(err)
	}
	other := map[string]string{"b": "c", "c": "b"}[used]
	t.Logf("the ping stream went over %s", used)

	irmAt(t, tp, "a", "ipcp", "disconnect", "name", "a", "dst", used)
	if _, comps := adjOut(t, tp, "a", used); len(comps) != 0 {
		t.Fatalf("adjacencies to %s after disconnect: %v", used, comps)
	}
	waitRouteIs(t, tp, "a", "d", other, "-")
	// Cost 2: still the way to its peer (2 against 3 round the square),
	// no longer to D (3 against 2).
	irmAt(t, tp, "a", "ipcp", "connect", "name", "a", "dst", used, "cost", "2")
	for deadline := time.Now().Add(20 * time.Second); routeCost(t, tp, "a", used) != "2"; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("A's route to %s never took the cost-2 link:\n%s", used, irmAt(t, tp, "a", "layer", "show", "net"))
		}
	}
	waitRouteIs(t, tp, "a", used, used, "*")
	waitRouteIs(t, tp, "a", "d", other, "-")
	usedBefore, _ := adjOut(t, tp, "a", used)
	otherBefore, _ := adjOut(t, tp, "a", other)
	pingFrom(t, tp, "a", "far", 200)
	usedAfter, _ := adjOut(t, tp, "a", used)
	otherAfter, _ := adjOut(t, tp, "a", other)
	if otherAfter-otherBefore < 200 || usedAfter-usedBefore > 50 {
		t.Fatalf("after the cost change: %d packets out to %s (cost 2), %d to %s (cost 1); want the stream on %s",
			usedAfter-usedBefore, used, otherAfter-otherBefore, other, other)
	}

	// Components: management only, then data too.
	irmAt(t, tp, "a", "ipcp", "disconnect", "name", "a", "dst", used)
	irmAt(t, tp, "a", "ipcp", "connect", "name", "a", "dst", used, "component", "mgmt")
	if _, comps := adjOut(t, tp, "a", used); len(comps) != 1 || comps[0] != "mgmt" {
		t.Fatalf("components to %s: %v, want [mgmt]", used, comps)
	}
	waitRouteIs(t, tp, "a", "d", "b,c", "-") // routing sees the link ...
	fibTo := func() string {
		r, _ := layerStatus(t, tp, "a").Route("d")
		var fl []string
		for _, f := range r.Flows {
			fl = append(fl, fmt.Sprintf("%s#%d", f.Peer, f.Adj))
		}
		return strings.Join(fl, ",")
	}
	if fib := fibTo(); strings.Contains(fib, used+"#") || !strings.Contains(fib, other+"#") {
		t.Fatalf("FIB to d with a management-only adjacency to %s: %q, want only %s", used, fib, other)
	}
	irmAt(t, tp, "a", "ipcp", "connect", "name", "a", "dst", used, "component", "dt")
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(fibTo(), used+"#"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("FIB to d never used the dt adjacency to %s: %q", used, fibTo())
		}
	}
	if _, comps := adjOut(t, tp, "a", used); len(comps) != 2 {
		t.Fatalf("components to %s: %v, want mgmt and dt", used, comps)
	}
	pingFrom(t, tp, "a", "far", 20)
}

// TestNearestAndWithdrawal: a name registered at two members of the
// chain A-B-C is reached at the nearer one (B, one hop from A); `name
// unregister` at B withdraws it from A's directory, and the next flow
// goes to C.
func TestNearestAndWithdrawal(t *testing.T) {
	tp := layerTopo(t, []string{"a", "b", "c"}, [][2]string{{"b", "a"}, {"c", "b"}}, nil)
	waitRouteIs(t, tp, "a", "c", "b", "-")
	atB := pingServer(t, tp, "b", "svc")
	atC := pingServer(t, tp, "c", "svc")
	names := func() map[string]bool {
		got := map[string]bool{}
		for _, m := range layerStatus(t, tp, "a").Members {
			if slices.Contains(m.Names, "svc") {
				got[m.IPCP] = true
			}
		}
		return got
	}
	for deadline := time.Now().Add(20 * time.Second); len(names()) != 2; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("A's directory lists svc at %v, want b and c", names())
		}
	}
	for range 3 {
		pingFrom(t, tp, "a", "svc", 1)
	}
	if b, c := strings.Count(atB.Out.String(), "new flow"), strings.Count(atC.Out.String(), "new flow"); b < 3 || c != 0 {
		t.Fatalf("flows at B %d, at C %d: want every flow at the nearer B", b, c)
	}
	irmAt(t, tp, "b", "name", "unregister", "svc", "layer", "net")
	for deadline := time.Now().Add(20 * time.Second); names()["b"] || !names()["c"]; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after unregister at B, A's directory lists svc at %v, want c only", names())
		}
	}
	pingFrom(t, tp, "a", "svc", 1)
	if c := strings.Count(atC.Out.String(), "new flow"); c < 1 {
		t.Fatalf("after the withdrawal no flow reached C:\n%s", atC.Out.String())
	}
}
