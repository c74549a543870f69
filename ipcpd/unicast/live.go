package unicast

import (
	"fmt"
	"sync"
	"time"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/lib/liveness"
)

// Keepalive. One loop per IPCP, on one timer, serves every adjacency:
// each hello interval it
//
//   - feeds each lower flow's last arrival (any packet proves the peer
//     alive: readAdj stamps lastRx) to the flow's liveness.Detector, and
//     takes the flow out of service once the detector suspects the peer
//     (a bound learned from the peer's inter-arrival times, never below
//     interval × multiplier: see lib/liveness);
//   - brings back a suspended flow once the peer is heard again (see
//     holdTime for the damping);
//   - has a one-byte hello written on every flow that carried nothing
//     out in the interval and has nothing queued for its lower IPCP: a
//     data or management packet already proves us alive to the peer.
//     The flow's own goroutine (watchCarrier) writes it, since a write
//     blocks while the lower IPCP does not read and the loop must never
//     block.
//
// A tick that comes more than two intervals late means this process was
// not running: the silence is ours, not the peers', so each detector is
// told to forget it (Pause) and nobody is suspected that round.
//
// The loop sleeps (no timer armed) while the IPCP has no adjacency.
// Carrier events (a lower flow reporting DOWN) need no timer: each flow
// has a goroutine blocked on its event channel and on the loop's hello
// requests (watchCarrier), which suspends the flow at once.
//
// Each adjacency is its own lower flow, so the hellos of one tick go
// out one flow at a time in the same tick: there is no single socket to
// batch them on.

// liveLoop is the keepalive loop of an IPCP.
type liveLoop struct {
	once sync.Once
	kick chan struct{} // an adjacency was added: wake a sleeping loop
}

// adjLive is the keepalive state of one lower flow, owned by the loop.
type adjLive struct {
	det    *liveness.Detector
	seenRx int64  // the lastRx fed to det
	out    uint64 // packets out at the last tick
}

// start runs the loop (once) and wakes it.
func (l *liveLoop) start(u *IPCP) {
	l.once.Do(func() {
		l.kick = make(chan struct{}, 1)
		u.wg.Add(1)
		go u.liveness()
	})
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// liveness is the keepalive loop.
func (u *IPCP) liveness() {
	defer u.wg.Done()
	iv := u.cfg.HelloInterval
	floor := iv * time.Duration(u.cfg.HelloMultiplier)
	t := u.clk.NewTimer(iv)
	defer t.Stop()
	last := u.clk.Now()
	var list []*adj
	for {
		select {
		case <-u.ctx.Done():
			return
		case <-t.C():
		}
		now := u.clk.Now()
		late := now.Sub(last) > 2*iv
		last = now
		list = u.allAdjs(list[:0])
		for _, a := range list {
			u.tickAdj(a, now, iv, floor, late)
		}
		if len(list) == 0 {
			// Nothing to keep alive: sleep until an adjacency comes.
			select {
			case <-u.ctx.Done():
				return
			case <-u.live.kick:
			}
			last = u.clk.Now()
		}
		t.Reset(iv)
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

// tickAdj is one keepalive round of one lower flow.
func (u *IPCP) tickAdj(a *adj, now time.Time, iv, floor time.Duration, late bool) {
	select {
	case <-a.done:
		return
	default:
	}
	l := &a.live
	rx := a.lastRx.Load()
	if l.det == nil {
		l.det = liveness.New(floor, time.Unix(0, rx))
		l.seenRx = rx
	}
	if rx > l.seenRx {
		l.det.Heard(time.Unix(0, rx))
		l.seenRx = rx
	}
	if late {
		l.det.Pause(now)
	}
	if a.up.Load() {
		if !late && l.det.Suspect(now) && a.f.Pending() == 0 {
			u.suspendAs(a, fmt.Sprintf("no hello for %v (bound %v)",
				now.Sub(l.det.Last()).Round(time.Millisecond), l.det.Bound().Round(time.Millisecond)), false)
		}
	} else if a.carrier.Load() && now.Sub(time.Unix(0, rx)) <= 2*iv &&
		now.Sub(time.Unix(0, a.downAt.Load())) >= u.holdTime(a, u.cfg.Damping) {
		u.revive(a)
	}
	out := a.ctr.Snapshot().PacketsOut
	if out != l.out {
		l.out = out // the peer heard from us this interval
		return
	}
	// The flow's own goroutine writes the hello: a write blocks while
	// the lower IPCP does not read, and must not hold up this loop and
	// every other flow's keepalive. If it is still stuck on the last
	// one, this one is not needed.
	select {
	case a.hello <- struct{}{}:
	default:
	}
}

// helloFrame is the keepalive: one byte.
var helloFrame = []byte{kindHello}

// watchCarrier follows the events of a lower flow: DOWN (carrier loss
// under an Ethernet shim) suspends the flow at once; UP lets the
// keepalive loop bring it back once the peer is heard. It also writes
// the hellos the loop asks for, unless packets still wait for the lower
// IPCP (they will prove us alive).
func (u *IPCP) watchCarrier(a *adj) {
	defer u.wg.Done()
	for {
		select {
		case <-u.ctx.Done():
			return
		case <-a.done:
			return
		case <-a.hello:
			if a.f.Queued() == 0 {
				a.f.Write(helloFrame)
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
