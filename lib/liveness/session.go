package liveness

import (
	"math"
	"time"
)

// Session is the keepalive of one adjacency in demand mode (after BFD's
// demand mode and poll sequence, RFC 5880 section 6.6): it decides, at
// each tick of its owner, whether to send a hello, whether that hello
// is a poll (the neighbour answers it at once), and whether the
// neighbour is suspected.
//
// An adjacency is active while this side has sent it traffic within
// Config.Fast × Config.Mult (what counts as traffic is the owner's
// choice: ipcpd/unicast counts data, not management); otherwise it is
// idle.
//
//   - Idle: traffic neither way costs nothing but a hello every
//     Config.Idle (each hello carries the sender's interval, so the
//     receiver knows what to expect: SetPeerIdle), and the neighbour is
//     suspected after a silence of its interval × Mult (+ Fast of slack).
//     Idle links are cheap, and slow to declare dead, which costs
//     nothing while they carry nothing.
//   - Active: this side forwards through the neighbour, so it must know
//     fast. Every arrival proves the neighbour alive; after a silence of
//     one poll interval (Config.Poll, default Fast/Mult) it polls (a
//     hello the neighbour answers at once), again every poll interval,
//     and it suspects the neighbour once the silence exceeds the learned
//     Detector's bound (floor Fast, see Detector) and the first poll of
//     the silence has gone unanswered for that bound less one poll
//     interval (the same moment when this host ticks on time; later by
//     as much as a late tick sent the poll late: the neighbour is
//     judged from when it was asked).
//     Only gaps seen while active are learned: idle gaps say nothing
//     about how fast the neighbour answers.
//
// A tick that comes late (this host was not running) discounts the
// time it was late from the silence (Detector.Forgive: a neighbour
// silent for longer than that is still found) and asks for a hello at
// once: the owner flags it as "starved", so that neighbours that
// suspended this host meanwhile take it back.
//
// A Session holds no clock: every call takes the time, so it runs in
// virtual time in tests. It is not safe for concurrent use.
type Session struct {
	cfg       Config
	det       *Detector
	peerIdle  time.Duration
	heard     time.Time // the last arrival
	idleRef   time.Time // heard, or the end of our own last stall
	lastTx    time.Time // we last sent traffic (hellos do not count)
	lastHello time.Time // we last asked for a hello
	downSince time.Time // the owner took the adjacency out (zero: up)
	activeAt  time.Time // the session last turned active
	polls     int       // polls sent since the neighbour was last heard
	firstPoll time.Time // the first of them (zero: none)
	slack     time.Duration
	active    bool
}

// Config sets a Session's intervals.
type Config struct {
	// Fast is the detection floor on an active adjacency (the layer's
	// hello interval).
	Fast time.Duration
	// Idle is this side's hello interval on an idle adjacency, sent in
	// every hello.
	Idle time.Duration
	// Mult is the number of missed idle hellos that make the neighbour
	// suspect.
	Mult int
	// Poll is the poll interval on an active adjacency (0: Fast/Mult).
	Poll time.Duration
}

// Action is what a Tick asks of its owner.
type Action struct {
	// Hello: send a hello now.
	Hello bool
	// Poll: the hello asks the neighbour for an immediate answer.
	Poll bool
	// Suspect: the neighbour has been silent beyond the bound.
	Suspect bool
}

// NewSession starts a session whose neighbour counts as heard at now.
func NewSession(cfg Config, now time.Time) *Session {
	cfg.Mult = max(cfg.Mult, 1)
	cfg.Idle = max(cfg.Idle, cfg.Fast)
	return &Session{cfg: cfg, det: New(cfg.Fast, now), heard: now, idleRef: now, lastHello: now}
}

// SetPeerIdle records the idle hello interval the neighbour announced,
// kept within [Fast, 8 × Idle] so a neighbour cannot make itself
// undetectable.
func (s *Session) SetPeerIdle(d time.Duration) {
	s.peerIdle = min(max(d, s.cfg.Fast), 8*s.cfg.Idle)
}

