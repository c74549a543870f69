package unicast

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/lib/clock"
	"github.com/ouro-net/ouro/lib/liveness"
)

// Keepalive, in demand mode (lib/liveness.Session: BFD's demand mode
// and poll sequence, RFC 5880). One loop per IPCP, on one timer, serves
// every adjacency. At each tick it feeds each lower flow's last arrival
// (any packet proves the peer alive: readAdj stamps lastRx) to the
// flow's Session and does what the Session asks. With hello interval iv
// and multiplier m (defaults 10 ms and 3):
//
//   - an idle adjacency (we sent the peer nothing lately) costs one
//     keepalive every idleFactor × iv (250 ms) each way, and the peer
//     is suspected after m of its announced intervals (750 ms). Idle
//     links are cheap and slow to declare dead, which costs nothing
//     while they carry nothing. A flow that starts on an idle adjacency
//     is noticed at the next tick, at most one idle interval later;
//   - an active adjacency (we forward data through the peer; our
//     management frames do not count, see tickAdj) is watched
//     fast: the loop ticks every iv/6, polls the peer after a silence of
//     iv/activeSpeedup (the peer's reader answers a poll at once), and
//     suspects it once the silence exceeds a bound learned from the
//     peer's arrivals, never below iv × m / 2 (15 ms), or after two
//     unanswered polls while the peer is heard on another flow (link
//     evidence; an unanswered poll also polls the peer on its other
//     flows that were not heard lately, crossPoll, so an idle sibling
//     gives that evidence too): links that carry traffic find a silent
//     failure in 7-15 ms;
//   - a suspended flow polls from every interval, slowing to the idle
//     interval, and comes back when the peer is heard (see mayRevive).
//
// Why demand mode rather than faster periodic hellos: each hello costs
// 100-250 us of CPU end to end (unicast -> lower IPCP -> medium ->
// lower IPCP -> unicast), so the udp4 square spent 9-13% of a core on
// 800 hellos a second at 10 ms. Detection only matters where traffic
// flows, and there the traffic itself proves the peer alive, so polls
// are needed only in its gaps.
//
// The loop sleeps until the earliest moment any Session needs it, and
// arms no timer at all while the IPCP has no adjacency (it waits on a
// kick channel).
//
// Keepalives (kindKeepalive, lib/liveness.Hello) carry the sender's
// idle interval and two flags: Poll (answer at once) and Starved. A
// tick that comes more than one detection floor late means this process
// was not running: that much of the silence is ours, so every Session
// discounts it (a peer silent for longer is still found), and a
// keepalive flagged Starved goes out on every flow at once. A neighbour
// that suspended us meanwhile takes the suspension back at once,
// without damping.
//
// Host or link. A suspension for silence is local at first: the flow
// leaves the forwarding table at once (traffic steers around it), but
// routing is told only when the flow was the peer's last one and it is
// still down after withdrawHold (300 ms): silence cannot tell a dead
// host from a starved one, so a whole neighbour gone silent is given
// that long to come back (and says Starved when it does), and a flow
// that comes back sooner was never withdrawn: no link-state update is
// flooded about it. One silent flow of several to the same peer is a
// link problem: routing sees the peer still up over the others, so
// only the cost may change, at once; and an active flow silent through
// two polls while the peer is heard on another flow is suspended then,
// without waiting for a bound that may have learned a loaded peer's
// patience (link evidence, tickAdj). The only flow up is never taken
// out for a short silence (there is nowhere to steer to, and taking it
// out would only drop traffic and management frames): it is withdrawn
// once the silence outlives the detection bound plus withdrawHold. Hard
// evidence (carrier loss, deallocation) is never held: it is flooded at
// once. Flap damping counts suspensions per flow, and one that ends
// within withdrawHold is a blip, not a flap (revive).
//
// The keepalive itself is written by the flow's own goroutine
// (watchCarrier): a write blocks while the lower IPCP does not read,
// and the loop must never block. Each adjacency is its own lower flow,
// so there is no single socket to batch the keepalives of a tick on.

