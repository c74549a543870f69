package frct

import (
	"testing"
	"time"

	"github.com/ouro-net/ouro/lib/bottleneck"
)

// Path bending in virtual time: a sender whose lower is a Bender over
// two simulated parallel paths. The path a label takes is label%2 (two
// equal-cost next hops; the real layer hashes, dt tests that part).

// bendLower sends on paths[label%2] and records every bend.
type bendLower struct {
	simLower
	paths  [2]*bottleneck.Link
	label  uint8
	labels []uint8
	at     []time.Time
	snd    func() *Conn
	rtos   []uint64 // the sender's timeouts at each bend
}

func (l *bendLower) Bend(label uint8) error {
	l.label = label
	l.labels = append(l.labels, label)
	l.at = append(l.at, l.n.sim.Now())
	l.rtos = append(l.rtos, l.snd().stats.Timeouts) // called under the Conn's lock
	return nil
}

func (l *bendLower) WritePacket(b []byte) error {
	l.link = l.paths[l.label%2]
	return l.simLower.WritePacket(b)
}

// twoPaths is a simNet with two forward paths of rate each, marking
// above markAbove bytes, and a flow over them.
type twoPaths struct {
	*simNet
	paths [2]*bottleneck.Link
	lower *bendLower
	flow  *simFlow
}

func newTwoPaths(t *testing.T, rate int64, markAbove int) *twoPaths {
	t.Helper()
	n := newSimNet(rate, simRTT, simLimit, markAbove)
	tp := &twoPaths{simNet: n}
	for i := range tp.paths {
		tp.paths[i] = &bottleneck.Link{Sim: n.sim, Rate: rate, Limit: simLimit, MarkAbove: markAbove, Delay: simRTT / 2}
	}
	f := &simFlow{n: n, buf: make([]byte, 1<<16)}
	tp.lower = &bendLower{simLower: simLower{n: n, peer: func() *Conn { return f.rcv }}, paths: tp.paths,
		snd: func() *Conn { return f.snd }}
	lr := &simLower{n: n, link: n.rev, peer: func() *Conn { return f.snd }}
	cfg := simCfg(n.sim)
	var err error
	if f.snd, err = newConn(tp.lower, cfg); err != nil {
		t.Fatal(err)
	}
	if f.snd.cc == nil || f.snd.cc.bend == nil {
		t.Fatal("a reliable connection over a Bender has no bender")
	}
	f.snd.cc.bend = newBender(1) // deterministic labels
	if f.rcv, err = newConn(lr, cfg); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Conn{f.snd, f.rcv} {
		close(c.readerDone)
		t.Cleanup(func() { c.Close() })
	}
	lr.after = f.pump
	n.flows = append(n.flows, f)
	tp.flow = f
	return tp
}

// load keeps path i busy with an unresponsive flood of share of its
// rate (packets of simMTU bytes, evenly spaced), marked and dropped
// like any other traffic.
func (tp *twoPaths) load(i int, share float64) {
	l := tp.paths[i]
	gap := time.Duration(float64(simMTU*8) / (share * float64(l.Rate)) * float64(time.Second))
	var tick func()
	tick = func() {
		l.Send(simMTU, func(bool) {})
		tp.sim.After(gap, tick)
	}
	tick()
}

// onPath returns the path the flow's packets take now.
func (tp *twoPaths) onPath() int { return int(tp.lower.label % 2) }

