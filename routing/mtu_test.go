package routing

import (
	"testing"
	"time"

	"github.com/ouro-net/ouro/lib/clock"
)

// TestMaxMessageTo: with MaxMessageTo set, every message a router sends
// (floods, syncs, replies) fits the bound of the neighbour it goes to,
// below MaxMessage, and the network still converges.
func TestMaxMessageTo(t *testing.T) {
	clk := clock.NewFake(time.Unix(0, 0))
	limit := func(n uint64) int { return 120 + 30*int(n%3) }
	routers := map[uint64]*Router{}
	up := map[[2]uint64]bool{}
	var over []int
	msgs := map[uint64]int{}
	const n = 12
	for a := uint64(1); a <= n; a++ {
		r, err := New(Config{Self: a, Clock: clk, MaxMessageTo: limit,
			Send: func(to uint64, msg []byte) {
				if len(msg) > limit(to) {
					over = append(over, len(msg))
				}
				msgs[to]++
				if up[[2]uint64{a, to}] {
					if err := routers[to].Receive(a, msg); err != nil {
						t.Error(err)
					}
				}
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		routers[a] = r
		defer r.Close()
	}
	link := func(a, b uint64) {
		up[[2]uint64{a, b}], up[[2]uint64{b, a}] = true, true
		routers[a].NeighborUp(b, 1)
		routers[b].NeighborUp(a, 1)
		clk.Advance(time.Second)
	}
	for a := uint64(1); a < n-1; a++ {
		link(a, a+1)
	}
	before := routers[n].Stats().MessagesReceived
	link(n-1, n)
	if got := routers[n].Stats().MessagesReceived - before; got < 4 {
		t.Fatalf("the late joiner's sync of %d LSUs came in %d messages", n-1, got)
	}
	if len(over) > 0 {
		t.Fatalf("messages over their neighbour's bound: %v bytes", over)
	}
	if got := len(routers[1].Table()); got != n-1 {
		t.Fatalf("node 1 has routes to %d members, want %d", got, n-1)
	}
}
