package unicast

import (
	"context"
	"sort"
	"time"

	"github.com/ouro-net/ouro/lib/ctrl"
)

// Status describes the layer as this member sees it, as data:
// configuration, members with their announced links, adjacencies with
// their lower flows' counters, routes with next-hop sets and
// alternates, the directory and the counters (ctrl.Status.WriteText
// renders what `irm layer show` prints). The Host fills in the process
// part except the number of flows, which is the endpoints here.
func (u *IPCP) Status(_ context.Context) (*ctrl.Status, error) {
	st := &ctrl.Status{At: time.Now()}
	st.Process.Flows = u.countEndpoints()
	if !u.isJoined() {
		return st, nil
	}
	c := u.cfg
	us := &ctrl.UnicastStatus{Config: ctrl.UnicastConfig{
		Address: c.FormatAddr(u.addr), Addr: u.addr, Routing: c.Routing, AddrSize: c.AddrSize, EIDSize: c.EIDSize,
		TTL: int(c.TTL), HelloInterval: c.HelloInterval, HelloMultiplier: c.HelloMultiplier, HoldDown: c.HoldDown, Damping: c.Damping,
		Security: "open", EncryptRequired: c.Encrypt,
	}}
	if c.Secret {
		us.Config.Security = "secret"
	}
	st.Unicast = us

	members := u.dir.Members()
	rm := u.router.Members()
	links := map[uint64][]ctrl.Link{}
	for _, m := range rm {
		if _, ok := members[m.Addr]; !ok {
			members[m.Addr] = "?"
		}
	}
	for _, m := range rm {
		for _, l := range m.Links {
			name, ok := members[l.Neighbor]
			if !ok {
				name = c.FormatAddr(l.Neighbor)
			}
			links[m.Addr] = append(links[m.Addr], ctrl.Link{Neighbor: name, Addr: l.Neighbor, Cost: l.Cost})
		}
	}
	addrs := make([]uint64, 0, len(members))
	for a := range members {
		addrs = append(addrs, a)
	}
	sort.Slice(addrs, func(i, j int) bool { return addrs[i] < addrs[j] })
	names := map[uint64][]string{}
	for _, e := range u.dir.Snapshot() {
		names[e.Origin] = e.Names
		name, ok := members[e.Origin]
		if !ok {
			name = c.FormatAddr(e.Origin)
		}
		us.Directory = append(us.Directory, ctrl.DirectoryEntry{Origin: name, Names: append([]string(nil), e.Names...)})
	}
	sort.Slice(us.Directory, func(i, j int) bool { return us.Directory[i].Origin < us.Directory[j].Origin })
	for _, a := range addrs {
		us.Members = append(us.Members, ctrl.Member{Address: c.FormatAddr(a), Addr: a, IPCP: members[a], Self: a == u.addr,
			Names: append([]string(nil), names[a]...), Links: links[a]})
	}

	u.mu.Lock()
	adjs := make([]*adj, 0, len(u.adjList))
	for _, a := range u.adjList {
		adjs = append(adjs, a)
	}
	u.mu.Unlock()
	sort.Slice(adjs, func(i, j int) bool { return adjs[i].id < adjs[j].id })
	peerName := map[uint64]string{}
	adjPeer := map[uint64]string{}
	for _, a := range adjs {
		comp := a.comp
		if comp == "" {
			comp = "dt+mgmt"
		}
		s := a.ctr.Snapshot()
		us.Adjacencies = append(us.Adjacencies, ctrl.Adjacency{
			ID: a.id, Peer: a.peerName, Address: c.FormatAddr(a.peer), PeerAddr: a.peer, Lower: a.lower, Comp: comp,
			Cost: a.cost, Up: a.up.Load(), Since: a.since,
			PacketsIn: s.PacketsIn, PacketsOut: s.PacketsOut, BytesIn: s.BytesIn, BytesOut: s.BytesOut,
			DropNoRoute: s.DropNoRoute, DropTTL: s.DropTTL, DropMalformed: s.DropMalformed, DropQueueFull: s.DropQueueFull,
			ECNMarked: s.ECNMarked,
		})
		if cs := a.f.Crypto(); cs != nil {
			ad := &us.Adjacencies[len(us.Adjacencies)-1]
			ad.Sealed, ad.AuthFailures, ad.Replayed = true, cs.Auth+cs.Short, cs.Replayed
		}
		peerName[a.peer] = a.peerName
		adjPeer[a.id] = a.peerName
	}

	table := u.router.Table()
	dsts := make([]uint64, 0, len(table))
	for d := range table {
		dsts = append(dsts, d)
	}
	sort.Slice(dsts, func(i, j int) bool { return dsts[i] < dsts[j] })
	fib := u.fib.Snapshot()
	nameOf := func(a uint64) string {
		if n, ok := peerName[a]; ok {
			return n
		}
		if n, ok := members[a]; ok {
			return n
		}
		return c.FormatAddr(a)
	}
	for _, d := range dsts {
		r := table[d]
		rt := ctrl.Route{Dest: c.FormatAddr(d), Addr: d, IPCP: nameOf(d), Cost: r.Cost}
		for _, n := range r.NextHops {
			rt.NextHops = append(rt.NextHops, nameOf(n))
		}
		for _, n := range r.Alternates {
			rt.Alternates = append(rt.Alternates, nameOf(n))
		}
		for _, h := range fib[d].Primary {
			rt.Flows = append(rt.Flows, ctrl.RouteFlow{Adj: h.ID, Peer: adjPeer[h.ID]})
		}
		us.Routes = append(us.Routes, rt)
	}

	rs := u.router.Stats()
	msent, mr, ma, mx := u.arq.counters()
	u.mu.Lock()
	inTotal, inMembers := u.inTotal, len(u.inFlows)
	u.mu.Unlock()
	dirNewer, dirFlushes, dirRefused := u.dir.Counters()
	k := &us.Counters
	*k = ctrl.UnicastCounters{
		Forwarded: u.stats.fwd.Load(), Delivered: u.stats.local.Load(), NoRoute: u.stats.noRoute.Load(),
		TTLExpired: u.stats.ttl.Load(), Malformed: u.stats.malformed.Load(), NoEndpoint: u.stats.noEndpoint.Load(),
		MgmtSent: msent, MgmtResent: mr, MgmtAcked: ma, MgmtAbandoned: mx,
		FARepeated: u.stats.faRetries.Load(), FARepeatsAnswered: u.stats.faDuplicates.Load(),
		FARefused: u.stats.faRefused.Load(), FADropped: u.stats.faDropped.Load(),
		IncomingFlows: inTotal, IncomingMembers: inMembers, IncomingCap: maxAccepting, IncomingPerMember: maxAcceptingPerMember,
		AdjUp: u.stats.adjUp.Load(), AdjDown: u.stats.adjDown.Load(), Withdrawals: u.stats.withdrawals.Load(),
		SPFRuns: rs.SPFRuns, LastSPF: rs.LastSPF, SPFTime: rs.SPFTime, LastSPFTime: rs.LastSPFTime, LSUsIn: rs.LSUsReceived, LSUsStale: rs.LSUsStale, LSUsMalformed: rs.Malformed,
		RoutingOwnNewer: rs.OwnNewer, RoutingFlushes: rs.Flushes, RoutingRestarts: rs.Restarts, RoutingPurged: rs.Purged,
		DirOwnNewer: dirNewer, DirFlushes: dirFlushes, AddrConflicts: u.stats.addrConflicts.Load(),
		HandshakesRefused: u.stats.handshakesRefused.Load(), EnrollRefused: u.stats.enrollRefused.Load(),
		LSUsRefused: rs.LSUsRefused, DirRefused: dirRefused,
		Bends: u.stats.bends.Load(), BadLabels: u.stats.badLabel.Load(),
	}
	hs := u.handshakeStats()
	k.AuthRefused, k.HandshakesAuth, k.HandshakesReplayed = u.stats.authRefused.Load(), hs.Auth, hs.Replayed
	k.HandshakesMalformed, k.HandshakesEvicted, k.HandshakesFailed = hs.Malformed, hs.Evicted, hs.Failed
	if t := u.stats.lastFailover.Load(); t != 0 {
		k.LastFailover = time.Unix(0, t)
	}
	return st, nil
}

func (u *IPCP) countEndpoints() int {
	n := 0
	u.eps.Range(func(_, _ any) bool { n++; return true })
	return n
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
