package routing

import "testing"

// TestSPFTimeCounted: every SPF run adds the time it took to the stats;
// the last run's time is kept apart. (Real time: the runs take CPU even
// when the virtual clock stands still.)
func TestSPFTimeCounted(t *testing.T) {
	s := square(t, PolicyECMP)
	defer s.close()
	a := s.routers[nodeA]
	before := a.Stats()
	s.cut(nodeB, nodeD)
	s.drain()
	s.clk.Advance(simHoldDown)
	s.checkConverged("after cut")
	after := a.Stats()
	if after.SPFRuns == before.SPFRuns {
		t.Fatal("no SPF run after a cut")
	}
	if after.LastSPFTime <= 0 || after.SPFTime < before.SPFTime+after.LastSPFTime {
		t.Fatalf("SPF time: before %v, after %v, last run %v", before.SPFTime, after.SPFTime, after.LastSPFTime)
	}
}
