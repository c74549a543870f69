package unicast

import (
	"fmt"
	"testing"
	"time"
)

func TestEnrollGate(t *testing.T) {
	var g enrollGate
	t0 := time.Unix(100, 0)
	for i := 0; i < enrollBurst; i++ {
		if !g.allow("x", t0) {
			t.Fatalf("attempt %d refused", i)
		}
	}
	if g.allow("x", t0.Add(time.Second)) {
		t.Fatal("attempt over the burst allowed")
	}
	if !g.allow("y", t0) {
		t.Fatal("another name refused")
	}
	if !g.allow("x", t0.Add(enrollWindow+time.Millisecond)) {
		t.Fatal("still refused after the window")
	}
	// Many names: the table stays bounded, and frees itself with time.
	for i := 0; i < 2*enrollNames; i++ {
		g.allow(fmt.Sprint("n", i), t0)
	}
	if len(g.recent) > enrollNames {
		t.Fatalf("%d names tracked, bound %d", len(g.recent), enrollNames)
	}
	if !g.allow("late", t0.Add(2*enrollWindow)) {
		t.Fatal("a new name refused after the window")
	}
}
