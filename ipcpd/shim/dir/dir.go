// Package dir is the directory of a shim IPCP: the names registered at
// it (Names) and the answers it got about names elsewhere (Cache). The
// shims carry names as hashes (lib/namehash), so both are keyed by hash.
//
// The cache is bounded twice: an answer lives for its TTL on the clock
// the owner passes in, and at most Max answers are kept (when full,
// expired ones go first, then arbitrary ones), so that a peer answering
// for ever more names cannot grow it without bound. Neither type is
// safe for concurrent use: the shim's mutex guards them.
package dir

import (
	"fmt"
	"sort"
	"time"

	"github.com/ouro-net/ouro/lib/namehash"
)

// Names are the names registered here, by hash.
type Names map[namehash.Hash]string

// Register records name.
func (n Names) Register(name string) { n[namehash.Of(name)] = name }

// Unregister forgets name and reports whether it was registered.
func (n Names) Unregister(name string) bool {
	h := namehash.Of(name)
	_, ok := n[h]
	delete(n, h)
	return ok
}

// Lookup returns the name registered with hash h.
func (n Names) Lookup(h namehash.Hash) (string, bool) {
	name, ok := n[h]
	return name, ok
}

// Sorted returns the registered names in order.
func (n Names) Sorted() []string {
	out := make([]string, 0, len(n))
	for _, name := range n {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// DefaultMax bounds a cache made with Max 0.
const DefaultMax = 4096

// Entry is one cached answer: the name (when the asker knew it), where
// it is, and until when the answer holds.
type Entry[A comparable] struct {
	Name    string
	Addr    A
	Expires time.Time
}

// Cache holds the positive answers to queries, by name hash.
type Cache[A comparable] struct {
	ttl time.Duration
	max int
	m   map[namehash.Hash]Entry[A]
}

// NewCache returns a cache whose answers live ttl, at most max of them
// (0: DefaultMax).
func NewCache[A comparable](ttl time.Duration, max int) *Cache[A] {
	if max <= 0 {
		max = DefaultMax
	}
	return &Cache[A]{ttl: ttl, max: max, m: make(map[namehash.Hash]Entry[A])}
}

// Put records that h (name, if known) is at a as of now.
func (c *Cache[A]) Put(now time.Time, h namehash.Hash, name string, a A) {
	if _, ok := c.m[h]; !ok && len(c.m) >= c.max {
		for k, e := range c.m {
			if !now.Before(e.Expires) {
				delete(c.m, k)
			}
		}
		for k := range c.m {
			if len(c.m) < c.max {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[h] = Entry[A]{Name: name, Addr: a, Expires: now.Add(c.ttl)}
}

// Get returns where h is, if a live answer says so; an expired answer
// is removed.
func (c *Cache[A]) Get(now time.Time, h namehash.Hash) (A, bool) {
	e, ok := c.m[h]
	if ok && now.Before(e.Expires) {
		return e.Addr, true
	}
	if ok {
		delete(c.m, h)
	}
	var zero A
	return zero, false
}

// Forget drops the answer for h if it names a (it proved wrong).
func (c *Cache[A]) Forget(h namehash.Hash, a A) {
	if e, ok := c.m[h]; ok && e.Addr == a {
		delete(c.m, h)
	}
}

// Drop drops the answer for h, wherever it points.
func (c *Cache[A]) Drop(h namehash.Hash) { delete(c.m, h) }

// Len is how many answers are held, live or not yet removed.
func (c *Cache[A]) Len() int { return len(c.m) }

// Lines renders the live answers for `irm layer show`, one string each
// by format, sorted, at most most of them and then a line saying how
// many more there are.
func (c *Cache[A]) Lines(now time.Time, most int, format func(h namehash.Hash, e Entry[A], left time.Duration) string) []string {
	var out []string
	for h, e := range c.m {
		if now.Before(e.Expires) {
			out = append(out, format(h, e, e.Expires.Sub(now)))
		}
	}
	sort.Strings(out)
	if n := len(out); n > most {
		out = append(out[:most], fmt.Sprintf("... and %d more", n-most))
	}
	return out
}
