package dt

import (
	"math/rand/v2"
	"testing"
)

const numFlows = 10000

type flowKey struct {
	dst, eid uint64
	qos      uint8
}

// testDsts are the destinations every property test installs, all with
// the same next-hop set, so that keys vary in all three fields.
var testDsts = [...]uint64{1, 2, 3, 0xdeadbeef}

func randomKeys(rng *rand.Rand) []flowKey {
	keys := make([]flowKey, numFlows)
	for i := range keys {
		keys[i] = flowKey{
			dst: testDsts[rng.IntN(len(testDsts))],
			eid: rng.Uint64(),
			qos: uint8(rng.IntN(4)),
		}
	}
	return keys
}

func randomHops(rng *rand.Rand, n int, weighted bool) []NextHop {
	out := make([]NextHop, 0, n)
	seen := map[uint64]bool{}
	for len(out) < n {
		id := rng.Uint64N(1000) // small ids, as lower-flow ids are
		if seen[id] {
			continue
		}
		seen[id] = true
		nh := NextHop{ID: id}
		if weighted {
			nh.Weight = 1 + rng.Uint32N(8)
		}
		out = append(out, nh)
	}
	return out
}

func setAll(f *FIB, nhs []NextHop) {
	routes := map[uint64]Entry{}
	for _, d := range testDsts {
		routes[d] = Entry{Primary: nhs}
	}
	f.Replace(routes)
}

func assign(t *testing.T, f *FIB, keys []flowKey) []uint64 {
	t.Helper()
	out := make([]uint64, len(keys))
	for i, k := range keys {
		id, ok := f.Lookup(k.dst, k.eid, k.qos)
		if !ok {
			t.Fatalf("no next hop for %+v", k)
		}
		out[i] = id
	}
	return out
}

// TestRemoveMovesOnlyItsFlows: after removing any one next hop, only
// the flows that were on it change next hop.
func TestRemoveMovesOnlyItsFlows(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 20))
	keys := randomKeys(rng)
	for n := 2; n <= 16; n++ {
		for _, weighted := range []bool{false, true} {
			nhs := randomHops(rng, n, weighted)
			f := NewFIB(rng.Uint64())
			setAll(f, nhs)
			before := assign(t, f, keys)
			gone := nhs[rng.IntN(n)].ID
			if c := f.RemoveNextHop(gone); c != len(testDsts) {
				t.Fatalf("RemoveNextHop changed %d entries, want %d", c, len(testDsts))
			}
			after := assign(t, f, keys)
			moved := 0
			for i := range keys {
				switch {
				case after[i] == gone:
					t.Fatalf("n=%d: flow still on removed next hop %d", n, gone)
				case before[i] != gone && after[i] != before[i]:
					t.Fatalf("n=%d weighted=%v: flow on %d moved to %d though %d was removed",
						n, weighted, before[i], after[i], gone)
				case before[i] == gone:
					moved++
				}
			}
			if moved == 0 {
				t.Fatalf("n=%d: no flow was on next hop %d", n, gone)
			}
		}
	}
}

// TestAddMovesAboutOneNth: adding a next hop to a set of n moves about
// 1/(n+1) of the flows, all of them to the new next hop.
func TestAddMovesAboutOneNth(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 21))
	keys := randomKeys(rng)
	for n := 2; n <= 16; n++ {
		nhs := randomHops(rng, n+1, false)
		f := NewFIB(rng.Uint64())
		setAll(f, nhs[:n])
		before := assign(t, f, keys)
		added := nhs[n].ID
		setAll(f, nhs)
		after := assign(t, f, keys)
		moved := 0
		for i := range keys {
			if after[i] != before[i] {
				moved++
				if after[i] != added {
					t.Fatalf("n=%d: flow moved from %d to %d, not to the new %d",
						n, before[i], after[i], added)
				}
			}
		}
		frac, ideal := float64(moved)/numFlows, 1/float64(n+1)
		if frac > 2*ideal || frac < ideal/2 {
			t.Errorf("n=%d: %.3f of flows moved, want about %.3f", n, frac, ideal)
		}
	}
}

// TestEvenSpread: with equal weights every next hop gets about 1/n of
// the flows.
func TestEvenSpread(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, 22))
	keys := randomKeys(rng)
	for n := 2; n <= 16; n++ {
		nhs := randomHops(rng, n, false)
		f := NewFIB(rng.Uint64())
		setAll(f, nhs)
		count := map[uint64]int{}
		for _, id := range assign(t, f, keys) {
			count[id]++
		}
		ideal := float64(numFlows) / float64(n)
		for _, nh := range nhs {
			if c := float64(count[nh.ID]); c < 0.6*ideal || c > 1.4*ideal {
				t.Errorf("n=%d: next hop %d got %v flows, want about %.0f", n, nh.ID, c, ideal)
			}
		}
	}
}

