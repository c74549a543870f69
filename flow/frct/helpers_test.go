package frct

import (
	"runtime"
	"testing"
	"time"

	"github.com/ouro-net/ouro/lib/memlink"
)

// leakCheck fails the test if goroutines started during it outlive it.
func leakCheck(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		var n int
		for i := 0; i < 500; i++ {
			if n = runtime.NumGoroutine(); n <= before {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		buf := make([]byte, 1<<16)
		buf = buf[:runtime.Stack(buf, true)]
		t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf)
	})
}

// eventually polls cond (real time, generous bound) instead of sleeping
// a fixed amount; it asserts that something happens, never how fast.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 2000; i++ {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// newPair connects two Conns over a memlink pair and closes everything
// at the end of the test.
func newPair(t *testing.T, cfg Config, lc memlink.Config) (*Conn, *Conn, *memlink.End, *memlink.End) {
	t.Helper()
	la, lb := memlink.NewPair(lc)
	a, err := New(la, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	b, err := New(lb, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		a.Close()
		b.Close()
	})
	return a, b, la, lb
}

// fastCfg suits the real clock over an in-memory link.
func fastCfg() Config {
	return Config{Reliable: true, InOrder: true, RTOMin: 2 * time.Millisecond, InitialRTO: 20 * time.Millisecond}
}
