package seal

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/ouro-net/ouro/lib/clock"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// timedPair is a sender and a receiver of one direction, on a virtual
// clock each, with fresh random keys.
func timedPair(t testing.TB, limit uint64) (tx, rx *Session, ctx, crx *clock.Fake) {
	t.Helper()
	k1, k2 := make([]byte, KeyLen), make([]byte, KeyLen)
	rand.Read(k1)
	rand.Read(k2)
	ctx, crx = clock.NewFake(t0), clock.NewFake(t0)
	return NewSessionClock(k1, k2, limit, ctx), NewSessionClock(k2, k1, limit, crx), ctx, crx
}

func msg(i int) []byte { return binary.BigEndian.AppendUint32([]byte("m"), uint32(i)) }

func seal(t testing.TB, s *Session, i int) []byte {
	t.Helper()
	p, err := s.Seal(nil, msg(i))
	if err != nil {
		t.Fatalf("seal %d: %v", i, err)
	}
	return p
}

func mustOpen(t testing.TB, s *Session, p []byte, i int) {
	t.Helper()
	got, err := s.Open(bytes.Clone(p))
	if err != nil || !bytes.Equal(got, msg(i)) {
		t.Fatalf("packet %d (counter %d): %q, %v", i, counter(p), got, err)
	}
}

func counter(p []byte) uint64 { return binary.BigEndian.Uint64(p[1:HeaderLen]) }

// advance moves both clocks.
func advance(d time.Duration, cs ...*clock.Fake) {
	for _, c := range cs {
		c.Advance(d)
	}
}

func TestTimeRekeySteadyFlow(t *testing.T) {
	tx, rx, ctx, crx := timedPair(t, 0)
	n := 0
	// Ten minutes of a packet every 10 s: a new key every 2 minutes.
	for step := 0; step < 60; step++ {
		for j := 0; j < 3; j++ {
			mustOpen(t, rx, seal(t, tx, n), n)
			n++
		}
		advance(10*time.Second, ctx, crx)
	}
	p := seal(t, tx, n)
	if e := counter(p) / RekeyAfter; e != 5 {
		t.Fatalf("after 10 minutes the sender is in epoch %d, want 5", e)
	}
	mustOpen(t, rx, p, n)
	ts, rs := tx.Stats(), rx.Stats()
	if ts.Rekeys != 5 || rs.Rekeys != 5 || rs.Opened != uint64(n+1) || rs.Dropped() != 0 {
		t.Fatalf("sender %v; receiver %v", ts, rs)
	}
	// An idle sender steps once, not once per 2 minutes of silence.
	advance(time.Hour, ctx, crx)
	p = seal(t, tx, n+1)
	if e := counter(p) / RekeyAfter; e != 6 {
		t.Fatalf("after an idle hour the sender is in epoch %d, want 6", e)
	}
	mustOpen(t, rx, p, n+1)
}

func TestTimeRekeyOutageRecovers(t *testing.T) {
	for _, epochs := range []int{2, 10, MaxEpochSkip} {
		tx, rx, ctx, crx := timedPair(t, 0)
		mustOpen(t, rx, seal(t, tx, 0), 0)
		// The outage: the sender keeps sealing keepalives every 10 s,
		// all lost.
		var lost [][]byte
		for len(lost) == 0 || counter(lost[len(lost)-1])/RekeyAfter < uint64(epochs) {
			advance(10*time.Second, ctx, crx)
			lost = append(lost, seal(t, tx, len(lost)+1))
			if len(lost) > 13*epochs {
				t.Fatalf("the sender is in epoch %d after %d packets 10 s apart", counter(lost[len(lost)-1])/RekeyAfter, len(lost))
			}
		}
		// The link returns: the next packets open.
		n := len(lost) + 1
		p := seal(t, tx, n)
		if e := counter(p) / RekeyAfter; e != uint64(epochs) {
			t.Fatalf("sender in epoch %d, want %d", e, epochs)
		}
		mustOpen(t, rx, p, n)
		mustOpen(t, rx, seal(t, tx, n+1), n+1)
		if rs := rx.Stats(); rs.Rekeys != uint64(epochs) || rs.Dropped() != 0 {
			t.Fatalf("%d epochs: receiver %v", epochs, rs)
		}
		if rx.nAhead != 0 || rx.Opener.epoch != uint64(epochs) {
			t.Fatalf("receiver epoch %d, look-ahead %d", rx.Opener.epoch, rx.nAhead)
		}
		for i := range rx.ahead {
			if rx.ahead[i] != [KeyLen]byte{} {
				t.Fatalf("look-ahead key %d not erased", i)
			}
		}
	}
}

