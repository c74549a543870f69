package dir

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ouro-net/ouro/lib/namehash"
)

func TestNames(t *testing.T) {
	n := Names{}
	n.Register("b")
	n.Register("a")
	if name, ok := n.Lookup(namehash.Of("a")); !ok || name != "a" {
		t.Fatalf("lookup a = %q, %v", name, ok)
	}
	if got := strings.Join(n.Sorted(), ","); got != "a,b" {
		t.Fatalf("sorted %q", got)
	}
	if !n.Unregister("a") || n.Unregister("a") {
		t.Fatal("unregister a twice should succeed once")
	}
}

// TestCacheTTL: an answer holds for its TTL on the clock passed in, and
// Forget drops it only for the address it names.
func TestCacheTTL(t *testing.T) {
	now := time.Unix(1000, 0)
	c := NewCache[int](10*time.Second, 0)
	h := namehash.Of("x")
	c.Put(now, h, "x", 7)
	if a, ok := c.Get(now.Add(9*time.Second), h); !ok || a != 7 {
		t.Fatalf("within the TTL: %d, %v", a, ok)
	}
	if _, ok := c.Get(now.Add(10*time.Second), h); ok || c.Len() != 0 {
		t.Fatal("answer outlived its TTL")
	}
	c.Put(now, h, "x", 7)
	c.Forget(h, 8)
	if _, ok := c.Get(now, h); !ok {
		t.Fatal("Forget of another address dropped the answer")
	}
	c.Forget(h, 7)
	if _, ok := c.Get(now, h); ok {
		t.Fatal("Forget kept the answer")
	}
}

// TestCacheBound: however many names are answered, at most max stay,
// and the newest answer is always kept.
func TestCacheBound(t *testing.T) {
	now := time.Unix(1000, 0)
	c := NewCache[int](time.Minute, 16)
	var last namehash.Hash
	for i := range 1000 {
		last = namehash.Of(fmt.Sprint("n", i))
		c.Put(now, last, "", i)
		if c.Len() > 16 {
			t.Fatalf("%d answers held, cap 16", c.Len())
		}
	}
	if a, ok := c.Get(now, last); !ok || a != 999 {
		t.Fatalf("newest answer: %d, %v", a, ok)
	}
	lines := c.Lines(now, 4, func(_ namehash.Hash, e Entry[int], _ time.Duration) string { return fmt.Sprint(e.Addr) })
	if len(lines) != 5 || lines[4] != "... and 12 more" {
		t.Fatalf("lines %q", lines)
	}
}
