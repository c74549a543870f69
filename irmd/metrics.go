package irmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ouro-net/ouro/lib/ctrl"
)

// The metrics endpoint: the counters of every IPCP of the host (their
// typed status, ctrl.Status) and the flows the IRMd knows, in the
// Prometheus text exposition format (version 0.0.4) at /metrics.
//
// The format is written here by hand rather than with
// github.com/prometheus/client_golang: what is exported is a snapshot
// taken per scrape (no registry of live collectors is needed), the
// format is a few lines of HELP, TYPE and samples, and the library
// would bring its own dependency tree (client_model, common, procfs,
// protobuf) into a daemon that otherwise needs msgpack and x/sys.
//
// Anyone who can reach the address can scrape it, so it is bounded:
// a scrape within metricsMinInterval of the last is served from that
// one (at most one collection a second, however many scrapers), one
// collection runs at a time, each IPCP gets metricsIPCPTimeout and the
// whole collection metricsScrapeTimeout, at most metricsMaxConns
// connections are open, and the HTTP server has header, read, write
// and idle timeouts. Only GET and HEAD of /metrics are served.

const (
	metricsMinInterval   = time.Second
	metricsIPCPTimeout   = 2 * time.Second
	metricsScrapeTimeout = 5 * time.Second
	metricsMaxConns      = 16
)

// metricsState is the running endpoint.
type metricsState struct {
	srv *http.Server
	ln  net.Listener

	mu          sync.Mutex // one collection at a time; guards at, body and collections
	at          time.Time
	body        []byte
	collections uint64
}

// ServeMetrics serves the counters at http://addr/metrics until the
// daemon closes, and returns the address it listens on (addr may have
// port 0). Use a loopback address unless the network is trusted.
func (d *Daemon) ServeMetrics(addr string) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	m := &metricsState{ln: ln}
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		body := d.scrape(r.Context(), m)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		if r.Method == http.MethodGet {
			w.Write(body)
		}
	})
	m.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       5 * time.Second,
		WriteTimeout:      metricsScrapeTimeout + 10*time.Second,
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    8 << 10,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	d.mu.Lock()
	if d.metrics != nil {
		d.mu.Unlock()
		ln.Close()
		return nil, errors.New("metrics: already serving")
	}
	select {
	case <-d.done:
		d.mu.Unlock()
		ln.Close()
		return nil, errors.New("metrics: daemon closed")
	default:
	}
	d.metrics = m
	d.mu.Unlock()
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		m.srv.Serve(&limitListener{Listener: ln, sem: make(chan struct{}, metricsMaxConns)})
	}()
	d.log.Info("metrics", "addr", ln.Addr().String())
	return ln.Addr(), nil
}

// stopMetrics closes the endpoint (Close calls it).
func (d *Daemon) stopMetrics() {
	d.mu.Lock()
	m := d.metrics
	d.mu.Unlock()
	if m != nil {
		m.srv.Close()
	}
}

// scrape returns the exposition, collected afresh unless the last one
// is younger than metricsMinInterval.
func (d *Daemon) scrape(ctx context.Context, m *metricsState) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.body != nil && time.Since(m.at) < metricsMinInterval {
		return m.body
	}
	ctx, cancel := context.WithTimeout(ctx, metricsScrapeTimeout)
	defer cancel()
	var b strings.Builder
	start := time.Now()
	m.collections++
	e := d.collect(ctx)
	e.add("ouro_irmd_scrape_collections_total", "counter", "Collections the metrics endpoint ran (scrapes within a second of the last share one).",
		strconv.FormatUint(m.collections, 10))
	e.add("ouro_irmd_scrape_duration_seconds", "gauge", "Time the IRMd took to collect these metrics.",
		strconv.FormatFloat(time.Since(start).Seconds(), 'g', -1, 64))
	e.write(&b)
	m.body, m.at = []byte(b.String()), time.Now()
	return m.body
}

