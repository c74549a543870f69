package routing

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

// testGraph is a random topology the tests know the truth of: two-way
// links with a cost per direction, plus one-way links (announced by one
// end only) that routing must ignore.
type testGraph struct {
	addrs  []uint64             // node index -> address (not sorted)
	cost   map[[2]int]uint32    // directed cost of every two-way link
	oneWay map[[2]int]uint32    // announced by the first end only
	adj    map[int]map[int]bool // two-way adjacency
}

func newTestGraph(rng *rand.Rand, n int) *testGraph {
	tg := &testGraph{cost: map[[2]int]uint32{}, oneWay: map[[2]int]uint32{}, adj: map[int]map[int]bool{}}
	seen := map[uint64]bool{}
	for len(tg.addrs) < n {
		a := rng.Uint64N(uint64(n)*50) + 1
		if !seen[a] {
			seen[a] = true
			tg.addrs = append(tg.addrs, a)
		}
	}
	return tg
}

func (tg *testGraph) has(u, v int) bool { return tg.adj[u][v] }

// link adds a two-way link with costs in 1..maxCost, symmetric half of
// the time.
func (tg *testGraph) link(rng *rand.Rand, u, v int, maxCost uint32) {
	if u == v || tg.has(u, v) {
		return
	}
	c1 := rng.Uint32N(maxCost) + 1
	c2 := c1
	if rng.IntN(2) == 0 {
		c2 = rng.Uint32N(maxCost) + 1
	}
	tg.cost[[2]int{u, v}], tg.cost[[2]int{v, u}] = c1, c2
	for _, p := range [][2]int{{u, v}, {v, u}} {
		if tg.adj[p[0]] == nil {
			tg.adj[p[0]] = map[int]bool{}
		}
		tg.adj[p[0]][p[1]] = true
	}
}

// randomGraph returns a connected graph of n nodes with average degree
// about deg (a random spanning tree plus random links), costs in
// 1..maxCost, and a few one-way links.
func randomGraph(rng *rand.Rand, n int, deg float64, maxCost uint32) *testGraph {
	tg := newTestGraph(rng, n)
	for i := 1; i < n; i++ {
		tg.link(rng, i, rng.IntN(i), maxCost)
	}
	extra := int(float64(n)*deg/2) - (n - 1)
	for i := 0; i < extra; i++ {
		tg.link(rng, rng.IntN(n), rng.IntN(n), maxCost)
	}
	for i := 0; i < n/10+1 && n > 1; i++ {
		u, v := rng.IntN(n), rng.IntN(n)
		if u != v && !tg.has(u, v) {
			tg.oneWay[[2]int{u, v}] = rng.Uint32N(maxCost) + 1
		}
	}
	return tg
}

// lsus returns the LSUs every node would announce.
func (tg *testGraph) lsus() []LSU {
	links := make([][]Link, len(tg.addrs))
	for p, c := range tg.cost {
		links[p[0]] = append(links[p[0]], Link{Neighbor: tg.addrs[p[1]], Cost: c})
	}
	for p, c := range tg.oneWay {
		links[p[0]] = append(links[p[0]], Link{Neighbor: tg.addrs[p[1]], Cost: c})
	}
	out := make([]LSU, len(tg.addrs))
	for i, a := range tg.addrs {
		sortLinks(links[i])
		out[i] = LSU{Origin: a, Seq: 1, Links: links[i]}
	}
	return out
}

func TestNewGraphTwoWayCheck(t *testing.T) {
	g := NewGraph([]LSU{
		{Origin: 1, Seq: 1, Links: []Link{{2, 5}, {3, 1}}},
		{Origin: 1, Seq: 3, Links: []Link{{3, 0}, {2, 7}, {2, 4}, {4, 1}, {1, 1}}}, // newest: wins
		{Origin: 1, Seq: 2, Links: []Link{{4, 9}}},
		{Origin: 2, Seq: 1, Links: []Link{{1, 2}}},
		{Origin: 3, Seq: 1, Links: []Link{{2, 1}}}, // does not announce 1
		{Origin: 0, Seq: 9, Links: []Link{{1, 1}}},
	})
	if want := []uint64{1, 2, 3}; !reflect.DeepEqual(g.Nodes(), want) {
		t.Fatalf("nodes %v, want %v", g.Nodes(), want)
	}
	checks := map[uint64][]Link{
		1: {{2, 4}}, // cheapest duplicate; 3 fails the two-way check; 4 has no LSU
		2: {{1, 2}},
		3: nil,
		9: nil,
	}
	for a, want := range checks {
		if got := g.Edges(a); !reflect.DeepEqual(got, want) {
			t.Errorf("edges of %d: %v, want %v", a, got, want)
		}
	}
}

func TestSPFSquare(t *testing.T) {
	const a, b, c, d = 1, 2, 3, 4
	lsus := []LSU{
		{Origin: a, Seq: 1, Links: []Link{{b, 1}, {c, 1}}},
		{Origin: b, Seq: 1, Links: []Link{{a, 1}, {d, 1}}},
		{Origin: c, Seq: 1, Links: []Link{{a, 1}, {d, 1}}},
		{Origin: d, Seq: 1, Links: []Link{{b, 1}, {c, 1}}},
	}
	g := NewGraph(lsus)
	rt := SPF(g, a, PolicyECMP)
	if got := rt[d]; got.Cost != 2 || !slices.Equal(got.NextHops, []uint64{b, c}) {
		t.Fatalf("A->D: %+v, want cost 2 via {B, C}", got)
	}
	if got := SPF(g, a, PolicyLinkState)[d]; !slices.Equal(got.NextHops, []uint64{b}) {
		t.Fatalf("link-state A->D: %+v, want via B only", got)
	}
	// With B-D dearer, C is the next hop and B a loop-free alternate.
	lsus[1].Links[1].Cost = 2
	lsus[3].Links[0].Cost = 2
	got := SPF(NewGraph(lsus), a, PolicyLFA)[d]
	if got.Cost != 2 || !slices.Equal(got.NextHops, []uint64{c}) || !slices.Equal(got.Alternates, []uint64{b}) {
		t.Fatalf("lfa A->D: %+v, want cost 2 via C, alternate B", got)
	}
	if len(SPF(g, 99, PolicyECMP)) != 0 {
		t.Fatal("unknown source has routes")
	}
}
