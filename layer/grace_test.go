package layer

import (
	"slices"
	"testing"
	"time"
)

// TestDirectoryGraceForUnreachable: the entry of a member routing
// does not reach is kept through an outage shorter than the grace (a
// 40 ms stall with a refresh in it, a partition of some seconds, a flap
// that ends and starts again), and dropped once the member has been
// unreachable without a break for the grace; entries not refreshed
// within MaxAge still go whatever routing says.
func TestDirectoryGraceForUnreachable(t *testing.T) {
	const maxAge, grace = 90 * time.Second, 30 * time.Second
	t0 := time.Unix(1000, 0)
	d := NewDirectory(1, "a")
	for o := uint64(2); o <= 4; o++ {
		d.Apply(DirEntry{Origin: o, IPCP: "m", Seq: 1, Names: []string{string(rune('a' + o))}}, t0)
	}
	down := map[uint64]bool{}
	alive := func(o uint64) bool { return !down[o] }
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	has := func(o uint64) bool { return slices.Contains(d.Lookup(string(rune('a'+o))), o) }
	expire := func(when time.Duration, want int) {
		t.Helper()
		if n := d.Expire(at(when), maxAge, grace, alive); n != want {
			t.Fatalf("expire at %v dropped %d, want %d", when, n, want)
		}
	}

	// A 40 ms stall of member 2 with a refresh in its middle.
	down[2] = true
	d.Reach(alive, at(10*time.Second))
	expire(10*time.Second+20*time.Millisecond, 0)
	down[2] = false
	d.Reach(alive, at(10*time.Second+40*time.Millisecond))
	if !has(2) {
		t.Fatal("member 2's names gone after a 40 ms stall")
	}
	// A 20 s partition of member 3, over two refreshes.
	down[3] = true
	d.Reach(alive, at(15*time.Second))
	expire(20*time.Second, 0)
	expire(34*time.Second, 0)
	down[3] = false
	d.Reach(alive, at(35*time.Second))
	// Members 2 and 3 refresh their entries.
	for o := uint64(2); o <= 3; o++ {
		d.Apply(DirEntry{Origin: o, IPCP: "m", Seq: 2, Names: []string{string(rune('a' + o))}}, at(60*time.Second))
	}
	// Member 4 flaps: down, back, down again; the grace runs from the
	// last loss, not the first.
	down[4] = true
	d.Reach(alive, at(36*time.Second))
	down[4] = false
	d.Reach(alive, at(37*time.Second))
	down[4] = true
	d.Reach(alive, at(50*time.Second))
	expire(70*time.Second, 0)
	if !has(2) || !has(3) || !has(4) {
		t.Fatalf("names lost across short outages: 2 %v, 3 %v, 4 %v", has(2), has(3), has(4))
	}
	// Member 4 stays away: gone once unreachable for the grace.
	expire(80*time.Second, 1)
	if has(4) {
		t.Fatal("member 4's names kept after it was unreachable for the grace")
	}
	// Without Reach, Expire's own look at routing starts the grace.
	down[2] = true
	expire(85*time.Second, 0)
	expire(85*time.Second+grace, 1)
	if has(2) || !has(3) {
		t.Fatalf("after member 2 stayed unreachable: 2 %v, 3 %v", has(2), has(3))
	}
	// MaxAge applies to reachable members too.
	expire(60*time.Second+maxAge+time.Second, 1)
	if has(3) {
		t.Fatal("member 3's entry kept past MaxAge")
	}
}