// TestWeightedShares: each next hop gets a share of flows proportional
// to its weight.
func TestWeightedShares(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 23))
	keys := randomKeys(rng)
	sets := [][]NextHop{
		{{ID: 1, Weight: 1}, {ID: 2, Weight: 3}},
		{{ID: 1, Weight: 1}, {ID: 2, Weight: 2}, {ID: 3, Weight: 3}, {ID: 4, Weight: 4}},
		{{ID: 1, Weight: 100}, {ID: 2, Weight: 100}, {ID: 3, Weight: 200}},
		{{ID: 1}, {ID: 2, Weight: 1}, {ID: 3, Weight: 2}}, // weight 0 means 1
	}
	for range 4 {
		sets = append(sets, randomHops(rng, 2+rng.IntN(7), true))
	}
	for _, nhs := range sets {
		f := NewFIB(rng.Uint64())
		setAll(f, nhs)
		count := map[uint64]int{}
		for _, id := range assign(t, f, keys) {
			count[id]++
		}
		var total float64
		for _, nh := range nhs {
			total += float64(nh.weight())
		}
		for _, nh := range nhs {
			want := float64(nh.weight()) / total
			got := float64(count[nh.ID]) / numFlows
			if got < 0.7*want-0.01 || got > 1.3*want+0.01 {
				t.Errorf("set %v: next hop %d got share %.3f, want about %.3f", nhs, nh.ID, got, want)
			}
		}
	}
}

// TestNoPolarization: two stages with different seeds make independent
// choices, so the flows stage 1 sends to one next hop are spread over
// all of stage 2's next hops. With the same seed and the same local
// next-hop ids (lower flows numbered alike on both nodes), stage 2
// repeats stage 1's choice and part of its capacity is never used.
func TestNoPolarization(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 24))
	keys := randomKeys(rng)
	stageSets := [][]NextHop{hops(1, 2), hops(1, 2, 3, 4)}

	spread := func(seed1, seed2 uint64, set2 []NextHop) map[uint64]int {
		s1, s2 := NewFIB(seed1), NewFIB(seed2)
		setAll(s1, hops(1, 2))
		setAll(s2, set2)
		count := map[uint64]int{}
		for _, k := range keys {
			if id, _ := s1.Lookup(k.dst, k.eid, k.qos); id != 1 {
				continue
			}
			id, _ := s2.Lookup(k.dst, k.eid, k.qos)
			count[id]++
		}
		return count
	}

	for _, set2 := range stageSets {
		n := len(set2)
		// Different seeds: roughly even over stage 2's next hops.
		count := spread(0x1234, 0x9876, set2)
		var onX int
		for _, c := range count {
			onX += c
		}
		for _, nh := range set2 {
			share := float64(count[nh.ID]) / float64(onX)
			if share < 0.6/float64(n) || share > 1.4/float64(n) {
				t.Errorf("different seeds, %d hops: next hop %d got %.3f of stage-1 flows on X, want about %.3f",
					n, nh.ID, share, 1/float64(n))
			}
		}
		// Same seed: polarized. Every flow stage 1 sent to hop 1 ranks
		// hop 1 above hop 2, so stage 2 never uses hop 2.
		same := spread(0x1234, 0x1234, set2)
		if same[2] != 0 {
			t.Errorf("same seed, %d hops: expected polarization, hop 2 got %d flows", n, same[2])
		}
		if n == 2 && same[1] != onX {
			t.Errorf("same seed, 2 hops: %d of %d flows stayed on hop 1, want all", same[1], onX)
		}
		t.Logf("%d hops at stage 2: different seeds %v, same seed %v", n, count, same)
	}
}

func TestScoreRange(t *testing.T) {
	for _, x := range []uint64{0, 1, 1 << 63, ^uint64(0)} {
		s := score(x, 1)
		if !(s > 0) || s > 1e300 {
			t.Fatalf("score(%#x) = %v, want finite positive", x, s)
		}
	}
	if !(score(1<<40, 1) < score(1<<60, 1)) {
		t.Fatal("score is not increasing in x")
	}
}

// TestEqualWeightShortcut: skipping the logarithm for equal weights
// picks the same next hop as the full weighted score would.
func TestEqualWeightShortcut(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 25))
	for n := 2; n <= 16; n++ {
		nhs := randomHops(rng, n, false)
		fast := newHopSet(77, nhs)
		slow := newHopSet(77, nhs)
		if fast.weighted {
			t.Fatal("equal weights marked weighted")
		}
		slow.weighted = true
		for range 1000 {
			h := rng.Uint64()
			if a, b := fast.pick(h), slow.pick(h); a != b {
				t.Fatalf("n=%d h=%#x: shortcut picked %d, weighted score %d", n, h, a, b)
			}
		}
	}
}
