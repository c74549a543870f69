package routing

import (
	"math"
	"slices"
)

// Graph is an immutable, densely indexed view of a set of LSUs with the
// two-way check applied, ready for SPF. Nodes are indexed in ascending
// address order and every node's out-edges are sorted by target address.
type Graph struct {
	addrs []uint64 // node index -> address, ascending
	off   []int32  // out-edges of node i are adj[off[i]:off[i+1]]
	adj   []int32  // edge -> target node index
	cost  []uint32 // edge -> cost of that direction
}

// NewGraph builds the routing graph of lsus. Per origin the LSU with the
// highest Seq counts; LSUs with a zero origin are ignored. An edge u->v
// exists only when u announces v and v announces u; it costs what u
// announces (0 counts as 1; of duplicate links to one neighbour the
// cheapest counts). Links to self are ignored. lsus is not modified.
func NewGraph(lsus []LSU) *Graph {
	best := make(map[uint64]int, len(lsus))
	for i := range lsus {
		o := lsus[i].Origin
		if o == 0 {
			continue
		}
		if j, ok := best[o]; !ok || lsus[i].Seq >= lsus[j].Seq {
			best[o] = i
		}
	}
	addrs := make([]uint64, 0, len(best))
	for o := range best {
		addrs = append(addrs, o)
	}
	slices.Sort(addrs)
	// Reuse best as the address -> node index map once links are taken.
	links := make([][]Link, len(addrs))
	total := 0
	for i, a := range addrs {
		l := lsus[best[a]].Links
		if !linksSorted(l) {
			l = dedupeSorted(sortedLinks(l))
		}
		links[i] = l
		total += len(l)
		best[a] = i
	}
	// Resolve every announced neighbour that has an LSU to its node
	// index. Links are sorted by address and indices follow address
	// order, so each node's resolved list is ascending.
	first := make([]int32, len(addrs)+1)
	res := make([]int32, 0, total)
	rcost := make([]uint32, 0, total)
	for u := range addrs {
		for _, k := range links[u] {
			if v, ok := best[k.Neighbor]; ok && v != u {
				res = append(res, int32(v))
				rcost = append(rcost, max(k.Cost, 1))
			}
		}
		first[u+1] = int32(len(res))
	}
	g := &Graph{
		addrs: addrs,
		off:   make([]int32, len(addrs)+1),
		adj:   make([]int32, 0, len(res)),
		cost:  make([]uint32, 0, len(res)),
	}
	for u := range addrs {
		for e := first[u]; e < first[u+1]; e++ {
			v := res[e]
			if containsIndex(res[first[v]:first[v+1]], int32(u)) {
				g.adj = append(g.adj, v)
				g.cost = append(g.cost, rcost[e])
			}
		}
		g.off[u+1] = int32(len(g.adj))
	}
	return g
}

// containsIndex reports whether the ascending list s holds x.
func containsIndex(s []int32, x int32) bool {
	if len(s) <= 16 {
		for _, y := range s {
			if y == x {
				return true
			}
		}
		return false
	}
	_, ok := slices.BinarySearch(s, x)
	return ok
}

// dedupeSorted keeps the first (cheapest) link per neighbour of a sorted
// slice, in place.
func dedupeSorted(l []Link) []Link {
	out := l[:0]
	for i, k := range l {
		if i > 0 && l[i-1].Neighbor == k.Neighbor {
			continue
		}
		out = append(out, k)
	}
	return out
}

// Len returns the number of nodes (origins) in the graph.
func (g *Graph) Len() int { return len(g.addrs) }

// Nodes returns the addresses of the graph's nodes, ascending.
func (g *Graph) Nodes() []uint64 { return slices.Clone(g.addrs) }

// Edges returns the two-way-checked links of node a (the cost being that
// of the direction a -> neighbour), sorted by neighbour, or nil if a is
// not in the graph.
func (g *Graph) Edges(a uint64) []Link {
	u, ok := g.index(a)
	if !ok {
		return nil
	}
	var out []Link
	for e := g.off[u]; e < g.off[u+1]; e++ {
		out = append(out, Link{Neighbor: g.addrs[g.adj[e]], Cost: g.cost[e]})
	}
	return out
}

func (g *Graph) index(a uint64) (int32, bool) {
	i, ok := slices.BinarySearch(g.addrs, a)
	if !ok || i > math.MaxInt32 {
		return 0, false
	}
	return int32(i), true
}
