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

func TestAnswerLimit(t *testing.T) {
	var l answerLimit
	t0 := time.Unix(100, 0)
	n := 0
	for i := 0; i < 10*refuseRate; i++ {
		if l.allow(1, t0) {
			n++
		}
	}
	if n != refuseRate {
		t.Fatalf("%d answers in a burst, want %d", n, refuseRate)
	}
	if !l.allow(2, t0) {
		t.Fatal("another member refused")
	}
	if !l.allow(1, t0.Add(20*time.Millisecond)) {
		t.Fatal("no answer after the bucket refilled")
	}
}
