package routing

import (
	"testing"
	"time"
)

func TestLSDBInstallAndExpire(t *testing.T) {
	t0 := time.Unix(100, 0)
	db := newLSDB(1, time.Minute)
	db.setSelf(LSU{Origin: 1, Seq: 1}, t0)
	l := func(o, seq uint64, age time.Duration, links ...Link) LSU {
		return LSU{Origin: o, Seq: seq, Age: age, Links: links}
	}
	steps := []struct {
		lsu     LSU
		at      time.Duration
		v       verdict
		changed bool
	}{
		{l(2, 5, 0, Link{1, 1}), 0, accepted, true},
		{l(2, 5, 0, Link{1, 1}), 0, duplicate, false},
		{l(2, 4, 0), 0, stale, false},
		{l(2, 6, 0, Link{1, 1}), 10 * time.Second, accepted, false}, // refresh
		{l(2, 7, 0, Link{1, 2}), 20 * time.Second, accepted, true},
		{l(3, 1, 50*time.Second), 20 * time.Second, accepted, true}, // born at t0-30s
		{l(4, 1, time.Minute), 20 * time.Second, expired, false},
	}
	for i, s := range steps {
		v, changed := db.install(s.lsu, t0.Add(s.at))
		if v != s.v || changed != s.changed {
			t.Fatalf("step %d: got %v %v, want %v %v", i, v, changed, s.v, s.changed)
		}
	}
	next, ok := db.nextExpiry()
	if !ok || !next.Equal(t0.Add(30*time.Second)) {
		t.Fatalf("next expiry %v %v, want origin 3 at t0+30s", next, ok)
	}
	if m, _ := db.get(3, t0.Add(25*time.Second)); m.Age != 55*time.Second {
		t.Fatalf("age of 3: %v", m.Age)
	}
	if gone := db.expire(t0.Add(30 * time.Second)); len(gone) != 1 || gone[0] != 3 {
		t.Fatalf("expired %v, want [3]", gone)
	}
	// The outdated deadlines of origin 2 (t0+60s, t0+70s) are skipped.
	if next, _ := db.nextExpiry(); !next.Equal(t0.Add(80 * time.Second)) {
		t.Fatalf("next expiry %v, want t0+80s", next)
	}
	if gone := db.expire(t0.Add(79 * time.Second)); len(gone) != 0 {
		t.Fatalf("expired %v early", gone)
	}
	if gone := db.expire(t0.Add(time.Hour)); len(gone) != 1 || gone[0] != 2 {
		t.Fatalf("expired %v, want [2]", gone)
	}
	if all := db.all(t0.Add(time.Hour)); len(all) != 1 || all[0].Origin != 1 {
		t.Fatalf("self must never expire: %+v", all)
	}
	if _, ok := db.nextExpiry(); ok {
		t.Fatal("expiry left with only self")
	}
}
