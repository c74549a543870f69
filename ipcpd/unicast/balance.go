package unicast

import (
	"sync"
	"time"

	"github.com/ouro-net/ouro/dt"
)

// Load-aware placement of this member's own flows (the source side of
// path labels).
//
// Every data packet carries a path label (0..dt.MaxLabel) that the
// per-flow ECMP hash uses with the endpoint id, and the IPCP that
// serves an application stamps the label of that application's flow
// (readApp). FRCT bends a flow when its own signals say its path is
// congested (ECN marks, repeated timeouts: see flow/frct). Those
// signals miss the commonest case on a real network: a bottleneck
// outside the layer (a shaped link in a box in the middle) that the
// delay-based controller keeps short, so nothing is marked and nothing
// is lost, and two flows hashed onto one of two equal paths share it
// for ever while the other stays idle. A flow's own delay cannot tell
// a shared bottleneck from a slow one without knowing the capacity.
//
// The source IPCP can tell: it sees the byte rate it sends to each
// next hop and the rate of each of its flows. So it balances them,
// the way CONGA or Hedera do for a fabric, but only from what one
// member sees locally:
//
//   - placement: a new flow's first label is chosen so that it hashes
//     onto the least loaded of its equal-cost next hops (label 0, the
//     plain hash, when that is already one of the lightest; among
//     equally light next hops, the one that got the fewest flows
//     placed lately, so that two flows started together split);
//   - rebalancing: every balanceInterval the rates are measured
//     (EWMA); a busy flow f on next hop h is re-labelled onto another
//     equal-cost next hop g of its destination when
//     load(g) + rate(f) <= balanceMargin * load(h), i.e. when g would
//     still be clearly lighter with f than h is now. Two flows sharing
//     a next hop while an equal one idles qualify; a lone flow never
//     does (load(h) is its own rate); nor do equally loaded next hops,
//     so nothing flaps between them.
//
// Moves are rate-limited: at most one per tick, both next hops of a
// move take no part in another for balanceSettle (their rates need
// that long to show it), a flow is not moved before it has been
// measured for balanceSettle, and after a move it waits a hold that
// starts at balanceHold and doubles for a move soon after the previous
// one (up to balanceMaxHold). A move is a label change like a FRCT
// bend (counted in the same bends counter): the flow keeps its state,
// its packets may be reordered once at the switch, and the hops after
// the next one rehash it as they would any new label.
//
// Only rates this member measures are used, so a bottleneck beyond the
// next hop is seen only through the rates the flows reach (a slower
// path carries less); transit traffic counts towards a next hop's load
// but only our own flows are moved. The receiving side's flows (the
// acknowledgements of a bulk flow) are light and rarely busy.
const (
	balanceInterval = 200 * time.Millisecond
	balanceBusy     = 125_000 // bytes/s (1 Mbit/s): lighter flows are never moved
	balanceGain     = 0.5     // EWMA weight of a new rate sample
	balanceMargin   = 0.75
	balanceSettle   = time.Second
	balanceHold     = 4 * time.Second
	balanceMaxHold  = 64 * time.Second
)

// balanceConfig tunes a balancer; balanceDefaults is the IPCP's.
type balanceConfig struct {
	interval time.Duration
	busy     float64 // bytes/s
	gain     float64
	margin   float64
	settle   time.Duration
	hold     time.Duration
	maxHold  time.Duration
}

var balanceDefaults = balanceConfig{interval: balanceInterval, busy: balanceBusy, gain: balanceGain,
	margin: balanceMargin, settle: balanceSettle, hold: balanceHold, maxHold: balanceMaxHold}

// balancer is the placement state of one IPCP. The zero value uses
// balanceDefaults. Its methods are safe for concurrent use.
type balancer struct {
	mu      sync.Mutex
	cfg     balanceConfig
	started bool
	last    time.Time
	hops    map[uint64]*hopLoad
	flows   map[uint64]*flowLoad // by local endpoint id
	moves   uint64
}

// hopLoad is what the balancer knows of one next hop.
type hopLoad struct {
	bytes    uint64  // bytes sent, at the last tick
	rate     float64 // bytes/s, smoothed
	settle   time.Time
	placed   int // flows placed on it since placedAt
	placedAt time.Time
}