func TestTimeRekeyJumpBeyondBound(t *testing.T) {
	tx, rx, ctx, crx := timedPair(t, 0)
	// far has the same keys as tx but lives MaxEpochSkip+1 epochs on.
	far := NewSessionClock(bytes.Clone(tx.Sealer.key[:]), make([]byte, KeyLen), 0, clock.NewFake(t0))
	farClk := far.Sealer.clk.(*clock.Fake)
	mustOpen(t, rx, seal(t, tx, 0), 0)
	for range MaxEpochSkip + 1 {
		farClk.Advance(RekeyAfterTime)
		far.Seal(nil, nil)
	}
	p := seal(t, far, 99)
	if e := counter(p) / RekeyAfter; e != MaxEpochSkip+1 {
		t.Fatalf("far sender in epoch %d", e)
	}
	for range 3 {
		if got, err := rx.Open(bytes.Clone(p)); !errors.Is(err, ErrAhead) {
			t.Fatalf("a packet %d epochs ahead: %q, %v", MaxEpochSkip+1, got, err)
		}
	}
	if rs := rx.Stats(); rs.Ahead != 3 || rs.Auth != 3 || rs.Opened != 1 || rs.Rekeys != 0 || rx.nAhead != 0 {
		t.Fatalf("after the jump: %v, look-ahead %d", rs, rx.nAhead)
	}
	// The session lives on: the honest sender's next packets open, also
	// across a time step.
	mustOpen(t, rx, seal(t, tx, 1), 1)
	advance(RekeyAfterTime, ctx, crx)
	mustOpen(t, rx, seal(t, tx, 2), 2)
	if rs := rx.Stats(); rs.Opened != 3 || rs.Rekeys != 1 {
		t.Fatalf("after: %v", rs)
	}
}

func TestTimeRekeyReorderAcrossBoundary(t *testing.T) {
	tx, rx, ctx, crx := timedPair(t, 0)
	var old, nw [][]byte
	for i := range 5 {
		old = append(old, seal(t, tx, i))
	}
	advance(RekeyAfterTime, ctx, crx)
	for i := range 5 {
		nw = append(nw, seal(t, tx, 5+i))
	}
	if counter(old[4])/RekeyAfter != 0 || counter(nw[0])/RekeyAfter != 1 {
		t.Fatal("no epoch boundary between the two bursts")
	}
	mustOpen(t, rx, old[0], 0)
	mustOpen(t, rx, nw[1], 6)
	mustOpen(t, rx, nw[0], 5)
	mustOpen(t, rx, old[3], 3)
	mustOpen(t, rx, old[1], 1)
	mustOpen(t, rx, nw[2], 7)
	// Replays on either side of the boundary are refused.
	for _, p := range [][]byte{old[0], old[3], nw[0], nw[1]} {
		if got, err := rx.Open(bytes.Clone(p)); !errors.Is(err, ErrReplay) {
			t.Fatalf("replay of counter %d: %q, %v", counter(p), got, err)
		}
	}
	// After the grace the previous epoch's key is gone: a packet of it
	// never seen before is too old now.
	advance(PreviousGrace+time.Second, ctx, crx)
	mustOpen(t, rx, nw[3], 8)
	if rx.prev != nil {
		t.Fatal("previous key kept after the grace")
	}
	if got, err := rx.Open(bytes.Clone(old[2])); !errors.Is(err, ErrReplay) {
		t.Fatalf("late packet after the grace: %q, %v", got, err)
	}
	if rs := rx.Stats(); rs.Opened != 7 || rs.Replayed != 5 || rs.Auth != 0 {
		t.Fatalf("%v", rs)
	}
}

