package unicast

import (
	"context"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Show describes the layer as this member sees it: configuration,
// members, adjacencies and routes with their next-hop sets.
func (u *IPCP) Show(_ context.Context) (string, error) {
	if !u.isJoined() {
		return "not in a layer yet\n", nil
	}
	var b strings.Builder
	c := u.cfg
	fmt.Fprintf(&b, "address %s, routing %s, addr %d B, eid %d B, ttl %d, hello %v x %d, holddown %v, damping %v\n",
		c.FormatAddr(u.addr), c.Routing, c.AddrSize, c.EIDSize, c.TTL, c.HelloInterval, c.HelloMultiplier, c.HoldDown, c.Damping)

	members := u.dir.Members()
	rm := u.router.Members()
	for _, m := range rm {
		if _, ok := members[m.Addr]; !ok {
			members[m.Addr] = "?"
		}
	}
	addrs := make([]uint64, 0, len(members))
	for a := range members {
		addrs = append(addrs, a)
	}
	sort.Slice(addrs, func(i, j int) bool { return addrs[i] < addrs[j] })
	fmt.Fprintf(&b, "\nmembers (%d):\n", len(addrs))
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  ADDRESS\tIPCP\tNAMES")
	snap := u.dir.Snapshot()
	names := map[uint64]string{}
	for _, e := range snap {
		names[e.Origin] = strings.Join(e.Names, ",")
	}
	for _, a := range addrs {
		self := ""
		if a == u.addr {
			self = " (self)"
		}
		fmt.Fprintf(tw, "  %s\t%s%s\t%s\n", c.FormatAddr(a), members[a], self, dash(names[a]))
	}
	tw.Flush()

	fmt.Fprintf(&b, "\nadjacencies:\n")
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  ID\tPEER\tADDRESS\tLOWER\tCOMP\tCOST\tSTATE\tPKTS IN/OUT\tDROPS\tUP FOR")
	u.mu.Lock()
	adjs := make([]*adj, 0, len(u.adjList))
	for _, a := range u.adjList {
		adjs = append(adjs, a)
	}
	u.mu.Unlock()
	sort.Slice(adjs, func(i, j int) bool { return adjs[i].id < adjs[j].id })
	peerName := map[uint64]string{}
	adjName := map[uint64]string{}
	for _, a := range adjs {
		st := "up"
		if !a.up.Load() {
			st = "down"
		}
		comp := a.comp
		if comp == "" {
			comp = "dt+mgmt"
		}
		s := a.ctr.Snapshot()
		fmt.Fprintf(tw, "  #%d\t%s\t%s\t%s\t%s\t%d\t%s\t%d/%d\t%d\t%v\n", a.id, a.peerName, c.FormatAddr(a.peer), a.lower,
			comp, a.cost, st, s.PacketsIn, s.PacketsOut, s.Drops(), time.Since(a.since).Round(time.Millisecond))
		peerName[a.peer] = a.peerName
		adjName[a.id] = fmt.Sprintf("%s#%d", a.peerName, a.id)
	}
	tw.Flush()

	fmt.Fprintf(&b, "\nroutes:\n")
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  DEST\tIPCP\tCOST\tNEXT HOPS\tALTERNATES\tFLOWS (FIB)")
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
		var nh, alt, fl []string
		for _, n := range r.NextHops {
			nh = append(nh, nameOf(n))
		}
		for _, n := range r.Alternates {
			alt = append(alt, nameOf(n))
		}
		for _, h := range fib[d].Primary {
			fl = append(fl, adjName[h.ID])
		}
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\t%s\t%s\n", c.FormatAddr(d), nameOf(d), r.Cost,
			dash(strings.Join(nh, ",")), dash(strings.Join(alt, ",")), dash(strings.Join(fl, ",")))
	}
	tw.Flush()

	rs := u.router.Stats()
	fmt.Fprintf(&b, "\ncounters: forwarded %d, delivered %d, no route %d, ttl expired %d, malformed %d, no endpoint %d\n",
		u.stats.fwd.Load(), u.stats.local.Load(), u.stats.noRoute.Load(), u.stats.ttl.Load(), u.stats.malformed.Load(), u.stats.noEndpoint.Load())
	msent, mr, ma, mx := u.arq.counters()
	fmt.Fprintf(&b, "mgmt frames: sent %d, resent %d, acked %d, abandoned %d\n", msent, mr, ma, mx)
	u.mu.Lock()
	inTotal, inMembers := u.inTotal, len(u.inFlows)
	u.mu.Unlock()
	fmt.Fprintf(&b, "flow allocation: requests repeated %d, repeats answered %d, refused (cap) %d, dropped (no route back) %d; incoming flows %d from %d members (cap %d, %d per member)\n",
		u.stats.faRetries.Load(), u.stats.faDuplicates.Load(), u.stats.faRefused.Load(), u.stats.faDropped.Load(),
		inTotal, inMembers, maxAccepting, maxAcceptingPerMember)
	last := "never"
	if t := u.stats.lastFailover.Load(); t != 0 {
		last = time.Unix(0, t).Format("15:04:05.000")
	}
	fmt.Fprintf(&b, "failover: adjacencies up %d, down %d, withdrawals %d, last %s; spf runs %d (last %s), lsus in %d (stale %d, malformed %d)\n",
		u.stats.adjUp.Load(), u.stats.adjDown.Load(), u.stats.withdrawals.Load(), last,
		rs.SPFRuns, rs.LastSPF.Format("15:04:05.000"), rs.LSUsReceived, rs.LSUsStale, rs.Malformed)
	dirNewer, dirFlushes, dirRefused := u.dir.Counters()
	fmt.Fprintf(&b, "hardening: routing own-newer %d, flushes %d, restarts %d, purged %d; directory own-newer %d, flushes %d; address conflicts %d; handshakes refused %d; enrollments refused %d; over bounds: lsus %d, directory entries %d\n",
		rs.OwnNewer, rs.Flushes, rs.Restarts, rs.Purged, dirNewer, dirFlushes, u.stats.addrConflicts.Load(),
		u.stats.handshakesRefused.Load(), u.stats.enrollRefused.Load(), rs.LSUsRefused, dirRefused)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Fprintf(&b, "process: goroutines %d, heap %d KiB, flows %d\n", runtime.NumGoroutine(), ms.HeapAlloc>>10, u.countEndpoints())
	return b.String(), nil
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
