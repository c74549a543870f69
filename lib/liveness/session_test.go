package liveness

import (
	"math/rand"
	"testing"
	"time"
)

var scfg = Config{Fast: 10 * time.Millisecond, Idle: 250 * time.Millisecond, Mult: 3}

// sim drives a Session in virtual time the way its owner does: it
// ticks when Next says, and between ticks the neighbour's packets
// arrive. The neighbour sends idle hellos every scfg.Idle, traffic as
// peerTraffic says, and answers polls after rtt, while it is alive.
type sim struct {
	t                   *testing.T
	s                   *Session
	now                 time.Time
	next                time.Time
	rtt                 time.Duration
	alive               func(now time.Time) bool // the neighbour runs and the link carries
	sending             func(now time.Time) bool // this side sends the neighbour traffic
	peerTraffic         func(now time.Time) bool // the neighbour sends us traffic at now
	arrivals            []time.Time
	lastPeerHello       time.Time
	hellos, polls, susp int
	ticks               int
	firstSuspect        time.Time
	stalledUntil        time.Time     // this side does not run until then
	lag                 time.Duration // every tick comes this late (a loaded host)
	sentSinceTick       bool
}

func newSim(t *testing.T) *sim {
	m := &sim{t: t, now: start, rtt: 200 * time.Microsecond,
		alive:       func(time.Time) bool { return true },
		sending:     func(time.Time) bool { return false },
		peerTraffic: func(time.Time) bool { return false }}
	m.s = NewSession(scfg, start)
	m.s.SetPeerIdle(scfg.Idle)
	m.next = start
	m.lastPeerHello = start
	return m
}

// run advances virtual time by d in steps of 100 us.
func (m *sim) run(d time.Duration) {
	end := m.now.Add(d)
	step := 100 * time.Microsecond
	for m.now.Before(end) {
		m.now = m.now.Add(step)
		alive := m.alive(m.now)
		// The neighbour.
		if alive && m.now.Sub(m.lastPeerHello) >= scfg.Idle {
			m.lastPeerHello = m.now
			m.arrivals = append(m.arrivals, m.now)
		}
		if alive && m.peerTraffic(m.now) {
			m.arrivals = append(m.arrivals, m.now)
		}
		if m.sending(m.now) {
			m.sentSinceTick = true
		}
		if m.now.Before(m.stalledUntil) {
			continue // this host is stopped: it reads and ticks nothing
		}
		// This side's reader stamps the latest arrival so far.
		var heard time.Time
		keep := m.arrivals[:0]
		for _, a := range m.arrivals {
			if a.After(m.now) {
				keep = append(keep, a)
			} else if a.After(heard) {
				heard = a
			}
		}
		m.arrivals = keep
		if !m.now.Before(m.next.Add(m.lag)) {
			var late time.Duration
			if d := m.now.Sub(m.next); d > scfg.Fast {
				late = d
			}
			m.ticks++
			act := m.s.Tick(m.now, heard, m.sentSinceTick, late)
			m.sentSinceTick = false
			if act.Hello {
				m.hellos++
			}
			if act.Poll {
				m.polls++
				if m.alive(m.now) && m.alive(m.now.Add(m.rtt)) {
					m.arrivals = append(m.arrivals, m.now.Add(m.rtt))
				}
			}
			if act.Suspect {
				if testing.Verbose() && m.susp < 3 {
					m.t.Logf("suspect at %v: silence %v bound %v active %v", m.now.Sub(start), m.s.Silence(m.now), m.s.Bound(), m.s.Active())
				}
				if m.susp == 0 {
					m.firstSuspect = m.now
				}
				m.susp++
			}
			m.next = m.now.Add(m.s.Next(m.now))
		} else if !heard.IsZero() {
			m.s.Heard(heard)
		}
	}
}

func every(d time.Duration) func(time.Time) bool {
	return func(now time.Time) bool { return now.Sub(start)%d == 0 }
}

func until(t time.Time) func(time.Time) bool {
	return func(now time.Time) bool { return now.Before(t) }
}

