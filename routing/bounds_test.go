package routing

import (
	"testing"
	"time"

	"github.com/ouro-net/ouro/lib/clock"
)

// TestDatabaseBounded: a neighbour floods LSUs of made-up origins and
// an LSU with too many links. The database stops at its bounds and
// counts the refusals; the real neighbour's updates are still taken,
// and once the made-up origins age out a new member gets in.
func TestDatabaseBounded(t *testing.T) {
	clk := clock.NewFake(time.Unix(0, 0))
	r, err := New(Config{Self: 1, Clock: clk, RefreshInterval: time.Second, MaxAge: 4 * time.Second,
		MaxOrigins: 8, MaxLinks: 40})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.NeighborUp(2, 1)
	recv := func(lsus ...LSU) {
		t.Helper()
		b, err := Encode(Message{Kind: KindUpdate, LSUs: lsus})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Receive(2, b); err != nil {
			t.Fatal(err)
		}
	}
	recv(LSU{Origin: 2, Seq: 1, Links: []Link{{Neighbor: 1, Cost: 1}}})
	var fake []LSU
	for o := uint64(100); o < 120; o++ {
		fake = append(fake, LSU{Origin: o, Seq: 1, Links: []Link{{Neighbor: 2, Cost: 1}}})
	}
	recv(fake...)
	if n := len(r.Members()); n != 8 {
		t.Fatalf("%d members, bound 8", n)
	}
	big := LSU{Origin: 2, Seq: 2}
	for n := uint64(3); n < 60; n++ {
		big.Links = append(big.Links, Link{Neighbor: n, Cost: 1})
	}
	recv(big)
	st := r.Stats()
	if st.LSUsRefused != 15 {
		t.Fatalf("refused %d LSUs, want 15 (14 origins over the bound, 1 over the links)", st.LSUsRefused)
	}
	// The real neighbour's next update is taken.
	recv(LSU{Origin: 2, Seq: 3, Links: []Link{{Neighbor: 1, Cost: 5}}})
	if m, _ := member(r, 2); m.Seq != 3 {
		t.Fatalf("neighbour's update refused: %+v", m)
	}
	// The made-up origins age out; the neighbour refreshes.
	for i := 0; i < 5; i++ {
		clk.Advance(time.Second)
		recv(LSU{Origin: 2, Seq: uint64(4 + i), Links: []Link{{Neighbor: 1, Cost: 5}}})
	}
	recv(LSU{Origin: 3, Seq: 1, Links: []Link{{Neighbor: 2, Cost: 1}}})
	if _, ok := member(r, 3); !ok {
		t.Fatalf("a new member refused after the made-up ones aged out: %+v", r.Members())
	}
	r.mu.Lock()
	links := 0
	for _, e := range r.db.entries {
		links += len(e.lsu.Links)
	}
	if links != r.db.links {
		t.Fatalf("link count %d, entries hold %d", r.db.links, links)
	}
	r.mu.Unlock()
}