// collect asks every IPCP in a layer for its status and lists the
// flows.
func (d *Daemon) collect(ctx context.Context) *exposition {
	e := newExposition()
	d.mu.Lock()
	type target struct {
		r     *ipcpRec
		layer string
	}
	var targets []target
	for _, r := range d.ipcps {
		if r.layer != "" && r.peer != nil {
			targets = append(targets, target{r, r.layer})
		}
	}
	d.mu.Unlock()
	sort.Slice(targets, func(i, j int) bool { return targets[i].r.name < targets[j].r.name })
	e.add("ouro_irmd_ipcps", "gauge", "IPCPs in a layer on this host.", strconv.Itoa(len(targets)))
	for _, t := range targets {
		lbl := []string{"layer", t.layer, "ipcp", t.r.name, "type", t.r.typ}
		cctx, cancel := context.WithTimeout(ctx, metricsIPCPTimeout)
		info, err := call(cctx, t.r, ctrl.IPCPDoShow, ctrl.LayerShow{Layer: t.layer})
		cancel()
		up := "1"
		if err != nil || info.Status == nil {
			up = "0"
		}
		e.add("ouro_ipcp_up", "gauge", "1 if the IPCP answered the status request of this scrape.", up, lbl...)
		if up == "0" {
			continue
		}
		addStatus(e, info.Status, lbl[:4])
	}
	for _, f := range flowCounts(d.listFlows(ctx)) {
		e.add("ouro_flows", "gauge", "Flows the IRMd knows, by layer, state and QoS.", strconv.Itoa(f.n),
			"layer", f.layer, "state", f.state, "qos", f.qos)
	}
	return e
}

type flowCount struct {
	layer, state, qos string
	n                 int
}

func flowCounts(l ctrl.FlowList) []flowCount {
	m := map[[3]string]int{}
	for _, f := range l.Flows {
		m[[3]string{f.Layer, f.State, f.QoS}]++
	}
	out := make([]flowCount, 0, len(m))
	for k, n := range m {
		out = append(out, flowCount{k[0], k[1], k[2], n})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.layer != b.layer {
			return a.layer < b.layer
		}
		if a.state != b.state {
			return a.state < b.state
		}
		return a.qos < b.qos
	})
	return out
}

