package routing

import (
	"sync"
	"testing"
	"time"

	"github.com/ouro-net/ouro/lib/clock"
)

// TestConcurrentUse drives routers on the real clock from several
// goroutines at once, with synchronous delivery, for the race detector.
// It asserts only that nothing races, deadlocks or errors.
func TestConcurrentUse(t *testing.T) {
	addrs := []uint64{1, 2, 3, 4}
	routers := make(map[uint64]*Router)
	var mu sync.Mutex // guards up
	up := map[[2]uint64]bool{}
	for _, a := range addrs {
		r, err := New(Config{Self: a, Clock: clock.Real(), HoldDown: time.Millisecond, Policy: PolicyLFA,
			Send: func(n uint64, msg []byte) {
				mu.Lock()
				ok := up[[2]uint64{a, n}]
				mu.Unlock()
				if ok {
					if err := routers[n].Receive(a, msg); err != nil && err != ErrClosed {
						t.Error(err)
					}
				}
			},
			OnTable: func(tb Table) { _ = len(tb) },
		})
		if err != nil {
			t.Fatal(err)
		}
		routers[a] = r
	}
	var wg sync.WaitGroup
	for i, a := range addrs {
		b := addrs[(i+1)%len(addrs)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 200; k++ {
				mu.Lock()
				up[[2]uint64{a, b}], up[[2]uint64{b, a}] = true, true
				mu.Unlock()
				routers[a].NeighborUp(b, uint32(k%3+1))
				routers[b].NeighborUp(a, 1)
				_ = routers[a].Table()
				_ = routers[b].Members()
				_ = routers[a].Stats()
				if k%2 == 0 {
					mu.Lock()
					up[[2]uint64{a, b}], up[[2]uint64{b, a}] = false, false
					mu.Unlock()
					routers[a].NeighborDown(b)
					routers[b].NeighborDown(a)
				}
			}
		}()
	}
	wg.Wait()
	for _, r := range routers {
		r.Close()
	}
}