// TestSessionIdleLink: a link that carries nothing costs one hello per
// idle interval, and a steady neighbour is never suspected.
func TestSessionIdleLink(t *testing.T) {
	m := newSim(t)
	m.run(10 * time.Second)
	if m.susp != 0 {
		t.Fatalf("idle neighbour suspected %d times", m.susp)
	}
	if want := int(10 * time.Second / scfg.Idle); m.hellos < want-1 || m.hellos > want+1 || m.polls != 0 {
		t.Fatalf("%d hellos (%d polls) in 10 s of idle, want %d and no poll", m.hellos, m.polls, want)
	}
	// The owner sleeps between hellos: about one tick per hello, plus
	// the checks of the neighbour's bound.
	if max := 3 * int(10*time.Second/scfg.Idle); m.ticks > max {
		t.Fatalf("%d ticks in 10 s of idle, want at most %d", m.ticks, max)
	}
}

// TestSessionSteadyLink: a link with traffic both ways every
// millisecond needs no hello at all, and a silent cut is found about
// one hello interval (Fast) after the last arrival, after Mult polls.
func TestSessionSteadyLink(t *testing.T) {
	m := newSim(t)
	m.sending = every(time.Millisecond)
	m.peerTraffic = every(time.Millisecond)
	m.run(2 * time.Second)
	if m.susp != 0 || m.polls != 0 {
		t.Fatalf("steady link: suspected %d times, %d polls", m.susp, m.polls)
	}
	hellos := m.hellos
	cut := m.now
	m.alive = until(cut)
	m.run(100 * time.Millisecond)
	if m.susp == 0 {
		t.Fatal("cut not found")
	}
	if got := m.firstSuspect.Sub(cut); got <= scfg.Fast || got > scfg.Fast+2*time.Millisecond {
		t.Fatalf("cut found after %v, want just after %v", got, scfg.Fast)
	}
	if p := m.polls; p < scfg.Mult-1 || m.hellos-hellos > 100 {
		t.Fatalf("%d polls before the cut was found, want about %d", p, scfg.Mult)
	}
}

// TestSessionOneWay: we send, the neighbour only answers polls: the
// answers keep it alive, and a cut is still found about Fast after the
// last answer.
func TestSessionOneWay(t *testing.T) {
	m := newSim(t)
	m.sending = every(time.Millisecond)
	m.run(2 * time.Second)
	if m.susp != 0 || m.polls == 0 {
		t.Fatalf("one-way link: suspected %d times, %d polls", m.susp, m.polls)
	}
	cut := m.now
	m.alive = until(cut)
	m.run(200 * time.Millisecond)
	if got := m.firstSuspect.Sub(cut); m.susp == 0 || got > scfg.Fast+4*time.Millisecond {
		t.Fatalf("cut found after %v (suspected %d), want about %v", got, m.susp, scfg.Fast)
	}
}

// TestSessionJitteryLink: a loaded neighbour runs only now and then
// (every 1 to 8 ms, one time in ten after 18 ms); each time it runs it
// sends its traffic and answers our polls. After a warm-up it is not
// suspected although some of its silences exceed Fast, and a cut is
// still found within the detector's ceiling.
func TestSessionJitteryLink(t *testing.T) {
	m := newSim(t)
	rng := rand.New(rand.NewSource(1))
	var nextRun time.Time
	big := 0
	m.sending = every(time.Millisecond)
	m.peerTraffic = func(now time.Time) bool {
		if now.Before(nextRun) {
			return false
		}
		g := time.Duration(1+rng.Intn(8)) * time.Millisecond
		if rng.Intn(10) == 0 {
			g = 18 * time.Millisecond
			if now.Sub(start) > time.Second {
				big++
			}
		}
		nextRun = now.Add(g)
		return true
	}
	m.rtt = time.Hour  // polls are answered when the neighbour runs
	m.run(time.Second) // warm-up
	m.susp = 0
	m.run(5 * time.Second)
	if m.susp != 0 {
		t.Fatalf("jittery link suspected %d times after warm-up", m.susp)
	}
	if big == 0 {
		t.Fatal("no silence above Fast: the test proves nothing")
	}
	cut := m.now
	m.alive = until(cut)
	m.run(time.Second)
	d := m.s.Detector()
	if got := m.firstSuspect.Sub(cut); m.susp == 0 || got > d.Ceiling+2*time.Millisecond {
		t.Fatalf("cut found after %v (suspected %d), want within the ceiling %v", got, m.susp, d.Ceiling)
	}
}