// kindKeepalive is the frame kind of a keepalive hello (the opening
// hello of an adjacency is kindHello): a frame of its own, so that a
// keepalive racing the answer to an opening hello is never read as
// that answer.
const kindKeepalive = 6

// idleFactor is the idle hello interval as a multiple of the layer's
// hello interval.
const idleFactor = 25

// liveLoop is the keepalive loop of an IPCP.
type liveLoop struct {
	once sync.Once
	kick chan struct{} // an adjacency was added or heard: wake the loop
	// stallAt and stall are this host's last own stall (a late tick)
	// and how late it was, for the log (owned by the loop).
	stallAt time.Time
	stall   time.Duration
	// slow is how late the loop's ticks came lately (owned by the loop):
	// every active bound gets that much slack.
	slow liveness.Slowness
}

// adjLive is the keepalive state of one lower flow.
type adjLive struct {
	// Owned by the loop.
	sess   *liveness.Session
	seenRx int64  // the lastRx fed to sess
	out    uint64 // dataOut at the last tick
	// dataOut counts the data packets sent on the flow (fwd.go,
	// egress.go): only data makes an adjacency active (see tickAdj).
	dataOut atomic.Uint64
	// flags go out in the next hello (set by the loop and the reader,
	// taken by watchCarrier).
	flags atomic.Uint32
	// peerIdle is the idle interval the peer announced (ns), from the
	// reader.
	peerIdle atomic.Int64
	// crossPolled is when the loop last polled the peer on this flow
	// for another flow's sake (crossPoll; ns, owned by the loop).
	crossPolled int64
	// pending: suspended for silence, routing not told yet; withdraw
	// tells it after withdrawHold. Both guarded by u.mu.
	pending  bool
	withdraw clock.Timer
}

// start runs the loop (once) and wakes it.
func (l *liveLoop) start(u *IPCP) {
	l.once.Do(func() {
		l.kick = make(chan struct{}, 1)
		u.wg.Add(1)
		go u.liveness()
	})
	l.wake()
}

// wake makes the loop run a round now.
func (l *liveLoop) wake() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// activeSpeedup is how much more often than the hello interval an
// active adjacency is polled.
const activeSpeedup = 3

// liveConfig is the Session configuration of this IPCP: an active
// adjacency is polled every interval/activeSpeedup (3.3 ms with the
// defaults, 10 ms x 3) and suspected after interval × multiplier / 2
// of silence (15 ms; two polls while the peer is heard on another flow:
// link evidence); an idle one hellos every idleFactor intervals and is
// suspected after multiplier missed hellos.
//
// Why half of interval × multiplier and not a third (10 ms, which the
// polls would allow): on this project's loaded 2-core machine (load
// 12-16) a 16-host grid under a 1 ms ping took 49-75 local false downs
// in 10 s at 10 ms; the silent cut of one of two parallel links is
// found by link evidence anyway.
func (u *IPCP) liveConfig() liveness.Config {
	iv, m := u.cfg.HelloInterval, u.cfg.HelloMultiplier
	return liveness.Config{Fast: max(iv*time.Duration(m)/2, time.Millisecond), Idle: idleFactor * iv, Mult: m,
		Poll: max(iv/activeSpeedup, time.Millisecond)}
}

// liveness is the keepalive loop.
func (u *IPCP) liveness() {
	defer u.wg.Done()
	cfg := u.liveConfig()
	t := u.clk.NewTimer(cfg.Fast)
	defer t.Stop()
	due := u.clk.Now().Add(cfg.Fast)
	var list []*adj
	heardBuf := peerArrivals{}
	for {
		select {
		case <-u.ctx.Done():
			return
		case <-t.C():
		case <-u.live.kick:
		}
		now := u.clk.Now()
		var late time.Duration // how late this tick is: we were not running
		d := now.Sub(due)
		if d > cfg.Fast {
			late = d
			u.live.stallAt, u.live.stall = now, d
		}
		u.live.slow.Late(max(d, 0), now)
		list = u.allAdjs(list[:0])
		heard := peerHeard(list, heardBuf)
		next := cfg.Idle
		for _, a := range list {
			next = min(next, u.tickAdj(a, now, late, heard.other(a)))
		}
		if len(list) == 0 {
			// Nothing to keep alive: sleep until an adjacency comes.
			t.Stop()
			select {
			case <-u.ctx.Done():
				return
			case <-u.live.kick:
			}
			next = time.Millisecond
		}
		if !t.Stop() {
			select {
			case <-t.C():
			default:
			}
		}
		t.Reset(next)
		due = u.clk.Now().Add(next)
	}
}