func TestTimeRekeyReplayAcrossEpochs(t *testing.T) {
	tx, rx, ctx, crx := timedPair(t, 4) // count steps too
	var all [][]byte
	for i := range 40 {
		p := seal(t, tx, i)
		all = append(all, p)
		mustOpen(t, rx, p, i)
		if i%7 == 0 {
			advance(RekeyAfterTime, ctx, crx)
		}
	}
	for _, p := range all {
		if got, err := rx.Open(bytes.Clone(p)); !errors.Is(err, ErrReplay) {
			t.Fatalf("replay of counter %d: %q, %v", counter(p), got, err)
		}
	}
	// After an outage of several epochs, a lost packet of the epoch
	// just before the new one opens once (reordered), then is a replay.
	var lost [][]byte
	for i := range 6 {
		advance(RekeyAfterTime, ctx, crx)
		lost = append(lost, seal(t, tx, 100+i))
	}
	advance(RekeyAfterTime, ctx, crx)
	mustOpen(t, rx, seal(t, tx, 200), 200)
	mustOpen(t, rx, lost[5], 105)
	for _, p := range lost {
		if got, err := rx.Open(bytes.Clone(p)); !errors.Is(err, ErrReplay) {
			t.Fatalf("lost packet %d after recovery: %q, %v", counter(p), got, err)
		}
	}
	if rs := rx.Stats(); rs.Opened != 42 || rs.Auth != 0 || rs.Ahead != 0 {
		t.Fatalf("%v", rs)
	}
}

// Forged packets claiming later epochs fail, cost each derivation once,
// and leave the session as it was.
func TestTimeRekeyForgedAhead(t *testing.T) {
	tx, rx, _, _ := timedPair(t, 0)
	mustOpen(t, rx, seal(t, tx, 0), 0)
	key := rx.Opener.key
	forged := make([]byte, Overhead+10)
	forged[0] = KindData
	for round := range 3 {
		for k := uint64(1); k <= MaxEpochSkip+3; k++ {
			binary.BigEndian.PutUint64(forged[1:], k*RekeyAfter+uint64(round))
			if _, err := rx.Open(bytes.Clone(forged)); err == nil {
				t.Fatal("forgery opened")
			}
		}
	}
	rs := rx.Stats()
	if rs.Auth != 3*(MaxEpochSkip+3) || rs.Ahead != 3*3 || rs.Rekeys != 0 || rx.Opener.epoch != 0 || rx.Opener.key != key {
		t.Fatalf("after forgeries: %v, epoch %d", rs, rx.Opener.epoch)
	}
	if rx.nAhead != MaxEpochSkip {
		t.Fatalf("look-ahead holds %d keys, want %d", rx.nAhead, MaxEpochSkip)
	}
	mustOpen(t, rx, seal(t, tx, 1), 1)
}

// FuzzOpenEpochs drives a sender and a receiver through time steps,
// losses, reordering, replays and tampered counters. Whatever happens:
// nothing opens twice, what opens is what was sealed, and the newest
// packet opens exactly when the sender is at most MaxEpochSkip epochs
// ahead.
func FuzzOpenEpochs(f *testing.F) {
	f.Add([]byte{0, 0, 3, 130, 0, 1, 1, 3, 12, 2, 0, 0})
	f.Add([]byte{4, 70, 0, 0, 4, 3, 1, 2, 1, 0})
	f.Add([]byte{1, 1, 1, 4, 2, 2, 0, 2, 1, 5, 0, 9, 0, 0})
	f.Add([]byte{4, 64, 0, 4, 1, 0, 2, 0})
	f.Fuzz(fuzzBody)
}