// TestSessionStarvedHost: this host stops for 200 ms in the middle of
// traffic: its late tick asks for a (starved) hello at once and does
// not suspect the neighbour, whose packets queued meanwhile.
func TestSessionStarvedHost(t *testing.T) {
	m := newSim(t)
	m.sending = every(time.Millisecond)
	m.peerTraffic = every(time.Millisecond)
	m.run(time.Second)
	hellos := m.hellos
	m.stalledUntil = m.now.Add(200 * time.Millisecond)
	m.run(200*time.Millisecond + 100*time.Microsecond)
	if m.hellos != hellos+1 {
		t.Fatalf("%d hellos right after the stall, want one (flagged starved by the owner)", m.hellos-hellos)
	}
	m.run(time.Second)
	if m.susp != 0 {
		t.Fatalf("neighbour suspected %d times for this host's stall", m.susp)
	}
	if b := m.s.Detector().Bound(); b != scfg.Fast {
		t.Fatalf("bound %v after the stall, want the floor %v: the stall was learned", b, scfg.Fast)
	}
}

// TestSessionPeerStall: the neighbour stops for 40 ms under traffic:
// it is suspected (the owner only steers around it locally), and heard
// again as soon as it runs.
func TestSessionPeerStall(t *testing.T) {
	m := newSim(t)
	m.sending = every(time.Millisecond)
	m.peerTraffic = every(time.Millisecond)
	m.run(time.Second)
	from := m.now
	m.alive = func(now time.Time) bool { return now.Before(from) || !now.Before(from.Add(40*time.Millisecond)) }
	m.run(40 * time.Millisecond)
	if m.susp == 0 {
		t.Fatal("a 40 ms silence under traffic not suspected")
	}
	m.susp = 0
	m.run(2 * time.Millisecond)
	m.susp = 0
	m.run(time.Second)
	if m.susp != 0 {
		t.Fatalf("suspected %d times after the neighbour ran again", m.susp)
	}
}

// TestSessionRealCut: a cut of an idle link is found within the
// neighbour's announced interval × Mult (+ Fast); a link that turns
// active after a long silence is given Fast from then, not suspected
// at once for the idle silence.
func TestSessionRealCut(t *testing.T) {
	m := newSim(t)
	m.run(time.Second)
	cut := m.now
	m.alive = until(cut)
	m.run(2 * time.Second)
	bound := scfg.Idle*time.Duration(scfg.Mult) + scfg.Fast
	if got := m.firstSuspect.Sub(cut); m.susp == 0 || got > bound+2*time.Millisecond || got < bound-scfg.Idle {
		t.Fatalf("idle cut found after %v (suspected %d), want about %v", got, m.susp, bound)
	}

	m = newSim(t)
	m.run(time.Second)
	cut = m.now
	m.alive = until(cut.Add(-100 * time.Millisecond)) // dead for 100 ms, unnoticed while idle
	m.sending = func(now time.Time) bool { return !now.Before(cut) }
	m.run(400 * time.Millisecond)
	// The owner notices the traffic at its next tick, at most Idle later.
	if got := m.firstSuspect.Sub(cut); m.susp == 0 || got > scfg.Idle+scfg.Fast+2*time.Millisecond {
		t.Fatalf("cut of a link that turned active found after %v (suspected %d), want within %v", got, m.susp, scfg.Idle+scfg.Fast)
	}
}