// allAdjs appends every lower flow, up or suspended, to list.
func (u *IPCP) allAdjs(list []*adj) []*adj {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, a := range u.adjList {
		list = append(list, a)
	}
	return list
}

// heardBy is a flow's last arrival.
type heardBy struct {
	id uint64
	rx int64
}

// peerArrivals holds, per peer, the two up flows heard last.
type peerArrivals map[uint64]*[2]heardBy

// peerHeard fills (and returns) m with the two latest arrivals of each
// peer's up flows.
func peerHeard(list []*adj, m peerArrivals) peerArrivals {
	for _, v := range m {
		*v = [2]heardBy{}
	}
	for _, a := range list {
		if !a.up.Load() {
			continue
		}
		v := m[a.peer]
		if v == nil {
			v = &[2]heardBy{}
			m[a.peer] = v
		}
		h := heardBy{a.id, a.lastRx.Load()}
		switch {
		case h.rx > v[0].rx:
			v[1], v[0] = v[0], h
		case h.rx > v[1].rx:
			v[1] = h
		}
	}
	return m
}

// other returns when a's peer was last heard on another up flow (0:
// never, or no other flow).
func (m peerArrivals) other(a *adj) int64 {
	v := m[a.peer]
	if v == nil {
		return 0
	}
	if v[0].id != a.id {
		return v[0].rx
	}
	return v[1].rx
}

// tickAdj is one keepalive round of one lower flow; otherRx is when its
// peer was last heard on another flow (0: none). It returns how long
// the flow's Session may wait for the next round.
//
// Link evidence: a peer heard on another flow within the last poll
// interval is alive, so an active flow to it that stayed silent through
// two polls has a link problem, not a host one: it is suspended then,
// without waiting for the detector's bound (which may have learned the
// patience a loaded peer needs).
func (u *IPCP) tickAdj(a *adj, now time.Time, late time.Duration, otherRx int64) time.Duration {
	select {
	case <-a.done:
		return u.liveConfig().Idle
	default:
	}
	l := &a.live
	rx := a.lastRx.Load()
	if l.sess == nil {
		l.sess = liveness.NewSession(u.liveConfig(), time.Unix(0, rx))
		l.seenRx = rx
		l.out = l.dataOut.Load()
	}
	if p := l.peerIdle.Load(); p > 0 {
		l.sess.SetPeerIdle(time.Duration(p))
	}
	l.sess.SetSlack(u.live.slow.At(now))
	var heard time.Time
	if rx > l.seenRx {
		heard = time.Unix(0, rx)
		l.seenRx = rx
	}
	// Only data makes the adjacency active: management frames (floods,
	// directory updates, their acks) are resent by their ARQ and need
	// no fast detection, and an adjacency turned active for a burst of
	// them was polled for Fast x Mult against the active bound, where
	// a loaded peer's late answer was a false down (bench -grid).
	out := l.dataOut.Load()
	sent := out != l.out
	l.out = out
	up := a.up.Load()
	if up {
		l.sess.SetDown(time.Time{})
	} else {
		l.sess.SetDown(time.Unix(0, a.downAt.Load()))
	}
	act := l.sess.Tick(now, heard, sent, late)
	if up {
		poll := l.sess.PollEvery()
		if act.Poll && l.sess.Active() && l.sess.Unanswered() >= 1 && (otherRx == 0 || now.Sub(time.Unix(0, otherRx)) > poll) {
			u.crossPoll(a, now, poll)
		}
		linkDead := l.sess.Active() && otherRx > 0 && now.Sub(time.Unix(0, otherRx)) <= poll &&
			l.sess.Silence(now) > 2*poll && l.sess.PolledFor(now) > poll
		if (act.Suspect || linkDead) && a.f.Pending() == 0 {
			silence, bound := l.sess.Silence(now), l.sess.Bound()
			why := fmt.Sprintf("no hello for %v (bound %v)", silence.Round(time.Millisecond), bound.Round(time.Millisecond))
			rule := "bound"
			if !act.Suspect {
				why = fmt.Sprintf("no hello for %v while the peer is heard on another flow", silence.Round(time.Millisecond))
				rule = "link"
			}
			switch {
			case len(*u.adjs.Load()) > 1:
				u.suspendAs(a, why, false, u.downFields(a, now, rule)...)
				l.sess.SetDown(now)
			case silence > bound+u.withdrawHold():
				// The only way out: never taken out of the table for a
				// short silence (there is no other way to steer to),
				// withdrawn once the silence outlived the hold.
				u.suspendAs(a, why+", the only flow up", true, u.downFields(a, now, "only")...)
				l.sess.SetDown(now)
			}
		}
	} else if u.mayRevive(a, now, rx) {
		u.revive(a, "heard")
		l.sess.SetDown(time.Time{})
	}
	if act.Hello {
		var f uint32
		if act.Poll {
			f |= liveness.Poll
		}
		if late > 0 {
			f |= liveness.Starved
		}
		u.askHello(a, f)
	}
	return l.sess.Next(now)
}