// TestBendLeavesCongestedPath: the flow starts on a path that an
// unresponsive flood keeps congested (marks on most of its packets),
// bends within a few round trips onto the idle path beside it, and
// stays there (no bend once its marks stop) at nearly the idle path's
// rate. Its state never changes (a bend is not an outage).
func TestBendLeavesCongestedPath(t *testing.T) {
	const markAbove = 10 * simMTU
	tp := newTwoPaths(t, simRate, markAbove)
	tp.load(0, 0.98)
	if tp.onPath() != 0 {
		t.Fatal("the flow does not start on path 0")
	}
	tp.flow.pump()
	tp.run(time.Second)
	st := tp.flow.snd.Stats()
	t.Logf("after 1 s: bends %d (held %d) at %v, labels %v, timeouts then %v, path %d", st.Bends, st.BendsHeld, tp.lower.at, tp.lower.labels, tp.lower.rtos, tp.onPath())
	if st.Bends == 0 || tp.onPath() != 1 {
		t.Fatalf("the flow did not bend onto the idle path: %d bends, on path %d", st.Bends, tp.onPath())
	}
	if tp.lower.rtos[0] != 0 {
		t.Errorf("the first bend came after %d timeouts, not from the marks", tp.lower.rtos[0])
	}
	if len(tp.lower.labels) != int(st.Bends) || tp.lower.labels[len(tp.lower.labels)-1] != st.Label {
		t.Fatalf("bends seen by the lower %v, stats %d (label %d)", tp.lower.labels, st.Bends, st.Label)
	}
	bends := st.Bends
	for i := range tp.paths {
		tp.paths[i].ResetStats()
	}
	r := tp.rates(2 * time.Second)
	st = tp.flow.snd.Stats()
	t.Logf("next 2 s: %.2f Mbit/s, bends %d, path 1 marked %d of %d", mbps(r[0]), st.Bends, tp.paths[1].Stats().Marked, tp.paths[1].Stats().Sent)
	if st.Bends != bends {
		t.Errorf("the flow bent again on the idle path: %d bends, then %d", bends, st.Bends)
	}
	if r[0] < 0.8*simRate*wire {
		t.Errorf("goodput on the idle path %.2f Mbit/s, want >= 80%% of %d", mbps(r[0]), simRate/mbit)
	}
	if err := tp.flow.snd.err; err != nil {
		t.Errorf("sender failed: %v", err)
	}
}

// TestBendOnTimeout: a path that loses everything (a black hole the
// routing has not seen yet) gives no marks, only timeouts; a timeout
// bends the flow, which ends up on the path that works and delivers.
func TestBendOnTimeout(t *testing.T) {
	tp := newTwoPaths(t, simRate, 0)
	tp.paths[0].Drop = func(time.Time) bool { return true }
	tp.flow.pump()
	tp.run(2 * time.Second)
	st := tp.flow.snd.Stats()
	t.Logf("bends %d at %v, labels %v, timeouts %d; delivered %d bytes", st.Bends, tp.lower.at, tp.lower.labels, st.Timeouts, tp.flow.got)
	if st.Bends == 0 || tp.onPath() != 1 {
		t.Fatalf("no bend away from the black hole: %d bends, on path %d", st.Bends, tp.onPath())
	}
	if tp.flow.got == 0 {
		t.Fatal("nothing delivered over the working path")
	}
}

// TestBendRateLimited: with both paths congested no bend helps; bends
// still happen (the flow cannot know) but ever more rarely: the gaps
// between them grow until the hold's maximum and the count over a few
// seconds stays a small fraction of what one bend per three round trips
// would give.
func TestBendRateLimited(t *testing.T) {
	const markAbove = 10 * simMTU
	tp := newTwoPaths(t, simRate, markAbove)
	tp.load(0, 0.98)
	tp.load(1, 0.98)
	tp.flow.pump()
	const d = 5 * time.Second
	tp.run(d)
	st := tp.flow.snd.Stats()
	at := tp.lower.at
	var gaps []time.Duration
	for i := 1; i < len(at); i++ {
		gaps = append(gaps, at[i].Sub(at[i-1]))
	}
	t.Logf("%d bends, %d held, gaps %v", st.Bends, st.BendsHeld, gaps)
	if st.Bends < 2 {
		t.Fatalf("%d bends on two congested paths: the flow never tried the other", st.Bends)
	}
	if st.BendsHeld == 0 {
		t.Errorf("no bend was held back")
	}
	// Unlimited: one per bendRounds round trips of at least simRTT.
	unlimited := int(d / (bendRounds * simRTT))
	if int(st.Bends) > unlimited/20 {
		t.Errorf("%d bends in %v (unlimited would be about %d): flapping", st.Bends, d, unlimited)
	}
	for i := 1; i < len(gaps); i++ {
		if gaps[i] < gaps[i-1]/2 {
			t.Errorf("gap %d (%v) much shorter than the one before (%v): the hold did not back off", i, gaps[i], gaps[i-1])
		}
	}
}

