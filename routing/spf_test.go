package routing

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// bellmanFord is the brute-force reference: distances from s over the
// two-way links of tg, by relaxing every edge until nothing changes.
func bellmanFord(tg *testGraph, s int) []uint64 {
	dist := make([]uint64, len(tg.addrs))
	for i := range dist {
		dist[i] = inf
	}
	dist[s] = 0
	for changed := true; changed; {
		changed = false
		for p, c := range tg.cost {
			if dist[p[0]] != inf && dist[p[0]]+uint64(c) < dist[p[1]] {
				dist[p[1]] = dist[p[0]] + uint64(c)
				changed = true
			}
		}
	}
	return dist
}

// referenceTable computes s's table by definition: the next hops for D
// are the neighbours n with cost(s,n)+dist(n,D) == dist(s,D), the
// alternates the other neighbours with dist(n,D) < dist(n,s)+dist(s,D).
func referenceTable(tg *testGraph, s int, p Policy, distFrom func(int) []uint64) Table {
	ds := distFrom(s)
	var nbrs []int
	for n := range tg.adj[s] {
		nbrs = append(nbrs, n)
	}
	t := Table{}
	for d := range tg.addrs {
		if d == s || ds[d] == inf {
			continue
		}
		r := Route{Cost: ds[d]}
		for _, n := range nbrs {
			dn := distFrom(n)
			switch {
			case uint64(tg.cost[[2]int{s, n}])+dn[d] == ds[d]:
				r.NextHops = append(r.NextHops, tg.addrs[n])
			case p == PolicyLFA && dn[d] < dn[s]+ds[d]:
				r.Alternates = append(r.Alternates, tg.addrs[n])
			}
		}
		slices.Sort(r.NextHops)
		slices.Sort(r.Alternates)
		if p == PolicyLinkState {
			r.NextHops = r.NextHops[:1]
		}
		t[tg.addrs[d]] = r
	}
	return t
}

func diffTables(got, want Table) string {
	for d, w := range want {
		g, ok := got[d]
		if !ok {
			return fmt.Sprintf("destination %d missing (want %+v)", d, w)
		}
		if g.Cost != w.Cost || !slices.Equal(g.NextHops, w.NextHops) || !slices.Equal(g.Alternates, w.Alternates) {
			return fmt.Sprintf("destination %d: got %+v, want %+v", d, g, w)
		}
	}
	for d, g := range got {
		if _, ok := want[d]; !ok {
			return fmt.Sprintf("unexpected destination %d: %+v", d, g)
		}
	}
	return ""
}

func TestSPFAgainstBruteForce(t *testing.T) {
	cases := []struct {
		n, sources int
		deg        float64
		maxCost    uint32
	}{
		{2, 2, 1, 3}, {5, 5, 3, 1}, {20, 20, 4, 3}, {100, 100, 4, 3},
		{300, 10, 6, 2}, {1000, 4, 4, 3},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	multi, alts := 0, 0 // the test must exercise ties and alternates
	for _, c := range cases {
		for trial := 0; trial < 2; trial++ {
			tg := randomGraph(rng, c.n, c.deg, c.maxCost)
			if trial == 1 && c.n >= 100 {
				// A hub with more than 64 neighbours, so first-hop
				// bitsets span several words.
				for i := 0; i < 130; i++ {
					tg.link(rng, 0, rng.IntN(c.n), c.maxCost)
				}
				// And a few nodes reachable only over one-way links.
				extra := newTestGraph(rng, 3)
				for _, a := range extra.addrs {
					if !slices.Contains(tg.addrs, a) {
						tg.addrs = append(tg.addrs, a)
						tg.oneWay[[2]int{len(tg.addrs) - 1, 1}] = 1
					}
				}
			}
			g := NewGraph(tg.lsus())
			memo := map[int][]uint64{}
			distFrom := func(s int) []uint64 {
				if d, ok := memo[s]; ok {
					return d
				}
				memo[s] = bellmanFord(tg, s)
				return memo[s]
			}
			srcs := rng.Perm(len(tg.addrs))[:c.sources]
			if trial == 1 {
				srcs[0] = 0
			}
			for _, s := range srcs {
				for _, p := range []Policy{PolicyECMP, PolicyLinkState, PolicyLFA} {
					got := SPF(g, tg.addrs[s], p)
					want := referenceTable(tg, s, p, distFrom)
					if d := diffTables(got, want); d != "" {
						t.Fatalf("n=%d trial %d source %d policy %v: %s", c.n, trial, tg.addrs[s], p, d)
					}
					for _, r := range got {
						if len(r.NextHops) > 1 {
							multi++
						}
						if len(r.Alternates) > 0 {
							alts++
						}
					}
				}
			}
		}
	}
	if multi < 1000 || alts < 1000 {
		t.Fatalf("only %d multi-next-hop routes and %d routes with alternates", multi, alts)
	}
	t.Logf("%d multi-next-hop routes, %d routes with alternates checked", multi, alts)
}

func TestSolverReuse(t *testing.T) {
	// One solver across graphs of different sizes and degrees gives the
	// same tables as fresh ones.
	rng := rand.New(rand.NewPCG(3, 4))
	var s solver
	for _, n := range []int{50, 5, 200, 1, 80} {
		tg := randomGraph(rng, n, 4, 3)
		for i := 0; i < 20; i++ {
			tg.link(rng, 0, rng.IntN(n), 3)
		}
		g := NewGraph(tg.lsus())
		for _, p := range []Policy{PolicyLFA, PolicyECMP} {
			src := tg.addrs[rng.IntN(n)]
			if d := diffTables(s.table(g, src, p), SPF(g, src, p)); d != "" {
				t.Fatalf("n=%d: %s", n, d)
			}
		}
	}
}

func TestParsePolicy(t *testing.T) {
	for _, p := range []Policy{PolicyECMP, PolicyLinkState, PolicyLFA} {
		q, err := ParsePolicy(p.String())
		if err != nil || q != p {
			t.Errorf("ParsePolicy(%q) = %v, %v", p.String(), q, err)
		}
	}
	if p, err := ParsePolicy(""); err != nil || p != PolicyECMP {
		t.Errorf("default policy %v, %v", p, err)
	}
	if _, err := ParsePolicy("rip"); err == nil {
		t.Error("ParsePolicy accepted rip")
	}
}

func benchmarkSPF(b *testing.B, n int, p Policy) {
	rng := rand.New(rand.NewPCG(uint64(n), 7))
	tg := randomGraph(rng, n, 4, 10)
	g := NewGraph(tg.lsus())
	var s solver
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		s.table(g, tg.addrs[i%n], p)
	}
}

func BenchmarkSPF100(b *testing.B)  { benchmarkSPF(b, 100, PolicyECMP) }
func BenchmarkSPF1000(b *testing.B) { benchmarkSPF(b, 1000, PolicyECMP) }
func BenchmarkSPF5000(b *testing.B) { benchmarkSPF(b, 5000, PolicyECMP) }

func BenchmarkSPFLFA1000(b *testing.B) { benchmarkSPF(b, 1000, PolicyLFA) }

// BenchmarkGraphAndSPF1000 is what the Router does per SPF run: build
// the graph from the LSUs, then SPF.
func BenchmarkGraphAndSPF1000(b *testing.B) {
	rng := rand.New(rand.NewPCG(1000, 7))
	tg := randomGraph(rng, 1000, 4, 10)
	lsus := tg.lsus()
	var s solver
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s.table(NewGraph(lsus), tg.addrs[i%1000], PolicyECMP)
	}
}