// crossPoll polls a's peer on its other up flows that were not heard
// within poll, each at most once a poll interval, while a poll on a
// goes unanswered. An answer there is the link evidence of tickAdj:
// the peer is alive, so a's silence is its link's, and a is suspended
// after two polls instead of the detector's bound. Without it an idle
// sibling (a hello every Idle) says nothing within a poll interval, and
// a silent cut of the busy one of two paths waited for the bound (the
// worst of eight 1 ms streams lost 16-20 packets, go run ./bench
// -silentcut, against 7-9 when the other path happened to be heard).
// It costs one hello per sibling per poll interval, and only then.
func (u *IPCP) crossPoll(a *adj, now time.Time, poll time.Duration) {
	m := u.adjs.Load()
	if m == nil {
		return
	}
	for _, b := range *m {
		if b == a || b.peer != a.peer || !b.up.Load() {
			continue
		}
		if rx := b.lastRx.Load(); rx != 0 && now.Sub(time.Unix(0, rx)) <= poll {
			continue
		}
		if c := b.live.crossPolled; c != 0 && now.Sub(time.Unix(0, c)) < poll {
			continue
		}
		b.live.crossPolled = now.UnixNano()
		u.askHello(b, liveness.Poll)
	}
}

// downFields are the log fields that say why a's Session suspected
// its peer at now: the rule that fired (bound: the detector's bound;
// link: link evidence; only: the only flow up, past the hold), the
// mode, the silence and the bound, the detector's learned figures,
// the polls left unanswered and for how long, how long the flow and
// the active spell have lasted, this host's last own stall, and its
// own recent slowness (the slack on the bound is that, at most Fast).
func (u *IPCP) downFields(a *adj, now time.Time, rule string) []any {
	s := a.live.sess
	d := s.Detector()
	mode := "idle"
	if s.Active() {
		mode = "active"
	}
	kv := []any{"rule", rule, "mode", mode, "silence_ms", ms(s.Silence(now)), "bound_ms", ms(s.Bound()),
		"gaps", d.Gaps(), "mean_ms", ms(d.Mean()), "peak_ms", ms(d.Peak()), "unanswered", s.Unanswered(),
		"polled_ms", ms(s.PolledFor(now)),
		"since_up_ms", ms(now.Sub(a.since)), "queued", a.f.Queued(), "own_slow_ms", ms(u.live.slow.At(now))}
	if t := s.ActiveSince(); !t.IsZero() && s.Active() {
		kv = append(kv, "active_ms", ms(now.Sub(t)))
	}
	if !u.live.stallAt.IsZero() {
		kv = append(kv, "own_stall_ms", ms(u.live.stall), "own_stall_ago_ms", ms(now.Sub(u.live.stallAt)))
	}
	return kv
}

