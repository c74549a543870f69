package udp

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ouro-net/ouro/ipcpd/shim/admit"
	"github.com/ouro-net/ouro/ipcpd/shim/dir"
	"github.com/ouro-net/ouro/lib/namehash"
)

// counters are the IPCP's statistics; every drop has its own.
type counters struct {
	rxDatagrams, rxBytes, rxData                           atomic.Uint64
	txData, txBytes                                        atomic.Uint64
	rxShort, rxOversize, rxBadVersion, rxBadType           atomic.Uint64
	rxMalformed, rxUnknownEID, rxWrongSource, rxStale      atomic.Uint64
	rxUnsolicited, rxErrors, txErrors, txDrill             atomic.Uint64
	directFlows                                            atomic.Uint64
	refused                                                admit.Refused
	allocsLimited                                          atomic.Uint64
	arrivalsTimedOut, expiredUnconfirmed                   atomic.Uint64
	confirmsIn, confirmsOut, answersLimited                atomic.Uint64
	queriesIn, queriesAnswered, queriesLimited             atomic.Uint64
	queriesOut, allocsIn, allocsRefused, allocsOut         atomic.Uint64
	allocsFailed, deallocsIn, deallocsOut, deallocsUnacked atomic.Uint64
}

// list names every counter, in the order Show prints them.
func (c *counters) list() []struct {
	name string
	v    *atomic.Uint64
} {
	return []struct {
		name string
		v    *atomic.Uint64
	}{
		{"rx-datagrams", &c.rxDatagrams},
		{"rx-bytes", &c.rxBytes},
		{"rx-data", &c.rxData},
		{"tx-data", &c.txData},
		{"tx-bytes", &c.txBytes},
		{"drop-truncated", &c.rxShort},
		{"drop-oversize", &c.rxOversize},
		{"drop-bad-version", &c.rxBadVersion},
		{"drop-bad-type", &c.rxBadType},
		{"drop-malformed", &c.rxMalformed},
		{"drop-unknown-eid", &c.rxUnknownEID},
		{"drop-wrong-source", &c.rxWrongSource},
		{"drop-stale", &c.rxStale},
		{"drop-unsolicited", &c.rxUnsolicited},
		{"rx-errors", &c.rxErrors},
		{"tx-errors", &c.txErrors},
		{"drop-drill", &c.txDrill},
		{"flows-direct", &c.directFlows},
		{"queries-in", &c.queriesIn},
		{"queries-answered", &c.queriesAnswered},
		{"queries-rate-limited", &c.queriesLimited},
		{"queries-out", &c.queriesOut},
		{"allocs-in", &c.allocsIn},
		{"allocs-refused", &c.allocsRefused},
		{"allocs-out", &c.allocsOut},
		{"allocs-failed", &c.allocsFailed},
		{"deallocs-in", &c.deallocsIn},
		{"deallocs-out", &c.deallocsOut},
		{"deallocs-unacked", &c.deallocsUnacked},
		{"refused-flows-full", &c.refused.Flows},
		{"refused-peer-flows-full", &c.refused.PeerFlows},
		{"refused-pending-full", &c.refused.Pending},
		{"refused-peer-pending-full", &c.refused.PeerPending},
		{"drop-alloc-rate-limited", &c.allocsLimited},
		{"arrivals-timed-out", &c.arrivalsTimedOut},
		{"expired-unconfirmed", &c.expiredUnconfirmed},
		{"confirms-in", &c.confirmsIn},
		{"confirms-out", &c.confirmsOut},
		{"drop-stale-rate-limited", &c.answersLimited},
	}
}

// What Show lists at most.
const (
	showFlows   = 32
	showSources = 5
)

// Show describes the IPCP for `irm layer show`: its socket, peers,
// names, resolved names, flows and counters.
func (u *IPCP) Show(context.Context) (string, error) {
	var b strings.Builder
	u.mu.RLock()
	if !u.booted {
		u.mu.RUnlock()
		return fmt.Sprintf("%s IPCP %s: not bootstrapped\n", u.h.Type, u.h.Name), nil
	}
	fmt.Fprintf(&b, "%s IPCP %s in layer %s\n", u.h.Type, u.h.Name, u.h.Layer())
	fmt.Fprintf(&b, "  address  %s\n", u.local)
	fmt.Fprintf(&b, "  mtu      %d (link %d, data header %d bytes)\n", u.mtu, u.linkMTU, eidLen)
	fmt.Fprintf(&b, "  buffers  rcvbuf %d sndbuf %d bytes, recvmmsg batch %d\n", u.rcvBuf, u.sndBuf, rxBatch)
	peers := make([]string, 0, len(u.peers))
	for _, p := range u.peers {
		peers = append(peers, p.String())
	}
	fmt.Fprintf(&b, "  peers    %s\n", orNone(peers))
	if u.loss != 0 {
		fmt.Fprintf(&b, "  drill    %.1f%% of each flow's data packets dropped at random\n", u.loss*100)
	}
	fmt.Fprintf(&b, "  names    %s\n", orNone(u.names.Sorted()))
	cache := u.cache.Lines(u.clk.Now(), showFlows, func(_ namehash.Hash, e dir.Entry[netip.AddrPort], left time.Duration) string {
		return fmt.Sprintf("%s at %s (%ds)", e.Name, e.Addr, int(left.Seconds()))
	})
	fmt.Fprintf(&b, "  resolved %s\n", orNone(cache))
	u.adm.Show(&b, "  ", u.tm.confirm, showSources, addrLess)
	// At most showFlows flows are listed, lowest eids first, so that
	// the answer stays small whatever the number of flows.
	total := len(u.flows)
	eids := make([]uint32, 0, total)
	for e := range u.flows {
		eids = append(eids, e)
	}
	sort.Slice(eids, func(i, j int) bool { return eids[i] < eids[j] })
	if len(eids) > showFlows {
		eids = eids[:showFlows]
	}
	flows := make([]string, 0, len(eids))
	for _, e := range eids {
		fl := u.flows[e]
		f := fl.f
		st := [...]string{"pending", "up", "closing"}[fl.state.Load()]
		if fl.direct != nil {
			st += " direct"
		}
		if fl.incoming && !fl.confirmed.Load() {
			st += " unconfirmed"
		}
		flows = append(flows, fmt.Sprintf("    eid %08x -> %s eid %08x  %s  qos %s  mtu %d  %s  in %d pkts %d B  out %d pkts %d B  drops %d",
			fl.local, fl.to, fl.remote, f.Name, f.QoS, fl.mtu, st,
			f.PktsIn.Load(), f.BytesIn.Load(), f.PktsOut.Load(), f.BytesOut.Load(), f.Drops.Load()))
	}
	u.mu.RUnlock()
	fmt.Fprintf(&b, "  flows    %d\n", total)
	for _, l := range flows {
		b.WriteString(l + "\n")
	}
	if total > len(flows) {
		fmt.Fprintf(&b, "    ... and %d more\n", total-len(flows))
	}
	b.WriteString("  counters\n")
	for _, c := range u.ctr.list() {
		fmt.Fprintf(&b, "    %-26s %d\n", c.name, c.v.Load())
	}
	return b.String(), nil
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "(none)"
	}
	return strings.Join(s, ", ")
}