func fuzzBody(t *testing.T, ops []byte) {
	tx, rx, ctx, crx := timedPair(t, 5)
	var held [][]byte
	ids := map[uint64]int{} // counter -> message id
	seen := map[int]bool{}
	n := 0
	next := func(i *int) byte {
		if *i >= len(ops) {
			return 0
		}
		*i++
		return ops[*i-1]
	}
	check := func(p []byte) {
		got, err := rx.Open(bytes.Clone(p))
		if err != nil {
			return
		}
		id, ok := ids[counter(p)]
		if !ok || !bytes.Equal(got, msg(id)) || seen[id] {
			t.Fatalf("opened %q for counter %d (id %d known %v, seen %v)", got, counter(p), id, ok, seen[id])
		}
		seen[id] = true
	}
	for i := 0; i < len(ops) && n < 600; {
		switch next(&i) % 6 {
		case 0: // seal and deliver now
			p := seal(t, tx, n)
			ids[counter(p)] = n
			gap := counter(p)/5 - rx.Opener.epoch
			got, err := rx.Open(bytes.Clone(p))
			if gap <= MaxEpochSkip && (err != nil || !bytes.Equal(got, msg(n))) {
				t.Fatalf("newest packet %d, %d epochs ahead: %v", n, gap, err)
			}
			if gap > MaxEpochSkip && !errors.Is(err, ErrAhead) {
				t.Fatalf("packet %d epochs ahead: %v", gap, err)
			}
			if err == nil {
				seen[n] = true
			}
			held = append(held, p)
			n++
		case 1: // seal and hold (reordered or lost)
			p := seal(t, tx, n)
			ids[counter(p)] = n
			held = append(held, p)
			n++
		case 2: // deliver (or replay) a held one
			if len(held) > 0 {
				check(held[int(next(&i))%len(held)])
			}
		case 3: // time passes
			advance(time.Duration(next(&i))*time.Second, ctx, crx)
		case 4: // an outage: the sender steps k epochs, all lost
			for range int(next(&i)) % 70 {
				advance(RekeyAfterTime, ctx, crx)
				p := seal(t, tx, n)
				ids[counter(p)] = n
				n++
			}
		case 5: // a held packet with a tampered counter
			if len(held) > 0 {
				p := bytes.Clone(held[int(next(&i))%len(held)])
				c := counter(p) + uint64(next(&i))*5 + uint64(next(&i))
				if c == counter(p) {
					c++
				}
				binary.BigEndian.PutUint64(p[1:], c)
				if got, err := rx.Open(p); err == nil {
					t.Fatalf("tampered counter opened: %q", got)
				}
			}
		}
	}
}

// BenchmarkOpenForgedAhead is the receiver's cost of a forged packet
// claiming a later epoch (all MaxEpochSkip in turn), after the
// look-ahead is filled.
func BenchmarkOpenForgedAhead(b *testing.B) {
	_, rx, _, _ := timedPair(b, 0)
	forged := make([]byte, Overhead+1400)
	forged[0] = KindData
	b.ReportAllocs()
	k := uint64(0)
	for b.Loop() {
		k = k%MaxEpochSkip + 1
		binary.BigEndian.PutUint64(forged[1:], k*RekeyAfter)
		rx.Open(forged)
	}
}

// BenchmarkRatchet is one epoch step.
func BenchmarkRatchet(b *testing.B) {
	var k [KeyLen]byte
	b.ReportAllocs()
	for b.Loop() {
		ratchet(&k, &k)
	}
}

