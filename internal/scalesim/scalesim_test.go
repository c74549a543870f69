package scalesim

import (
	"testing"
	"time"

	"github.com/ouro-net/ouro/layer"
)

// TestLayerScale brings up small layers with the real routing,
// directory and enrollment code and checks the behaviour the bench
// (go run ./bench -scale) measures at larger N: tables converge to the
// shortest paths after bring-up, a link failure, a member failure and a
// join; the directory forgets a dead member within one refresh
// interval; and the update counts stay within what flooding allows.
func TestLayerScale(t *testing.T) {
	// A short refresh keeps the idle interval (one round per virtual
	// millisecond) cheap.
	lc := layer.Defaults("scale")
	lc.RefreshInterval, lc.MaxAge = 5*time.Second, 20*time.Second
	ri := lc.RefreshInterval
	for _, cfg := range []Config{
		{N: 50, Topology: TopoRandom, Degree: 4, Seed: 1, Layer: &lc},
		{N: 36, Topology: TopoGrid, Seed: 2, Layer: &lc},
	} {
		t.Run(cfg.Topology, func(t *testing.T) {
			r, err := Measure(cfg)
			if err != nil {
				t.Fatal(err)
			}
			n := float64(cfg.N)
			maxDeg := 2.0 * n // no member has more neighbours than this, loosely
			if cfg.Topology == TopoGrid {
				maxDeg = 4
			}
			// Each member receives each LSU at most once per neighbour;
			// a member refreshes at most twice per interval (the jitter
			// shortens a period by at most 1/8).
			if lim := 2 * n * maxDeg / ri.Seconds(); r.Idle.LSUsMax > lim {
				t.Errorf("idle: %.1f LSUs/s at the busiest member, flooding allows at most %.1f", r.Idle.LSUsMax, lim)
			}
			// Every other member's directory entry is fresh once per
			// refresh wait, which is the interval less up to
			// layer.RefreshJitter of it.
			if got, lim := r.Idle.DirFresh*ri.Seconds(), n/(1-layer.RefreshJitter); got > lim {
				t.Errorf("idle: %.1f fresh directory entries per member per interval, want at most %.1f", got, lim)
			}
			for name, e := range map[string]Event{"link failure": r.LinkFail, "member failure": r.MemberFail, "join": r.Join} {
				if e.SPFPerMember > 3 {
					t.Errorf("%s: %.2f SPF runs per member, want at most 3 (the hold-down batches)", name, e.SPFPerMember)
				}
				if e.ConvergedMS <= 0 || e.ConvergedMS > 200 {
					t.Errorf("%s: converged after %.1f ms of virtual time, want (0, 200]", name, e.ConvergedMS)
				}
			}
			// Two withdrawals, each received at most once per neighbour.
			if r.LinkFail.LSUsPerMember > 2*maxDeg {
				t.Errorf("link failure: %.1f LSUs per member, want at most %v", r.LinkFail.LSUsPerMember, 2*maxDeg)
			}
			// Unreachable for the grace (one interval), then dropped at
			// the next refresh.
			if r.DirCleanupS < ri.Seconds() || r.DirCleanupS > (2*ri+2*time.Second).Seconds() {
				t.Errorf("the dead member's names resolved for %.1f s, want between one and two refresh intervals", r.DirCleanupS)
			}
			if r.DirEntries != cfg.N || r.EnrollBytes < r.DirBytes {
				t.Errorf("directory: %d entries (want %d), enrollment response %d bytes, snapshot %d bytes",
					r.DirEntries, cfg.N, r.EnrollBytes, r.DirBytes)
			}
		})
	}
}

// TestSimDetectsInconsistency checks the check: a table the simulation
// did not let converge is reported.
func TestSimDetectsInconsistency(t *testing.T) {
	s, err := New(Config{N: 20, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Settle(time.Minute); err != nil {
		t.Fatal(err)
	}
	if bad := s.Inconsistent(0); len(bad) != 0 {
		t.Fatalf("after bring-up: members %v inconsistent", bad)
	}
	nb := s.Neighbors(0)
	if err := s.CutLink(0, nb[0]); err != nil {
		t.Fatal(err)
	}
	// No round has run: the far members still route over the cut link.
	if bad := s.Inconsistent(0); len(bad) == 0 {
		t.Fatal("a link was cut and no update delivered, yet every table is reported consistent")
	}
	if _, err := s.Settle(time.Minute); err != nil {
		t.Fatal(err)
	}
	if bad := s.Inconsistent(0); len(bad) != 0 {
		t.Fatalf("after the cut: members %v inconsistent", bad)
	}
	if _, err := New(Config{N: 2}); err == nil {
		t.Error("N=2 accepted")
	}
	if _, err := New(Config{N: 10, Topology: "torus"}); err == nil {
		t.Error("unknown topology accepted")
	}
}