// addStatus adds the metrics of one IPCP's status; lbl are its layer
// and ipcp labels.
func addStatus(e *exposition, s *ctrl.Status, lbl []string) {
	u64 := func(v uint64) string { return strconv.FormatUint(v, 10) }
	with := func(kv ...string) []string { return append(append([]string(nil), lbl...), kv...) }
	e.add("ouro_ipcp_goroutines", "gauge", "Goroutines of the IPCP process.", strconv.Itoa(s.Process.Goroutines), lbl...)
	e.add("ouro_ipcp_heap_bytes", "gauge", "Heap in use by the IPCP process.", u64(s.Process.HeapBytes), lbl...)
	e.add("ouro_ipcp_flows", "gauge", "Flows the IPCP serves to applications.", strconv.Itoa(s.Process.Flows), lbl...)
	keys := make([]string, 0, len(s.Counters))
	for k := range s.Counters {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		e.add("ouro_ipcp_counter", "untyped", "A named counter of an IPCP kind without a typed status.", u64(s.Counters[k]), with("name", k)...)
	}
	if s.Shim != nil {
		addShim(e, s.Shim, lbl)
	}
	u := s.Unicast
	if u == nil {
		return
	}
	k := u.Counters
	e.add("ouro_packets_forwarded_total", "counter", "Packets the IPCP forwarded to another member.", u64(k.Forwarded), lbl...)
	e.add("ouro_packets_delivered_total", "counter", "Packets the IPCP delivered to its own flows.", u64(k.Delivered), lbl...)
	const dropped = "Packets the IPCP dropped, by reason."
	e.add("ouro_packets_dropped_total", "counter", dropped, u64(k.NoRoute), with("reason", "no_route")...)
	e.add("ouro_packets_dropped_total", "counter", dropped, u64(k.TTLExpired), with("reason", "ttl_expired")...)
	e.add("ouro_packets_dropped_total", "counter", dropped, u64(k.Malformed), with("reason", "malformed")...)
	e.add("ouro_packets_dropped_total", "counter", dropped, u64(k.NoEndpoint), with("reason", "no_endpoint")...)
	up, down := 0, 0
	for _, a := range u.Adjacencies {
		if a.Up {
			up++
		} else {
			down++
		}
	}
	e.add("ouro_adjacencies", "gauge", "Adjacencies of the IPCP, by state.", strconv.Itoa(up), with("state", "up")...)
	e.add("ouro_adjacencies", "gauge", "Adjacencies of the IPCP, by state.", strconv.Itoa(down), with("state", "down")...)
	e.add("ouro_adjacency_changes_total", "counter", "Adjacencies that came up or went down.", u64(k.AdjUp), with("event", "up")...)
	e.add("ouro_adjacency_changes_total", "counter", "Adjacencies that came up or went down.", u64(k.AdjDown), with("event", "down")...)
	e.add("ouro_failover_withdrawals_total", "counter", "Own link-state updates issued because an adjacency went down (failover events).", u64(k.Withdrawals), lbl...)
	if !k.LastFailover.IsZero() {
		e.add("ouro_failover_last_timestamp_seconds", "gauge", "When the last failover happened.", unixSeconds(k.LastFailover), lbl...)
	}
	e.add("ouro_spf_runs_total", "counter", "Shortest-path computations run.", u64(k.SPFRuns), lbl...)
	if !k.LastSPF.IsZero() {
		e.add("ouro_spf_last_run_timestamp_seconds", "gauge", "When the last shortest-path computation ran.", unixSeconds(k.LastSPF), lbl...)
	}
	// A summary without quantiles: the sum and count of the run times.
	const spfTime = "Time the shortest-path computations took."
	e.addSample("ouro_spf_duration_seconds", "ouro_spf_duration_seconds_sum", "summary", spfTime, durSeconds(k.SPFTime), lbl...)
	e.addSample("ouro_spf_duration_seconds", "ouro_spf_duration_seconds_count", "summary", spfTime, u64(k.SPFRuns), lbl...)
	e.add("ouro_spf_last_duration_seconds", "gauge", "Time the last shortest-path computation took.", durSeconds(k.LastSPFTime), lbl...)
	const lsus = "Link-state updates received, by outcome."
	e.add("ouro_lsus_total", "counter", lsus, u64(k.LSUsIn), with("result", "received")...)
	e.add("ouro_lsus_total", "counter", lsus, u64(k.LSUsStale), with("result", "stale")...)
	e.add("ouro_lsus_total", "counter", lsus, u64(k.LSUsMalformed), with("result", "malformed")...)
	e.add("ouro_lsus_total", "counter", lsus, u64(k.LSUsRefused), with("result", "refused")...)
	const mgmt = "Management frames, by event."
	for _, p := range []struct {
		ev string
		v  uint64
	}{{"sent", k.MgmtSent}, {"resent", k.MgmtResent}, {"acked", k.MgmtAcked}, {"abandoned", k.MgmtAbandoned}} {
		e.add("ouro_mgmt_frames_total", "counter", mgmt, u64(p.v), with("event", p.ev)...)
	}
	const fa = "Flow allocation requests, by event."
	for _, p := range []struct {
		ev string
		v  uint64
	}{{"repeated", k.FARepeated}, {"repeat_answered", k.FARepeatsAnswered}, {"refused", k.FARefused}, {"dropped", k.FADropped}} {
		e.add("ouro_flow_allocations_total", "counter", fa, u64(p.v), with("event", p.ev)...)
	}
	e.add("ouro_incoming_flows", "gauge", "Flows other members opened to this IPCP.", strconv.Itoa(k.IncomingFlows), lbl...)
	const hard = "Hostile or conflicting input the IPCP caught, by event."
	for _, p := range []struct {
		ev string
		v  uint64
	}{
		{"routing_own_newer", k.RoutingOwnNewer}, {"routing_flush", k.RoutingFlushes}, {"routing_restart", k.RoutingRestarts},
		{"routing_purged", k.RoutingPurged}, {"directory_own_newer", k.DirOwnNewer}, {"directory_flush", k.DirFlushes},
		{"address_conflict", k.AddrConflicts}, {"handshake_refused", k.HandshakesRefused}, {"enrollment_refused", k.EnrollRefused},
		{"directory_refused", k.DirRefused},
	} {
		e.add("ouro_hardening_events_total", "counter", hard, u64(p.v), with("event", p.ev)...)
	}
	for _, a := range u.Adjacencies {
		al := with("peer", a.Peer, "lower", a.Lower, "adjacency", u64(a.ID))
		state := "0"
		if a.Up {
			state = "1"
		}
		e.add("ouro_adjacency_up", "gauge", "1 while the adjacency is up.", state, al...)
		e.add("ouro_adjacency_packets_total", "counter", "Packets over the adjacency's lower flow, by direction.", u64(a.PacketsIn), append(al, "direction", "in")...)
		e.add("ouro_adjacency_packets_total", "counter", "Packets over the adjacency's lower flow, by direction.", u64(a.PacketsOut), append(al, "direction", "out")...)
		e.add("ouro_adjacency_bytes_total", "counter", "Bytes over the adjacency's lower flow, by direction.", u64(a.BytesIn), append(al, "direction", "in")...)
		e.add("ouro_adjacency_bytes_total", "counter", "Bytes over the adjacency's lower flow, by direction.", u64(a.BytesOut), append(al, "direction", "out")...)
		const adrop = "Packets dropped on the adjacency, by reason."
		e.add("ouro_adjacency_dropped_total", "counter", adrop, u64(a.DropNoRoute), append(al, "reason", "no_route")...)
		e.add("ouro_adjacency_dropped_total", "counter", adrop, u64(a.DropTTL), append(al, "reason", "ttl_expired")...)
		e.add("ouro_adjacency_dropped_total", "counter", adrop, u64(a.DropMalformed), append(al, "reason", "malformed")...)
		e.add("ouro_adjacency_dropped_total", "counter", adrop, u64(a.DropQueueFull), append(al, "reason", "queue_full")...)
		e.add("ouro_adjacency_ecn_marked_total", "counter", "Packets sent ECN-marked on the adjacency because its egress was congested.", u64(a.ECNMarked), al...)
	}
}

