package dt

import "math"

// golden is 2^64 divided by the golden ratio, the splitmix64 increment.
const golden = 0x9e3779b97f4a7c15

// mix64 is the splitmix64 finalizer: a fast bijective 64-bit mixer with
// full avalanche. It is not cryptographic and need not be.
func mix64(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// flowHash hashes a flow key (destination, endpoint id, QoS, path
// label) salted with a per-IPCP seed.
func flowHash(seed, dst, eid uint64, qos, label uint8) uint64 {
	h := mix64(seed ^ dst)
	h = mix64(h ^ eid)
	return mix64(h + golden + uint64(qos) + uint64(label)<<8)
}

// hopSalt derives the per-next-hop salt from its id and the seed, once
// per table build.
func hopSalt(seed, id uint64) uint64 {
	return mix64(mix64(seed+golden) ^ id)
}

// hop is one next hop as the lookup sees it.
type hop struct {
	id     uint64
	salt   uint64
	weight float64
}

// hopSet is an immutable set of next hops ready for rendezvous hashing.
type hopSet struct {
	hops     []hop
	weighted bool // weights differ, so scores need the logarithm
}

// newHopSet prepares nhs (already deduplicated) for lookups.
func newHopSet(seed uint64, nhs []NextHop) hopSet {
	s := hopSet{hops: make([]hop, len(nhs))}
	for i, nh := range nhs {
		s.hops[i] = hop{id: nh.ID, salt: hopSalt(seed, nh.ID), weight: float64(nh.weight())}
		if i > 0 && nh.weight() != nhs[0].weight() {
			s.weighted = true
		}
	}
	return s
}

// pick returns the id of the next hop with the highest random weight
// for the flow hash h. The set must not be empty. The result does not
// depend on the order of the hops.
func (s *hopSet) pick(h uint64) uint64 {
	hops := s.hops
	if len(hops) == 1 {
		return hops[0].id
	}
	if !s.weighted {
		best := hops[0].id
		bestX := mix64(h ^ hops[0].salt)
		for _, hp := range hops[1:] {
			x := mix64(h ^ hp.salt)
			if x > bestX || (x == bestX && hp.id < best) {
				best, bestX = hp.id, x
			}
		}
		return best
	}
	best := hops[0].id
	bestS := score(mix64(h^hops[0].salt), hops[0].weight)
	for _, hp := range hops[1:] {
		sc := score(mix64(h^hp.salt), hp.weight)
		if sc > bestS || (sc == bestS && hp.id < best) {
			best, bestS = hp.id, sc
		}
	}
	return best
}

// score is the weighted rendezvous score weight / -ln(u), where u is x
// mapped into the open interval (0,1). It is finite and positive, and
// for equal weights it increases with x. u keeps 52 bits of x so that
// the +0.5 centring is exact and u never rounds up to 1.
func score(x uint64, weight float64) float64 {
	u := (float64(x>>12) + 0.5) * 0x1p-52
	return weight / -math.Log(u)
}
