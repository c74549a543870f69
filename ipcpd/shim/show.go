package shim

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/ouro-net/ouro/ipcpd/shim/dir"
	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/namehash"
)

// What Show lists at most.
const (
	showFlows   = 32
	showSources = 5
)

// Status describes the engine as data, with the medium's own counters
// (more); the medium fills in its address and peers.
func (e *Engine[A]) Status(more []Counter) *ctrl.ShimStatus {
	st := &ctrl.ShimStatus{MTU: e.mtu, Counters: make(map[string]uint64)}
	e.mu.RLock()
	now := e.clk.Now()
	st.Carrier = e.carrier
	st.Names = e.names.Sorted()
	e.cache.Lines(now, showFlows, func(_ namehash.Hash, c dir.Entry[A], left time.Duration) string {
		st.Resolved = append(st.Resolved, ctrl.ShimResolved{Name: c.Name, Addr: fmt.Sprint(c.Addr), TTL: left})
		return ""
	})
	total := e.adm.Total()
	st.Limits = ctrl.ShimLimits{Flows: total.Flows, Pending: total.Pending, MaxFlows: e.t.MaxFlows,
		MaxFlowsPerPeer: e.t.MaxFlowsPerPeer, MaxPending: e.t.MaxPending, MaxPendingPerPeer: e.t.MaxPendingPerPeer,
		Sources: e.adm.Sources()}
	// At most showFlows flows are listed, lowest eids first, so that
	// the answer stays small whatever the number of flows.
	st.FlowCount = len(e.flows)
	eids := make([]uint32, 0, len(e.flows))
	for eid := range e.flows {
		eids = append(eids, eid)
	}
	sort.Slice(eids, func(i, j int) bool { return eids[i] < eids[j] })
	for _, eid := range eids[:min(len(eids), showFlows)] {
		fl := e.flows[eid]
		f := fl.App
		sf := ctrl.ShimFlow{LocalEID: fl.Local, RemoteEID: fl.Remote, Peer: fmt.Sprint(fl.Peer), Name: f.Name,
			QoS: f.QoS.String(), MTU: fl.MTU, State: [...]string{"pending", "up", "closing"}[fl.state.Load()],
			Unconfirmed: fl.Incoming && !fl.confirmed.Load(),
			PktsIn:      f.PktsIn.Load(), BytesIn: f.BytesIn.Load(), PktsOut: f.PktsOut.Load(), BytesOut: f.BytesOut.Load(),
			Drops: f.Drops.Load()}
		if d, ok := fl.Medium.(interface{ ShowState() string }); ok {
			sf.Direct = d.ShowState() == "direct"
		}
		st.Flows = append(st.Flows, sf)
	}
	e.mu.RUnlock()
	for _, c := range append(e.Counters.List(), more...) {
		st.Counters[c.Name] = c.V.Load()
	}
	return st
}

// Show describes the engine for `irm layer show`, after the link's own
// lines (head, each ending in a newline): names, resolved names, the
// limits, flows with their counters, and the counters (the engine's,
// then the link's own, more).
func (e *Engine[A]) Show(head string, more []Counter) string {
	var b strings.Builder
	b.WriteString(head)
	e.mu.RLock()
	now := e.clk.Now()
	state := "down"
	if e.carrier {
		state = "up"
	}
	fmt.Fprintf(&b, "  carrier  %s since %s (%d changes)\n", state, e.carrierAt.Format("15:04:05.000"),
		e.Counters.CarrierChanges.Load())
	fmt.Fprintf(&b, "  names    %s\n", orNone(e.names.Sorted()))
	cache := e.cache.Lines(now, showFlows, func(_ namehash.Hash, c dir.Entry[A], left time.Duration) string {
		return fmt.Sprintf("%s at %v (%ds)", c.Name, c.Addr, int(left.Seconds()))
	})
	fmt.Fprintf(&b, "  resolved %s\n", orNone(cache))
	e.adm.Show(&b, "  ", e.t.ConfirmTimeout, showSources, e.cfg.Less)
	e.mu.RUnlock()
	st := e.Status(nil)
	fmt.Fprintf(&b, "  flows    %d\n", st.FlowCount)
	for _, f := range st.Flows {
		state := f.State
		if f.Direct {
			state += " direct"
		}
		if f.Unconfirmed {
			state += " unconfirmed"
		}
		fmt.Fprintf(&b, "    eid %08x -> %s eid %08x  %s  qos %s  mtu %d  %s  in %d pkts %d B  out %d pkts %d B  drops %d\n",
			f.LocalEID, f.Peer, f.RemoteEID, f.Name, f.QoS, f.MTU, state, f.PktsIn, f.BytesIn, f.PktsOut, f.BytesOut, f.Drops)
	}
	if st.FlowCount > len(st.Flows) {
		fmt.Fprintf(&b, "    ... and %d more\n", st.FlowCount-len(st.Flows))
	}
	b.WriteString("  counters\n")
	for _, c := range append(e.Counters.List(), more...) {
		fmt.Fprintf(&b, "    %-26s %d\n", c.Name, c.V.Load())
	}
	return b.String()
}

// Flows returns how many flows the engine holds, in every state.
func (e *Engine[A]) Flows() int {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return len(e.flows)
}

// Usage reports the incoming flows and the pending ones, in total and
// those of source src.
func (e *Engine[A]) Usage(src A) (flows, pending, srcFlows, srcPending int) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	t, s := e.adm.Total(), e.adm.Of(src)
	return t.Flows, t.Pending, s.Flows, s.Pending
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "(none)"
	}
	return strings.Join(s, ", ")
}

// EIDs returns the endpoint ids of the flows the engine holds, in no
// order (for tests and tools that look at one flow).
func (e *Engine[A]) EIDs() []uint32 {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := make([]uint32, 0, len(e.flows))
	for eid := range e.flows {
		out = append(out, eid)
	}
	return out
}

// Cached returns where the cache says name is, if it has a live answer.
func (e *Engine[A]) Cached(name string) (A, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cache.Get(e.clk.Now(), namehash.Of(name))
}