// addShim adds the metrics of a shim's status (udp4/udp6, eth-dix,
// tap): its carrier, flows, caps in use and its counters, the drops by
// reason and the rest by event, under the names the text view shows
// (with '_' for '-').
func addShim(e *exposition, s *ctrl.ShimStatus, lbl []string) {
	with := func(kv ...string) []string { return append(append([]string(nil), lbl...), kv...) }
	carrier := "0"
	if s.Carrier {
		carrier = "1"
	}
	e.add("ouro_shim_carrier", "gauge", "1 while the shim's medium has carrier.", carrier, lbl...)
	e.add("ouro_shim_flows", "gauge", "Flows of the shim, in every state.", strconv.Itoa(s.FlowCount), lbl...)
	e.add("ouro_shim_pending_flows", "gauge", "Incoming flows not yet confirmed.", strconv.Itoa(s.Limits.Pending), lbl...)
	keys := make([]string, 0, len(s.Counters))
	for k := range s.Counters {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := strconv.FormatUint(s.Counters[k], 10)
		name := strings.ReplaceAll(k, "-", "_")
		if reason, ok := strings.CutPrefix(name, "drop_"); ok {
			e.add("ouro_shim_dropped_total", "counter", "Frames the shim dropped, by reason.", v, with("reason", reason)...)
			continue
		}
		e.add("ouro_shim_events_total", "counter", "The shim's other counters (frames, bytes, errors, refusals), by event.", v, with("event", name)...)
	}
}

// durSeconds formats a duration in seconds (to the microsecond).
func durSeconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', 6, 64)
}

func unixSeconds(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixNano())/1e9, 'f', 3, 64)
}

// exposition collects samples by metric family, in the order families
// first appear, and writes them in the text format.
type exposition struct {
	fams  []*family
	index map[string]*family
}

type family struct {
	name, typ, help string
	lines           []string
}

func newExposition() *exposition { return &exposition{index: map[string]*family{}} }

// add records one sample of metric name (its type and help are set by
// the first sample); labels are name, value pairs.
func (e *exposition) add(name, typ, help, value string, labels ...string) {
	e.addSample(name, name, typ, help, value, labels...)
}

// addSample records one sample named sample of the family name: a
// summary's family ouro_x has the samples ouro_x_sum and ouro_x_count.
func (e *exposition) addSample(name, sample, typ, help, value string, labels ...string) {
	f := e.index[name]
	if f == nil {
		f = &family{name: name, typ: typ, help: help}
		e.index[name] = f
		e.fams = append(e.fams, f)
	}
	var b strings.Builder
	b.WriteString(sample)
	if len(labels) > 0 {
		b.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(labels[i])
			b.WriteString(`="`)
			b.WriteString(escapeLabel(labels[i+1]))
			b.WriteByte('"')
		}
		b.WriteByte('}')
	}
	b.WriteByte(' ')
	b.WriteString(value)
	f.lines = append(f.lines, b.String())
}

func (e *exposition) write(w io.Writer) {
	for _, f := range e.fams {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", f.name, escapeHelp(f.help), f.name, f.typ)
		for _, l := range f.lines {
			io.WriteString(w, l)
			io.WriteString(w, "\n")
		}
	}
}

// escapeLabel escapes a label value: backslash, double quote and line
// feed.
func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

// escapeHelp escapes a HELP text: backslash and line feed.
func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

// limitListener caps the connections open at once; Accept waits for a
// slot.
type limitListener struct {
	net.Listener
	sem chan struct{}
}

func (l *limitListener) Accept() (net.Conn, error) {
	l.sem <- struct{}{}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