// flowLoad is what the balancer knows of one of our flows.
type flowLoad struct {
	bytes    uint64
	rate     float64
	since    time.Time // first measured
	next     time.Time // not moved before
	hold     time.Duration
	lastMove time.Time
	moves    uint64
}

// hopSample is a next hop's bytes sent so far.
type hopSample struct{ id, bytes uint64 }

// flowSample is one of our flows: bytes sent so far and its label now.
type flowSample struct {
	eid   uint64
	bytes uint64
	label uint8
}

// relabel asks for flow eid to be stamped with label from now on.
type relabel struct {
	eid   uint64
	label uint8
}

// hopOfFunc returns the next hop the flow eid takes on label.
type hopOfFunc func(eid uint64, label uint8) (uint64, bool)

func (b *balancer) config() balanceConfig {
	if b.cfg.interval == 0 {
		b.cfg = balanceDefaults
	}
	return b.cfg
}

// tick measures the rates from the samples (bytes so far of every next
// hop and of every flow of ours) and returns the move to make, if any.
func (b *balancer) tick(now time.Time, hops []hopSample, flows []flowSample, hopOf hopOfFunc) []relabel {
	b.mu.Lock()
	defer b.mu.Unlock()
	cfg := b.config()
	if b.hops == nil {
		b.hops, b.flows = map[uint64]*hopLoad{}, map[uint64]*flowLoad{}
	}
	secs := now.Sub(b.last).Seconds()
	first := b.last.IsZero() || secs <= 0
	b.last = now
	seen := make(map[uint64]bool, len(hops))
	for _, s := range hops {
		seen[s.id] = true
		h := b.hops[s.id]
		if h == nil {
			b.hops[s.id] = &hopLoad{bytes: s.bytes}
			continue
		}
		if !first && s.bytes >= h.bytes {
			h.rate += cfg.gain * (float64(s.bytes-h.bytes)/secs - h.rate)
		}
		h.bytes = s.bytes
	}
	for id := range b.hops {
		if !seen[id] {
			delete(b.hops, id)
		}
	}
	clear(seen)
	for _, s := range flows {
		seen[s.eid] = true
		f := b.flows[s.eid]
		if f == nil {
			b.flows[s.eid] = &flowLoad{bytes: s.bytes, since: now, hold: cfg.hold}
			continue
		}
		if !first && s.bytes >= f.bytes {
			f.rate += cfg.gain * (float64(s.bytes-f.bytes)/secs - f.rate)
		}
		f.bytes = s.bytes
	}
	for id := range b.flows {
		if !seen[id] {
			delete(b.flows, id)
		}
	}
	if first {
		return nil
	}

	// The best move: the one that leaves the more loaded of its two
	// next hops lightest.
	var (
		best      relabel
		bestAfter float64
		found     bool
		from, to  *hopLoad
	)
	for _, s := range flows {
		f := b.flows[s.eid]
		if f.rate < cfg.busy || now.Sub(f.since) < cfg.settle || now.Before(f.next) {
			continue
		}
		hid, ok := hopOf(s.eid, s.label)
		h := b.hops[hid]
		if !ok || h == nil || now.Before(h.settle) {
			continue
		}
		for l := uint8(0); l <= dt.MaxLabel; l++ {
			if l == s.label {
				continue
			}
			gid, ok := hopOf(s.eid, l)
			g := b.hops[gid]
			if !ok || gid == hid || g == nil || now.Before(g.settle) {
				continue
			}
			if g.rate+f.rate > cfg.margin*h.rate {
				continue
			}
			after := max(h.rate-f.rate, g.rate+f.rate)
			if !found || after < bestAfter || (after == bestAfter && s.eid < best.eid) {
				best, bestAfter, found, from, to = relabel{s.eid, l}, after, true, h, g
			}
		}
	}
	if !found {
		return nil
	}
	f := b.flows[best.eid]
	if !f.lastMove.IsZero() && now.Sub(f.lastMove) < 4*f.hold {
		f.hold = min(2*f.hold, cfg.maxHold)
	} else {
		f.hold = cfg.hold
	}
	f.lastMove, f.next = now, now.Add(f.hold)
	f.moves++
	b.moves++
	from.settle, to.settle = now.Add(cfg.settle), now.Add(cfg.settle)
	// Expect the move in the rates until they show it.
	from.rate = max(from.rate-f.rate, 0)
	to.rate += f.rate
	return []relabel{best}
}