// Both directions of a session through an outage of ten hours: each
// sender stops stepping after MaxUnheardSteps epochs without hearing
// the other, so both recover when the link returns.
func TestTimeRekeyLongOutageBothWays(t *testing.T) {
	a, b, ca, cb := timedPair(t, 0)
	n := 0
	exchange := func() {
		t.Helper()
		mustOpen(t, b, seal(t, a, n), n)
		mustOpen(t, a, seal(t, b, n+1), n+1)
		n += 2
	}
	exchange()
	advance(RekeyAfterTime, ca, cb)
	exchange()
	// Ten hours of keepalives every 10 s each way, all lost.
	for range 3600 {
		advance(10*time.Second, ca, cb)
		seal(t, a, -1)
		seal(t, b, -1)
	}
	for _, s := range []*Session{a, b} {
		// The last step before the outage counts: it too was taken
		// without hearing the peer after it.
		if e := s.Sealer.epoch; e < MaxUnheardSteps || e > 1+MaxUnheardSteps {
			t.Fatalf("after the outage the sender is in epoch %d, want %d or %d", e, MaxUnheardSteps, 1+MaxUnheardSteps)
		}
	}
	exchange()
	// Heard again: the senders step on time as before.
	advance(RekeyAfterTime, ca, cb)
	exchange()
	if a.Sealer.epoch != 2+MaxUnheardSteps || b.Opener.epoch != a.Sealer.epoch || a.Opener.epoch != b.Sealer.epoch {
		t.Fatalf("epochs after recovery: a sends %d, b opens %d; b sends %d, a opens %d", a.Sealer.epoch, b.Opener.epoch, b.Sealer.epoch, a.Opener.epoch)
	}
	if as, bs := a.Stats(), b.Stats(); as.Dropped() != 0 || bs.Dropped() != 0 || as.Opened != 4 || bs.Opened != 4 {
		t.Fatalf("a %v; b %v", as, bs)
	}
}

// countingClock counts the reads of a virtual clock.
type countingClock struct {
	*clock.Fake
	reads int
}

func (c *countingClock) Now() time.Time {
	c.reads++
	return c.Fake.Now()
}

// TestSealOpenReadNoClock: sealing and opening read no clock per packet
// (a key's age and the previous key's grace are timers), steady or in
// the grace after a rollover; the time step still happens, and Close
// leaves no timer armed.
func TestSealOpenReadNoClock(t *testing.T) {
	k1, k2 := make([]byte, KeyLen), make([]byte, KeyLen)
	rand.Read(k1)
	rand.Read(k2)
	ca, cb := &countingClock{Fake: clock.NewFake(t0)}, &countingClock{Fake: clock.NewFake(t0)}
	a, b := NewSessionClock(k1, k2, 0, ca), NewSessionClock(k2, k1, 0, cb)
	n := 0
	pingPong := func(count int) {
		for range count {
			mustOpen(t, b, seal(t, a, n), n)
			mustOpen(t, a, seal(t, b, n), n)
			n++
		}
	}
	ca.reads, cb.reads = 0, 0
	pingPong(1000)
	if ca.reads != 0 || cb.reads != 0 {
		t.Fatalf("1000 round trips read the clocks %d and %d times", ca.reads, cb.reads)
	}
	// A rollover on time: a few reads at the step, none per packet in
	// the previous key's grace.
	advance(RekeyAfterTime, ca.Fake, cb.Fake)
	pingPong(1)
	if st := a.Stats(); st.Rekeys != 2 {
		t.Fatalf("no time step: %v", st)
	}
	ca.reads, cb.reads = 0, 0
	pingPong(1000)
	if ca.reads != 0 || cb.reads != 0 {
		t.Fatalf("1000 round trips in the grace read the clocks %d and %d times", ca.reads, cb.reads)
	}
	a.Close()
	b.Close()
	if pa, pb := ca.Pending(), cb.Pending(); pa != 0 || pb != 0 {
		t.Fatalf("%d and %d timers armed after Close", pa, pb)
	}
	a.SetClock(ca)
	if ca.Pending() != 0 {
		t.Fatal("SetClock after Close armed a timer")
	}
	pingPong(10) // a closed session still seals and opens
}