func TestBenderRounds(t *testing.T) {
	b := newBender(7)
	now := time.Unix(0, 0)
	rtt := 2 * time.Millisecond
	step := func(marked, acked int) bool {
		now = now.Add(rtt)
		return b.round(now, marked, acked, rtt)
	}
	// Two congested rounds, a clean one: the run starts again.
	if step(10, 10) || step(5, 10) || step(0, 10) || step(10, 10) || step(10, 10) {
		t.Fatal("bent before three congested rounds in a row")
	}
	if !step(3, 10) {
		t.Fatal("no bend after three congested rounds (30% marked)")
	}
	if b.label == 0 || b.label > MaxLabel || !b.due {
		t.Fatalf("label %d, due %v", b.label, b.due)
	}
	// Below the share: never.
	for i := 0; i < 50; i++ {
		if step(2, 10) {
			t.Fatal("bent at 20% marked")
		}
	}
	// An empty round says nothing.
	if step(0, 0) {
		t.Fatal("bent on an empty round")
	}
	// Labels: always a different one, always in range, all reachable.
	seen := map[uint8]bool{}
	for i := 0; i < 1000; i++ {
		prev := b.label
		b.next = time.Time{}
		if !b.try(now, rtt) {
			t.Fatal("try refused with no hold")
		}
		if b.label == prev || b.label > MaxLabel {
			t.Fatalf("label %d after %d", b.label, prev)
		}
		seen[b.label] = true
	}
	if len(seen) != MaxLabel+1 {
		t.Fatalf("labels used: %d of %d", len(seen), MaxLabel+1)
	}
}

func TestBenderHoldBacksOff(t *testing.T) {
	b := newBender(3)
	now := time.Unix(0, 0)
	rtt := time.Millisecond
	if !b.try(now, rtt) || b.hold != bendHold {
		t.Fatalf("first bend: hold %d", b.hold)
	}
	// Asked again during the hold: held and counted.
	if b.try(now.Add(time.Duration(bendHold-1)*rtt), rtt) || b.held != 1 {
		t.Fatalf("bend inside the hold (held %d)", b.held)
	}
	// Each bend soon after the last doubles the hold, to the maximum.
	want := bendHold
	for i := 0; i < 10; i++ {
		now = b.next
		if !b.try(now, rtt) {
			t.Fatal("bend at the end of the hold refused")
		}
		want = min(2*want, bendHoldMax)
		if b.hold != want {
			t.Fatalf("bend %d: hold %d, want %d", i+2, b.hold, want)
		}
	}
	// A quiet spell longer than four holds brings it back.
	now = now.Add(5 * time.Duration(b.hold) * rtt)
	if !b.try(now, rtt) || b.hold != bendHold {
		t.Fatalf("after quiet: hold %d, want %d", b.hold, bendHold)
	}
	// A timeout with no RTT sample yet holds for bendHold x bendMinRTT.
	c := newBender(4)
	c.try(now, 0)
	if got := c.next.Sub(now); got != bendHold*bendMinRTT {
		t.Fatalf("hold with no RTT: %v", got)
	}
}

type countBender struct {
	simLower
	labels []uint8
}

func (l *countBender) Bend(label uint8) error { l.labels = append(l.labels, label); return nil }

// TestBendOnSecondTimeout: one timeout followed by an ACK (a late ACK,
// the common case on a loaded host) does not bend; a second timeout in
// a row does.
func TestBendOnSecondTimeout(t *testing.T) {
	lower := &countBender{}
	c := &Conn{lower: lower, cc: newController(64, 8), srtt: time.Millisecond}
	c.cc.bend = newBender(1)
	now := time.Unix(100, 0)
	c.bendOnTimeoutLocked(now)
	c.cc.onAck(now, 1, 1, false, 1, 2, c.srtt) // the path answered
	c.bendOnTimeoutLocked(now.Add(time.Second))
	if len(lower.labels) != 0 {
		t.Fatalf("bent on single timeouts: %v", lower.labels)
	}
	c.bendOnTimeoutLocked(now.Add(2 * time.Second))
	if len(lower.labels) != 1 || c.cc.bend.bends != 1 {
		t.Fatalf("second timeout in a row: bends %v", lower.labels)
	}
}
