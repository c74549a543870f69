package dt

import (
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
)

func hops(ids ...uint64) []NextHop {
	out := make([]NextHop, len(ids))
	for i, id := range ids {
		out[i] = NextHop{ID: id}
	}
	return out
}

func TestLookupNoRoute(t *testing.T) {
	f := NewFIB(1)
	if _, ok := f.Lookup(5, 1, 0); ok {
		t.Fatal("empty FIB found a route")
	}
	f.Set(5, Entry{})
	if _, ok := f.Lookup(5, 1, 0); ok {
		t.Fatal("empty entry found a next hop")
	}
	f.Set(5, Entry{Primary: hops(42)})
	if id, ok := f.Lookup(5, 1, 0); !ok || id != 42 {
		t.Fatalf("Lookup = %d, %v, want 42", id, ok)
	}
	f.Delete(5)
	if _, ok := f.Lookup(5, 1, 0); ok {
		t.Fatal("deleted route still found")
	}
	var zero FIB
	if _, ok := zero.Lookup(5, 1, 0); ok {
		t.Fatal("zero FIB found a route")
	}
}

func TestRemoveNextHopEveryEntry(t *testing.T) {
	f := NewFIB(7)
	f.Replace(map[uint64]Entry{
		1: {Primary: hops(10, 11), Alternates: hops(12)},
		2: {Primary: hops(10), Alternates: hops(11)},
		3: {Primary: hops(11, 12)},
		4: {Primary: hops(10)},
		5: {Primary: hops(13), Alternates: hops(10)},
	})
	if n := f.RemoveNextHop(99); n != 0 {
		t.Fatalf("removing an unknown next hop changed %d entries", n)
	}
	if n := f.RemoveNextHop(10); n != 4 {
		t.Fatalf("RemoveNextHop(10) changed %d entries, want 4", n)
	}
	want := map[uint64]Entry{
		1: {Primary: hops(11), Alternates: hops(12)},
		2: {Alternates: hops(11)},
		3: {Primary: hops(11, 12)},
		4: {},
		5: {Primary: hops(13)},
	}
	if got := f.Snapshot(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Snapshot = %+v, want %+v", got, want)
	}
	for eid := range uint64(200) {
		if id, ok := f.Lookup(1, eid, 0); !ok || id != 11 {
			t.Fatalf("dst 1: %d, %v, want 11", id, ok)
		}
		if id, ok := f.Lookup(2, eid, 0); !ok || id != 11 {
			t.Fatalf("dst 2 should fall back to alternate 11: %d, %v", id, ok)
		}
		if _, ok := f.Lookup(4, eid, 0); ok {
			t.Fatal("dst 4 has nothing left but Lookup found a next hop")
		}
	}
	// Removing the last primary makes dst 1 fall back to its alternate.
	if n := f.RemoveNextHop(11); n != 3 {
		t.Fatalf("RemoveNextHop(11) changed %d entries, want 3", n)
	}
	if id, ok := f.Lookup(1, 3, 0); !ok || id != 12 {
		t.Fatalf("dst 1 after losing all primaries: %d, %v, want alternate 12", id, ok)
	}
	if _, ok := f.Lookup(2, 3, 0); ok {
		t.Fatal("dst 2 has nothing left but Lookup found a next hop")
	}
}

func TestAlternatesOnlyWithoutPrimaries(t *testing.T) {
	f := NewFIB(3)
	f.Set(1, Entry{Primary: hops(1, 2), Alternates: hops(3, 4)})
	for eid := range uint64(1000) {
		id, ok := f.Lookup(1, eid, uint8(eid))
		if !ok || (id != 1 && id != 2) {
			t.Fatalf("Lookup used %d (ok %v) while primaries exist", id, ok)
		}
	}
}

func TestNormalizeAndCopy(t *testing.T) {
	f := NewFIB(3)
	in := map[uint64]Entry{
		1: {Primary: []NextHop{{ID: 1, Weight: 2}, {ID: 2}, {ID: 1, Weight: 9}},
			Alternates: hops(2, 3, 3)},
	}
	f.Replace(in)
	in[1].Primary[0].ID = 77 // the FIB holds its own copy
	want := map[uint64]Entry{
		1: {Primary: []NextHop{{ID: 1, Weight: 2}, {ID: 2}}, Alternates: hops(3)},
	}
	snap := f.Snapshot()
	if !reflect.DeepEqual(snap, want) {
		t.Fatalf("Snapshot = %+v, want %+v", snap, want)
	}
	snap[1].Primary[0].ID = 55 // the snapshot is a deep copy
	if got := f.Snapshot(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Snapshot changed through a copy: %+v", got)
	}
}

func TestOrderIndependent(t *testing.T) {
	f, g := NewFIB(11), NewFIB(11)
	f.Set(1, Entry{Primary: []NextHop{{ID: 1}, {ID: 2, Weight: 3}, {ID: 3}}})
	g.Set(1, Entry{Primary: []NextHop{{ID: 3}, {ID: 1}, {ID: 2, Weight: 3}}})
	for eid := range uint64(2000) {
		a, _ := f.Lookup(1, eid, 0)
		b, _ := g.Lookup(1, eid, 0)
		if a != b {
			t.Fatalf("eid %d: order of next hops changed the choice: %d vs %d", eid, a, b)
		}
	}
}

func TestLookupAllocs(t *testing.T) {
	f := NewFIB(5)
	f.Set(1, Entry{Primary: hops(1, 2, 3, 4)})
	f.Set(2, Entry{Primary: []NextHop{{ID: 1, Weight: 1}, {ID: 2, Weight: 5}}})
	var eid uint64
	allocs := testing.AllocsPerRun(200, func() {
		eid++
		f.Lookup(1, eid, 0)
		f.Lookup(2, eid, 1)
		f.Lookup(3, eid, 1)
	})
	if allocs != 0 {
		t.Fatalf("Lookup allocates %v times per run, want 0", allocs)
	}
}

// TestConcurrentLookup runs lookups while the table is being replaced
// and repaired; run it with -race.
func TestConcurrentLookup(t *testing.T) {
	f := NewFIB(9)
	full := map[uint64]Entry{}
	for dst := range uint64(16) {
		full[dst] = Entry{Primary: hops(1, 2, 3, 4), Alternates: hops(5)}
	}
	f.Replace(full)

	var stop atomic.Bool
	var bad atomic.Uint64
	var wg sync.WaitGroup
	for g := range 3 {
		wg.Go(func() {
			for i := uint64(0); !stop.Load(); i++ {
				id, ok := f.Lookup(i%16, i+uint64(g)<<32, uint8(i))
				if ok && (id < 1 || id > 5) {
					bad.Add(1)
				}
			}
		})
	}
	for i := range 200 {
		switch i % 4 {
		case 0:
			f.Replace(full)
		case 1:
			f.RemoveNextHop(uint64(i%5) + 1)
		case 2:
			f.Set(uint64(i%16), Entry{Primary: hops(uint64(i%4)+1, 5)})
		case 3:
			_ = f.Snapshot()
		}
	}
	stop.Store(true)
	wg.Wait()
	if n := bad.Load(); n != 0 {
		t.Fatalf("%d lookups returned an unknown next hop", n)
	}
}
