package ctrl

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Render returns the text `irm layer show` prints below its header
// line: the typed status rendered, or the kind's own text.
func (i LayerInfo) Render() string {
	var b strings.Builder
	if i.Text == "" && (i.Status == nil || (i.Status.Unicast == nil && i.Status.Local == nil && len(i.Status.Counters) == 0)) {
		return "not in a layer yet\n"
	}
	if i.Status != nil {
		i.Status.WriteText(&b)
	}
	if i.Text != "" {
		b.WriteString(i.Text)
		if !strings.HasSuffix(i.Text, "\n") {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// WriteText renders s as text.
func (s *Status) WriteText(w io.Writer) {
	switch {
	case s.Unicast != nil:
		s.Unicast.writeText(w, s.At)
		fmt.Fprintf(w, "process: goroutines %d, heap %d KiB, flows %d\n", s.Process.Goroutines, s.Process.HeapBytes>>10, s.Process.Flows)
	case s.Local != nil:
		fmt.Fprintf(w, "names (%d): %s\nflows %d\n", len(s.Local.Names), dash(strings.Join(s.Local.Names, ",")), s.Local.Flows)
		fmt.Fprintf(w, "process: goroutines %d, heap %d KiB\n", s.Process.Goroutines, s.Process.HeapBytes>>10)
	}
	if len(s.Counters) > 0 {
		keys := make([]string, 0, len(s.Counters))
		for k := range s.Counters {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s %d", k, s.Counters[k]))
		}
		fmt.Fprintf(w, "counters: %s\n", strings.Join(parts, ", "))
	}
}

func (s *UnicastStatus) writeText(w io.Writer, at time.Time) {
	c := s.Config
	fmt.Fprintf(w, "address %s, routing %s, addr %d B, eid %d B, ttl %d, hello %v x %d, holddown %v, damping %v\n",
		c.Address, c.Routing, c.AddrSize, c.EIDSize, c.TTL, c.HelloInterval, c.HelloMultiplier, c.HoldDown, c.Damping)

	fmt.Fprintf(w, "\nmembers (%d):\n", len(s.Members))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  ADDRESS\tIPCP\tNAMES")
	for _, m := range s.Members {
		self := ""
		if m.Self {
			self = " (self)"
		}
		fmt.Fprintf(tw, "  %s\t%s%s\t%s\n", m.Address, m.IPCP, self, dash(strings.Join(m.Names, ",")))
	}
	tw.Flush()

	fmt.Fprintf(w, "\nadjacencies:\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  ID\tPEER\tADDRESS\tLOWER\tCOMP\tCOST\tSTATE\tPKTS IN/OUT\tDROPS\tUP FOR")
	for _, a := range s.Adjacencies {
		fmt.Fprintf(tw, "  #%d\t%s\t%s\t%s\t%s\t%d\t%s\t%d/%d\t%d\t%v\n", a.ID, a.Peer, a.Address, a.Lower,
			a.Comp, a.Cost, a.State(), a.PacketsIn, a.PacketsOut, a.Drops(), at.Sub(a.Since).Round(time.Millisecond))
	}
	tw.Flush()

	fmt.Fprintf(w, "\nroutes:\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  DEST\tIPCP\tCOST\tNEXT HOPS\tALTERNATES\tFLOWS (FIB)")
	for _, r := range s.Routes {
		var fl []string
		for _, f := range r.Flows {
			fl = append(fl, fmt.Sprintf("%s#%d", f.Peer, f.Adj))
		}
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\t%s\t%s\n", r.Dest, r.IPCP, r.Cost,
			dash(strings.Join(r.NextHops, ",")), dash(strings.Join(r.Alternates, ",")), dash(strings.Join(fl, ",")))
	}
	tw.Flush()

	k := s.Counters
	fmt.Fprintf(w, "\ncounters: forwarded %d, delivered %d, no route %d, ttl expired %d, malformed %d, no endpoint %d\n",
		k.Forwarded, k.Delivered, k.NoRoute, k.TTLExpired, k.Malformed, k.NoEndpoint)
	fmt.Fprintf(w, "path bending: bends %d, bad labels dropped %d\n", k.Bends, k.BadLabels)
	fmt.Fprintf(w, "mgmt frames: sent %d, resent %d, acked %d, abandoned %d\n", k.MgmtSent, k.MgmtResent, k.MgmtAcked, k.MgmtAbandoned)
	fmt.Fprintf(w, "flow allocation: requests repeated %d, repeats answered %d, refused (cap) %d, dropped (no route back) %d; incoming flows %d from %d members (cap %d, %d per member)\n",
		k.FARepeated, k.FARepeatsAnswered, k.FARefused, k.FADropped, k.IncomingFlows, k.IncomingMembers, k.IncomingCap, k.IncomingPerMember)
	last := "never"
	if !k.LastFailover.IsZero() {
		last = k.LastFailover.Format("15:04:05.000")
	}
	fmt.Fprintf(w, "failover: adjacencies up %d, down %d, withdrawals %d, last %s; spf runs %d (last %s, took %s, all %s), lsus in %d (stale %d, malformed %d)\n",
		k.AdjUp, k.AdjDown, k.Withdrawals, last, k.SPFRuns, k.LastSPF.Format("15:04:05.000"), k.LastSPFTime, k.SPFTime, k.LSUsIn, k.LSUsStale, k.LSUsMalformed)
	fmt.Fprintf(w, "hardening: routing own-newer %d, flushes %d, restarts %d, purged %d; directory own-newer %d, flushes %d; address conflicts %d; handshakes refused %d; enrollments refused %d; over bounds: lsus %d, directory entries %d\n",
		k.RoutingOwnNewer, k.RoutingFlushes, k.RoutingRestarts, k.RoutingPurged, k.DirOwnNewer, k.DirFlushes, k.AddrConflicts,
		k.HandshakesRefused, k.EnrollRefused, k.LSUsRefused, k.DirRefused)
	if c.Security != "" {
		enc := ""
		if c.EncryptRequired {
			enc = ", flows encrypt required"
		}
		fmt.Fprintf(w, "security: layer %s%s; joiners without the secret refused %d; key exchanges refused %d (auth failed %d, replayed %d, malformed %d, evicted %d)\n",
			c.Security, enc, k.AuthRefused, k.HandshakesFailed, k.HandshakesAuth, k.HandshakesReplayed, k.HandshakesMalformed, k.HandshakesEvicted)
		for _, a := range s.Adjacencies {
			if a.Sealed {
				fmt.Fprintf(w, "  sealed #%d to %s: auth failures %d, replayed %d\n", a.ID, a.Peer, a.AuthFailures, a.Replayed)
			}
		}
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// WriteDot renders the layer's graph for Graphviz: one node per member
// (its IPCP name and address; this member drawn bold) and one edge per
// link a member announces, labelled with its cost.
func (s *UnicastStatus) WriteDot(w io.Writer, layer string) {
	fmt.Fprintf(w, "digraph %s {\n", dotQuote(layer))
	fmt.Fprintf(w, "  label=%s;\n  node [shape=box];\n", dotQuote("layer "+layer))
	for _, m := range s.Members {
		style := ""
		if m.Self {
			style = ", style=bold"
		}
		fmt.Fprintf(w, "  %s [label=%s%s];\n", dotQuote(m.Address), dotQuote(m.IPCP+"\n"+m.Address), style)
	}
	node := make(map[uint64]string, len(s.Members))
	for _, m := range s.Members {
		node[m.Addr] = m.Address
	}
	for _, m := range s.Members {
		for _, l := range m.Links {
			to, ok := node[l.Addr]
			if !ok {
				to = strconv.FormatUint(l.Addr, 16)
			}
			fmt.Fprintf(w, "  %s -> %s [label=\"%d\"];\n", dotQuote(m.Address), dotQuote(to), l.Cost)
		}
	}
	fmt.Fprintln(w, "}")
}

// dotQuote quotes s as a DOT string (backslashes and quotes escaped,
// newlines as \n).
func dotQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", "")
	return `"` + r.Replace(s) + `"`
}