// Heard records an arrival at t (any packet from the neighbour).
func (s *Session) Heard(t time.Time) {
	if !t.After(s.heard) {
		return
	}
	s.heard = t
	s.polls, s.firstPoll = 0, time.Time{}
	if s.active {
		s.det.Heard(t)
	} else {
		s.det.Pause(t)
	}
}

// Active reports whether this side sent traffic recently.
func (s *Session) Active() bool { return s.active }

// Detector returns the active-mode detector (for its bound and last
// arrival).
func (s *Session) Detector() *Detector { return s.det }

// Silence returns how long the neighbour has been silent at now, as the
// current mode counts it.
func (s *Session) Silence(now time.Time) time.Duration {
	if s.active {
		return now.Sub(s.det.Last())
	}
	return now.Sub(later(s.heard, s.idleRef))
}

// Bound returns the silence after which the neighbour is suspected in
// the current mode.
func (s *Session) Bound() time.Duration {
	if s.active {
		b := s.det.Bound()
		return min(b+s.slack, max(b, s.det.Ceiling))
	}
	return s.idleBound() + s.slack
}

// SetSlack adds d, at most Fast, to the bound (on an active adjacency
// never beyond the Detector's ceiling): the owner's own recent
// slowness (Slowness),
// which delays the neighbour's packets on this side as much as on the
// wire. Stalls beyond Fast are forgiven by Tick; this is for the
// lateness short of that, and for the time after a stall while the
// host stays loaded.
func (s *Session) SetSlack(d time.Duration) { s.slack = min(max(d, 0), s.cfg.Fast) }

func (s *Session) idleBound() time.Duration {
	return s.peerInterval()*time.Duration(s.cfg.Mult) + s.cfg.Fast
}

// peerInterval is the neighbour's idle hello interval (ours until it
// says).
func (s *Session) peerInterval() time.Duration {
	if s.peerIdle == 0 {
		return s.cfg.Idle
	}
	return s.peerIdle
}

// SetDown tells the session whether its owner has taken the adjacency
// out of service (down is the time it did, zero once it is back): while
// it is out, polls go out from every Fast, slowing down to every Idle,
// so that a neighbour that comes back is found soon, and one that is
// gone for long costs little.
func (s *Session) SetDown(down time.Time) { s.downSince = down }

// Tick is one round at now; heard is the neighbour's latest arrival
// (as Heard; zero if none), sent says whether this side sent the
// neighbour traffic (not hellos) since the last tick, stalled how late
// this tick came because this host was not running (0: on time). The
// stall is discounted before the arrival is learned: packets that
// waited unread while this host stalled do not teach the detector a
// long gap.
func (s *Session) Tick(now, heard time.Time, sent bool, stalled time.Duration) Action {
	if stalled > 0 {
		s.det.Forgive(stalled, now)
		s.idleRef = later(s.heard, s.idleRef).Add(stalled)
		if s.idleRef.After(now) {
			s.idleRef = now
		}
	}
	if !heard.IsZero() {
		s.Heard(heard)
	}
	if sent {
		s.lastTx = now
	}
	was := s.active
	s.active = !s.lastTx.IsZero() && now.Sub(s.lastTx) < s.cfg.Fast*time.Duration(s.cfg.Mult)
	if s.active && !was {
		// Fast detection starts now: an earlier silence was idle.
		s.det.Pause(now)
		s.activeAt = now
	}
	var a Action
	a.Suspect = s.Silence(now) > s.Bound() && s.answerWindowPassed(now)
	poll := s.pollEvery()
	switch {
	case stalled > 0:
		// A hello at once (the owner flags it starved); on an active
		// or suspended adjacency it is a poll, the proof we now need.
		a.Hello = true
		a.Poll = s.active || !s.downSince.IsZero()
	case !s.downSince.IsZero():
		// A poll: a neighbour that hears it answers at once, which
		// brings the adjacency back without waiting for its hello.
		a.Hello = now.Sub(s.lastHello) >= s.downEvery(now)
		a.Poll = a.Hello
	case s.active:
		a.Hello = now.Sub(s.det.Last()) >= poll && now.Sub(s.lastHello) >= poll
		a.Poll = a.Hello
	default:
		a.Hello = now.Sub(s.lastHello) >= s.cfg.Idle && now.Sub(s.lastTx) >= s.cfg.Idle
	}
	if a.Hello {
		s.lastHello = now
		if a.Poll {
			if s.polls == 0 && s.downSince.IsZero() {
				s.firstPoll = now
			}
			s.polls++
		}
	}
	return a
}