// TestSessionPeerInterval: the neighbour's announced interval sets the
// idle bound, within [Fast, 8 × Idle].
func TestSessionPeerInterval(t *testing.T) {
	s := NewSession(scfg, start)
	for _, tc := range []struct{ in, want time.Duration }{
		{time.Second, 3*time.Second + scfg.Fast},
		{time.Hour, 8*scfg.Idle*3 + scfg.Fast},
		{0, scfg.Fast*3 + scfg.Fast},
	} {
		s.SetPeerIdle(tc.in)
		if got := s.Bound(); got != tc.want {
			t.Errorf("peer interval %v: bound %v, want %v", tc.in, got, tc.want)
		}
	}
}

// TestSessionLoadedHostFindsCut: this host is so loaded that every tick
// comes 15 ms late. Each late tick forgives only its own lateness, so a
// neighbour that is gone is still found, on an idle link and on an
// active one.
func TestSessionLoadedHostFindsCut(t *testing.T) {
	for _, active := range []bool{false, true} {
		m := newSim(t)
		m.lag = 15 * time.Millisecond
		if active {
			m.sending = every(time.Millisecond)
			m.peerTraffic = every(time.Millisecond)
		}
		m.run(2 * time.Second)
		m.susp = 0
		cut := m.now
		m.alive = until(cut)
		m.run(3 * time.Second)
		bound := scfg.Idle*time.Duration(scfg.Mult) + scfg.Fast
		if active {
			bound = 200 * time.Millisecond
		}
		if got := m.firstSuspect.Sub(cut); m.susp == 0 || got > 2*bound {
			t.Fatalf("active %v: cut found after %v (suspected %d), want within %v", active, got, m.susp, 2*bound)
		}
	}
}

// TestSessionTurnsActive: a live neighbour on an idle link (last heard
// up to an idle interval ago) is not suspected when this side starts
// sending: fast detection counts from then, and the polls are answered.
func TestSessionTurnsActive(t *testing.T) {
	for _, startAt := range []time.Duration{1100 * time.Millisecond, 1240 * time.Millisecond} {
		m := newSim(t)
		m.lastPeerHello = start.Add(-125 * time.Millisecond) // out of phase with ours
		from := start.Add(startAt)
		m.sending = func(now time.Time) bool { return !now.Before(from) && now.Sub(start)%time.Millisecond == 0 }
		m.run(2 * time.Second)
		if m.susp != 0 || m.polls == 0 {
			t.Fatalf("turning active at %v: suspected %d times, %d polls", startAt, m.susp, m.polls)
		}
	}
}

// unicastCfg is the Session configuration ipcpd/unicast runs with its
// defaults (hello 10 ms x 3): active floor 15 ms, polls every 3.3 ms.
var unicastCfg = Config{Fast: 15 * time.Millisecond, Idle: 250 * time.Millisecond, Mult: 3, Poll: 10 * time.Millisecond / 3}

// steadySession returns a Session on an active link after 2 s of traffic both
// ways every millisecond, ticked every millisecond, and the time of
// the last tick (the last arrival).
func steadySession(t *testing.T) (*Session, time.Time) {
	s := NewSession(unicastCfg, start)
	s.SetPeerIdle(unicastCfg.Idle)
	now := start
	for range 2000 {
		now = now.Add(time.Millisecond)
		if s.Tick(now, now, true, 0).Suspect {
			t.Fatalf("steady link suspected at %v", now.Sub(start))
		}
	}
	if b := s.Bound(); b != unicastCfg.Fast {
		t.Fatalf("steady link: bound %v, want the floor %v", b, unicastCfg.Fast)
	}
	return s, now
}

