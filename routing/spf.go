package routing

import (
	"math"
	"math/bits"
)

const inf = math.MaxUint64

// SPF computes the routing table of src over g under policy p: per
// reachable destination, the shortest-path cost and the first hops (and,
// for PolicyLFA, the loop-free alternates). It returns an empty table if
// src is not in g. It is a pure function; the Router reuses its scratch
// space across runs through an internal solver.
func SPF(g *Graph, src uint64, p Policy) Table {
	var s solver
	return s.table(g, src, p)
}

// solver holds the scratch space of SPF runs, indexed by dense node
// index. First-hop sets are bitsets over the source's out-edges (w words
// per node), so the inner loop touches no maps and allocates nothing.
type solver struct {
	dist  []uint64 // from the source
	dist2 []uint64 // from one neighbour (lfa)
	pos   []int32  // heap position; -1 never queued, -2 done
	heap  []heapItem
	nh    []uint64 // first-hop bitsets
	alt   []uint64 // alternate bitsets (lfa)
	w     int
}

func (s *solver) reset(n, w int) {
	s.dist = resize(s.dist, n)
	s.dist2 = resize(s.dist2, n)
	s.nh = resize(s.nh, n*w)
	s.alt = resize(s.alt, n*w)
	if cap(s.pos) < n {
		s.pos = make([]int32, n)
		s.heap = make([]heapItem, 0, n)
	}
	s.pos = s.pos[:n]
	s.w = w
}

func resize(s []uint64, n int) []uint64 {
	if cap(s) < n {
		return make([]uint64, n)
	}
	return s[:n]
}

func (s *solver) table(g *Graph, src uint64, p Policy) Table {
	si, ok := g.index(src)
	if !ok {
		return Table{}
	}
	deg := int(g.off[si+1] - g.off[si])
	s.reset(g.Len(), max(1, (deg+63)/64))
	s.run(g, si, s.dist, true)
	if p == PolicyLFA {
		s.lfa(g, si, deg)
	}
	return s.collect(g, si, p)
}

// run is Dijkstra from src into dist; with track it also computes the
// first-hop bitsets. Costs are at least 1, so a node's set is final when
// it leaves the heap: every predecessor on a shortest path left before it.
func (s *solver) run(g *Graph, src int32, dist []uint64, track bool) {
	for i := range dist {
		dist[i] = inf
	}
	for i := range s.pos {
		s.pos[i] = -1
	}
	w := s.w
	if track {
		clear(s.nh)
	}
	base := g.off[src]
	s.heap = s.heap[:0]
	dist[src] = 0
	s.push(src, 0)
	for len(s.heap) > 0 {
		u := s.pop()
		du := dist[u]
		us := int(u) * w
		for e := g.off[u]; e < g.off[u+1]; e++ {
			v := g.adj[e]
			nd := du + uint64(g.cost[e])
			dv := dist[v]
			if nd > dv { // also every node already done: dv <= du < nd
				continue
			}
			if track {
				vs := s.nh[int(v)*w : int(v)*w+w]
				if nd < dv {
					clear(vs)
				}
				if u == src {
					j := e - base
					vs[j>>6] |= 1 << (j & 63)
				} else {
					for i := range vs {
						vs[i] |= s.nh[us+i]
					}
				}
			}
			if nd < dv {
				dist[v] = nd
				if s.pos[v] < 0 {
					s.push(v, nd)
				} else {
					s.decrease(v, nd)
				}
			}
		}
	}
}

// lfa marks, per destination, every neighbour N of src that is not a
// first hop and satisfies dist(N,D) < dist(N,S) + dist(S,D).
func (s *solver) lfa(g *Graph, si int32, deg int) {
	clear(s.alt)
	w := s.w
	for j := 0; j < deg; j++ {
		nb := g.adj[g.off[si]+int32(j)]
		s.run(g, nb, s.dist2, false)
		dNS := s.dist2[si]
		if dNS == inf {
			continue
		}
		word, bit := j>>6, uint64(1)<<(j&63)
		for d := range s.dist {
			dSD, dND := s.dist[d], s.dist2[d]
			if int32(d) == si || dSD == inf || dND == inf || s.nh[d*w+word]&bit != 0 {
				continue
			}
			if dND < dNS+dSD {
				s.alt[d*w+word] |= bit
			}
		}
	}
}

// collect turns the bitsets into a Table, with one backing array for all
// next-hop slices and one for all alternates.
func (s *solver) collect(g *Graph, si int32, p Policy) Table {
	w := s.w
	nbr := g.adj[g.off[si]:g.off[si+1]]
	reach, nhBits, altBits := 0, 0, 0
	for d, dd := range s.dist {
		if int32(d) == si || dd == inf {
			continue
		}
		reach++
		for i := 0; i < w; i++ {
			nhBits += bits.OnesCount64(s.nh[d*w+i])
			if p == PolicyLFA {
				altBits += bits.OnesCount64(s.alt[d*w+i])
			}
		}
	}
	if p == PolicyLinkState {
		nhBits = reach
	}
	t := make(Table, reach)
	hops := make([]uint64, 0, nhBits)
	alts := make([]uint64, 0, altBits)
	for d, dd := range s.dist {
		if int32(d) == si || dd == inf {
			continue
		}
		h := len(hops)
		hops = appendBits(hops, s.nh[d*w:d*w+w], nbr, g.addrs, p == PolicyLinkState)
		r := Route{Cost: dd, NextHops: hops[h:len(hops):len(hops)]}
		if p == PolicyLFA {
			a := len(alts)
			alts = appendBits(alts, s.alt[d*w:d*w+w], nbr, g.addrs, false)
			if len(alts) > a {
				r.Alternates = alts[a:len(alts):len(alts)]
			}
		}
		t[g.addrs[d]] = r
	}
	return t
}

// appendBits appends the addresses of the neighbours whose bits are set,
// in ascending address order (out-edges are sorted by address); with
// first it stops after one.
func appendBits(dst []uint64, set []uint64, nbr []int32, addrs []uint64, first bool) []uint64 {
	for i, x := range set {
		for x != 0 {
			b := bits.TrailingZeros64(x)
			dst = append(dst, addrs[nbr[i*64+b]])
			if first {
				return dst
			}
			x &= x - 1
		}
	}
	return dst
}