// answerWindowPassed says whether an active neighbour was given its
// chance to answer: the first poll since it was last heard went out at
// least Bound - PollEvery ago. On time, that poll leaves one poll
// interval into the silence, so this changes nothing; when this host's
// ticks come late (by less than a stall: Forgive is for those), the
// poll left late, and the neighbour is judged from when it was asked,
// not from a silence that was partly ours.
func (s *Session) answerWindowPassed(now time.Time) bool {
	if !s.active {
		return true
	}
	return !s.firstPoll.IsZero() && now.Sub(s.firstPoll) >= s.Bound()-s.pollEvery()
}

// PolledFor returns how long the first poll since the neighbour was
// last heard has gone unanswered at now (0: none is out).
func (s *Session) PolledFor(now time.Time) time.Duration {
	if s.firstPoll.IsZero() {
		return 0
	}
	return now.Sub(s.firstPoll)
}

// ActiveSince returns when the session last turned active (zero:
// never).
func (s *Session) ActiveSince() time.Time { return s.activeAt }

// Unanswered returns how many polls went out since the neighbour was
// last heard.
func (s *Session) Unanswered() int { return s.polls }

// downEvery is the hello interval while the adjacency is out: Fast,
// slowing to Idle after 8 × Idle.
func (s *Session) downEvery(now time.Time) time.Duration {
	return min(max(now.Sub(s.downSince)/8, s.cfg.Fast), s.cfg.Idle)
}

func (s *Session) pollEvery() time.Duration {
	if s.cfg.Poll > 0 {
		return s.cfg.Poll
	}
	return max(s.cfg.Fast/time.Duration(s.cfg.Mult), time.Millisecond)
}

// PollEvery returns the poll interval on an active adjacency.
func (s *Session) PollEvery() time.Duration { return s.pollEvery() }

// Next returns how long the owner may sleep after a Tick at now before
// this session needs the next one.
func (s *Session) Next(now time.Time) time.Duration {
	if !s.downSince.IsZero() {
		return s.downEvery(now)
	}
	if s.active {
		return max(s.pollEvery()/2, time.Millisecond)
	}
	d := s.cfg.Idle - now.Sub(s.lastHello)
	d = min(d, s.Bound()-s.Silence(now)+time.Millisecond)
	return max(d, time.Millisecond)
}

// SlownessHalfLife is how fast Slowness forgets a late tick.
const SlownessHalfLife = time.Second

// Slowness is a host's own recent lateness: the latest of its ticks,
// halving every SlownessHalfLife. Its zero value is ready.
type Slowness struct {
	peak float64
	at   time.Time
}

// Late records a tick at now that came late by d (0: on time).
func (w *Slowness) Late(d time.Duration, now time.Time) {
	w.peak = max(float64(w.At(now)), float64(d))
	w.at = now
}

// At returns the recorded lateness, decayed to now.
func (w *Slowness) At(now time.Time) time.Duration {
	if w.peak == 0 || !now.After(w.at) {
		return time.Duration(w.peak)
	}
	return time.Duration(w.peak * math.Exp2(-float64(now.Sub(w.at))/float64(SlownessHalfLife)))
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