// place returns the first label of a new flow: one that hashes it onto
// the least loaded of its next hops (see the comment at the top).
func (b *balancer) place(now time.Time, hopOf func(label uint8) (uint64, bool)) uint8 {
	var ids [dt.MaxLabel + 1]uint64
	distinct := map[uint64]bool{}
	for l := range ids {
		id, ok := hopOf(uint8(l))
		if !ok {
			return 0
		}
		ids[l] = id
		distinct[id] = true
	}
	if len(distinct) < 2 {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	cfg := b.config()
	if b.hops == nil {
		b.hops, b.flows = map[uint64]*hopLoad{}, map[uint64]*flowLoad{}
	}
	rate := func(id uint64) float64 {
		if h := b.hops[id]; h != nil {
			return h.rate
		}
		return 0
	}
	placed := func(id uint64) int {
		if h := b.hops[id]; h != nil && now.Sub(h.placedAt) < cfg.settle {
			return h.placed
		}
		return 0
	}
	lo, hi := -1.0, 0.0
	for id := range distinct {
		r := rate(id)
		if lo < 0 || r < lo {
			lo = r
		}
		hi = max(hi, r)
	}
	// Next hops within a tenth of the busiest (or of one busy flow) of
	// the lightest count as equally light; among those, the fewest
	// placed lately.
	light := lo + max(hi/10, cfg.busy)
	fewest := -1
	for id := range distinct {
		if rate(id) <= light && (fewest < 0 || placed(id) < fewest) {
			fewest = placed(id)
		}
	}
	good := func(id uint64) bool { return rate(id) <= light && placed(id) == fewest }
	label := uint8(0)
	if !good(ids[0]) {
		for l, id := range ids {
			if good(id) {
				label = uint8(l)
				break
			}
		}
	}
	h := b.hops[ids[label]]
	if h == nil {
		h = &hopLoad{}
		b.hops[ids[label]] = h
	}
	if now.Sub(h.placedAt) >= cfg.settle {
		h.placed = 0
	}
	h.placed++
	h.placedAt = now
	return label
}

// startBalancer runs the IPCP's balancing loop, once; the first of our
// flows starts it, and it ends with the IPCP.
func (u *IPCP) startBalancer() {
	u.bal.mu.Lock()
	defer u.bal.mu.Unlock()
	if u.bal.started || u.clk == nil || u.ctx == nil {
		return
	}
	u.bal.started = true
	u.wg.Add(1)
	go u.balanceLoop()
}

// balanceLoop measures and rebalances every balanceInterval.
func (u *IPCP) balanceLoop() {
	defer u.wg.Done()
	iv := u.bal.config().interval
	t := u.clk.NewTimer(iv)
	defer t.Stop()
	var (
		hops  []hopSample
		flows []flowSample
	)
	hopOf := func(eid uint64, label uint8) (uint64, bool) {
		v, ok := u.eps.Load(eid)
		if !ok || u.fib == nil {
			return 0, false
		}
		ep := v.(*endpoint)
		return u.fib.LookupLabel(ep.remoteAddr, ep.remoteEID, ep.cube, label)
	}
	for {
		select {
		case <-u.ctx.Done():
			return
		case <-t.C():
		}
		t.Reset(iv)
		hops, flows = hops[:0], flows[:0]
		for id, a := range *u.adjs.Load() {
			hops = append(hops, hopSample{id: id, bytes: a.ctr.Snapshot().BytesOut})
		}
		u.eps.Range(func(k, v any) bool {
			ep := v.(*endpoint)
			flows = append(flows, flowSample{eid: ep.eid, bytes: ep.f.BytesIn.Load(), label: uint8(ep.label.Load())})
			return true
		})
		for _, m := range u.bal.tick(u.clk.Now(), hops, flows, hopOf) {
			if v, ok := u.eps.Load(m.eid); ok {
				v.(*endpoint).label.Store(uint32(m.label))
			}
		}
	}
}

// placeEndpoint chooses the first label of a new flow of ours.
func (u *IPCP) placeEndpoint(ep *endpoint) uint8 {
	if u.fib == nil || ep.remoteAddr == u.addr {
		return 0
	}
	var now time.Time
	if u.clk != nil {
		now = u.clk.Now()
	}
	return u.bal.place(now, func(l uint8) (uint64, bool) {
		return u.fib.LookupLabel(ep.remoteAddr, ep.remoteEID, ep.cube, l)
	})
}