// ms is d in milliseconds, to 0.1 ms, for log fields.
func ms(d time.Duration) float64 { return float64(d.Round(100*time.Microsecond)) / 1e6 }

// mayRevive says whether a suspended flow whose peer was last heard at
// rx (ns) may come back at now: a suspension for silence still held
// (routing not told) as soon as the peer is heard again, since nothing
// was flooded and the peer is alive; any other once the peer has been
// heard within two intervals and damping allows (holdTime).
func (u *IPCP) mayRevive(a *adj, now time.Time, rx int64) bool {
	if !a.carrier.Load() {
		return false
	}
	down := a.downAt.Load()
	u.mu.Lock()
	held := a.live.pending
	u.mu.Unlock()
	if held {
		return rx > down
	}
	return now.Sub(time.Unix(0, rx)) <= 2*u.cfg.HelloInterval && now.Sub(time.Unix(0, down)) >= u.holdTime(a, u.cfg.Damping)
}

// askHello has the flow's goroutine write a hello with flags (merged
// into any hello already asked for).
func (u *IPCP) askHello(a *adj, flags uint32) {
	a.live.flags.Or(flags | helloAsked)
	select {
	case a.hello <- struct{}{}:
	default:
	}
}

// helloAsked marks a.live.flags as holding a request (flags may be 0).
const helloAsked = 1 << 8

// heardHello handles a keepalive from the peer (called by the flow's
// reader): it notes the peer's idle interval, answers a poll at once,
// takes back a suspension the peer says its own stall caused, and
// wakes the loop if the flow is suspended, so that it returns as soon
// as damping allows rather than at the next tick.
func (u *IPCP) heardHello(a *adj, h liveness.Hello) {
	if int64(h.Interval) != a.live.peerIdle.Load() {
		a.live.peerIdle.Store(int64(h.Interval))
	}
	if h.Flags&liveness.Poll != 0 {
		u.askHello(a, 0)
	}
	if a.up.Load() || !a.carrier.Load() {
		return
	}
	if h.Flags&liveness.Starved != 0 {
		u.revive(a, "starved")
		return
	}
	if u.mayRevive(a, u.clk.Now(), a.lastRx.Load()) {
		u.revive(a, "hello")
		return
	}
	u.live.wake()
}

// watchCarrier follows the events of a lower flow: DOWN (carrier loss
// under an Ethernet shim) suspends the flow at once; UP lets the
// keepalive loop bring it back once the peer is heard. It also writes
// the hellos the loop and the reader ask for; a plain one (no flag) is
// skipped while packets still wait for the lower IPCP (they will prove
// us alive).
func (u *IPCP) watchCarrier(a *adj) {
	defer u.wg.Done()
	idle := u.liveConfig().Idle
	frame := make([]byte, 0, 1+liveness.HelloLen)
	for {
		select {
		case <-u.ctx.Done():
			return
		case <-a.done:
			return
		case <-a.hello:
			f := a.live.flags.Swap(0) &^ helloAsked
			if f != 0 || a.f.Queued() == 0 {
				frame = liveness.AppendHello(append(frame[:0], kindKeepalive), liveness.Hello{Flags: byte(f), Interval: idle})
				u.sendFrame(a, frame) // through the egress scheduler when it queues: management class, ahead of data
			}
		case ev := <-a.f.Events():
			if ev.State == flow.Down {
				a.carrier.Store(false)
				u.suspend(a, "lower flow reports carrier loss")
			} else {
				a.carrier.Store(true)
			}
		}
	}
}
