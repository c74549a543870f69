package scalesim

import (
	"fmt"
	"testing"
	"time"

	"github.com/ouro-net/ouro/layer"
)

// TestShortOutageKeepsNames: a member cut off from the layer for less
// than a refresh interval (its links all down, then up again) is known
// by every member's directory afterwards, without waiting for its next
// refresh. Members whose refresh fell in the outage used to drop its
// entry, and the database sync of the returning links floods it no
// further than the first members that still held it.
func TestShortOutageKeepsNames(t *testing.T) {
	lc := layer.Defaults("outage")
	lc.RefreshInterval, lc.MaxAge = 5*time.Second, 20*time.Second
	s, err := New(Config{N: 36, Topology: TopoGrid, Seed: 4, Layer: &lc})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Settle(time.Minute); err != nil {
		t.Fatal(err)
	}
	s.Run(2 * lc.RefreshInterval) // past the bring-up's first refreshes
	const x = 14                  // inside the grid
	name := fmt.Sprintf("app-%d-0", x)
	if n := s.DirectoryHolds(x, name); n != s.Members() {
		t.Fatalf("before the outage %d of %d members resolve %s", n, s.Members(), name)
	}
	nbrs := s.Neighbors(x)
	for _, n := range nbrs {
		if err := s.CutLink(x, n); err != nil {
			t.Fatal(err)
		}
	}
	s.Run(2 * time.Second)
	for _, n := range nbrs {
		if err := s.RestoreLink(x, n); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Settle(time.Minute); err != nil {
		t.Fatal(err)
	}
	if n := s.DirectoryHolds(x, name); n != s.Members() {
		t.Fatalf("after a 2 s outage %d of %d members resolve %s", n, s.Members(), name)
	}
}