// TestSessionLateTickPoll is the grid's cause of false downs under a
// ping stream (bench -grid 49): the stream pauses (no traffic either
// way) just as this host's tick comes 11 ms late, less than a stall
// (the owner passes stalled only beyond Fast), so the first poll goes
// out 12 ms into the silence; the neighbour answers it 5 ms later.
// Judged by the silence alone it was suspected at 15 ms, before its
// answer could arrive; judged from when it was asked, it is not. A
// neighbour that does not answer is still found, late by only as much
// as this host was.
func TestSessionLateTickPoll(t *testing.T) {
	for _, answers := range []bool{true, false} {
		s, last := steadySession(t)
		poll := unicastCfg.Poll
		now := last.Add(12 * time.Millisecond) // the late tick
		var asked, found time.Time
		var answered []time.Time // the neighbour answers every poll 5 ms later
		for now.Before(last.Add(100 * time.Millisecond)) {
			var heard time.Time
			for len(answered) > 0 && !now.Before(answered[0]) {
				heard, answered = answered[0], answered[1:]
			}
			a := s.Tick(now, heard, false, 0)
			if a.Poll {
				if asked.IsZero() {
					asked = now
				}
				if answers {
					answered = append(answered, now.Add(5*time.Millisecond))
				}
			}
			if a.Suspect {
				found = now
				break
			}
			now = now.Add(s.Next(now)) // on time from here on
		}
		if asked.IsZero() {
			t.Fatalf("answers %v: no poll after the pause", answers)
		}
		switch {
		case answers && !found.IsZero():
			t.Fatalf("a neighbour asked %v into the silence and answering 5 ms later was suspected at %v (bound %v)",
				asked.Sub(last), found.Sub(last), s.Bound())
		case !answers && found.IsZero():
			t.Fatal("a neighbour that never answered was not suspected in 100 ms")
		case !answers && found.Sub(asked) > unicastCfg.Fast-poll+2*time.Millisecond:
			t.Fatalf("a silent neighbour asked at %v was suspected only at %v, want within %v of the poll",
				asked.Sub(last), found.Sub(last), unicastCfg.Fast-poll)
		}
	}
}

// TestSessionOwnSlowness: this host ran 12 ms late 200 ms ago (short of
// a stall) and is still loaded, so the answers to its polls wait 14 ms
// on its own side before it reads them. With its own slowness as slack
// (as ipcpd/unicast sets it), the neighbour is not suspected; one that
// does not answer is still found within the bound plus that slack.
func TestSessionOwnSlowness(t *testing.T) {
	for _, answers := range []bool{true, false} {
		s, last := steadySession(t)
		var slow Slowness
		slow.Late(12*time.Millisecond, last.Add(-200*time.Millisecond))
		if got := slow.At(last); got < 10*time.Millisecond || got > 12*time.Millisecond {
			t.Fatalf("12 ms late 200 ms ago: slowness %v", got)
		}
		now := last
		var answered []time.Time
		var found time.Time
		for now.Before(last.Add(200 * time.Millisecond)) {
			now = now.Add(s.Next(now))
			var heard time.Time
			for len(answered) > 0 && !now.Before(answered[0]) {
				heard, answered = answered[0], answered[1:]
			}
			slow.Late(0, now)
			s.SetSlack(slow.At(now))
			a := s.Tick(now, heard, false, 0)
			if a.Poll && answers {
				answered = append(answered, now.Add(14*time.Millisecond))
			}
			if a.Suspect {
				found = now
				break
			}
		}
		switch {
		case answers && !found.IsZero():
			t.Fatalf("a neighbour whose answers waited 14 ms on a slow host was suspected at %v (bound %v)", found.Sub(last), s.Bound())
		case !answers && (found.IsZero() || found.Sub(last) > unicastCfg.Fast+12*time.Millisecond+2*time.Millisecond):
			t.Fatalf("a silent neighbour was found at %v, want within %v", found.Sub(last), unicastCfg.Fast+12*time.Millisecond)
		}
	}
	// A long stall (forgiven by Tick) gives no more than Fast of slack.
	s, _ := steadySession(t)
	s.SetSlack(time.Second)
	if b := s.Bound(); b != 2*unicastCfg.Fast {
		t.Errorf("slack of a second: bound %v, want %v", b, 2*unicastCfg.Fast)
	}
	var w Slowness
	w.Late(40*time.Millisecond, start)
	if got := w.At(start.Add(SlownessHalfLife)); got != 20*time.Millisecond {
		t.Errorf("after one half-life: %v, want 20ms", got)
	}
}
