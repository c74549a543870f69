package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ouro-net/ouro/internal/testenv"
	"github.com/ouro-net/ouro/lib/ctrl"
)

// TestLayerStatusJSONAndDot: on the chain A-B-C, `irm layer show net
// --json` at B reports the three members, B's two adjacencies up, and
// routes; a ping from A to a name at C moves B's forwarded counter;
// the text view says the same; `--dot` draws the three members and
// the links with their costs (and Graphviz accepts it when installed);
// `irm flow list --json` prints a list.
func TestLayerStatusJSONAndDot(t *testing.T) {
	tp := layerTopo(t, []string{"a", "b", "c"}, [][2]string{{"b", "a"}, {"c", "b"}}, nil)
	waitRouteIs(t, tp, "a", "c", "b", "-")
	u := layerStatus(t, tp, "b")
	if len(u.Members) != 3 || !u.Self().Self || u.Self().IPCP != "b" {
		t.Fatalf("members at b: %+v", u.Members)
	}
	for _, p := range []string{"a", "c"} {
		adjs := u.AdjacenciesTo(p)
		if len(adjs) != 1 || !adjs[0].Up || adjs[0].Lower == "" {
			t.Fatalf("b's adjacencies to %s: %+v", p, adjs)
		}
		if r, ok := u.Route(p); !ok || len(r.NextHops) != 1 || r.NextHops[0] != p || len(r.Flows) != 1 {
			t.Fatalf("b's route to %s: %+v", p, r)
		}
	}
	before := u.Counters.Forwarded
	addr, err := tp.Hosts["b"].Daemon.ServeMetrics("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + addr.String() + "/metrics"
	fwd := `ouro_packets_forwarded_total{layer="net",ipcp="b"}`
	scraped0 := metricValue(t, scrape(t, url), fwd)

	pingServer(t, tp, "c", "far")
	pingFrom(t, tp, "a", "far", 20)
	after := layerStatus(t, tp, "b").Counters.Forwarded
	if after < before+40 {
		t.Fatalf("b forwarded %d packets during 20 pings a-c (before %d, after %d), want at least 40", after-before, before, after)
	}
	// The scrape sees the forwarded pings too (a scrape within a second
	// of the last is served from it: poll).
	var text string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		text = scrape(t, url)
		if metricValue(t, text, fwd) >= scraped0+40 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics: %s did not move by 40 from %d:\n%s", fwd, scraped0, text)
		}
	}
	checkExposition(t, text)
	for _, want := range []string{
		`ouro_adjacencies{layer="net",ipcp="b",state="up"} 2`,
		`ouro_adjacency_changes_total{layer="net",ipcp="b",event="up"} `,
		`ouro_spf_runs_total{layer="net",ipcp="b"} `,
		`ouro_packets_dropped_total{layer="net",ipcp="b",reason="no_route"} `,
		`ouro_ipcp_up{layer="udp1",ipcp="b.udp1",type="udp4"} 1`,
		`ouro_failover_withdrawals_total{layer="net",ipcp="b"} `,
		`ouro_shim_carrier{layer="udp1",ipcp="b.udp1"} 1`,
		`ouro_shim_dropped_total{layer="udp1",ipcp="b.udp1",reason="bad_version"} `,
		`ouro_shim_events_total{layer="udp1",ipcp="b.udp1",event="rx_datagrams"} `,
	} {
		if !strings.Contains(text, want) {
			t.Fatalf("metrics lack %q:\n%s", want, text)
		}
	}
	// SPF runs and the time they took: a summary whose count is the
	// runs and whose sum is above zero once one ran.
	runs := metricValue(t, text, `ouro_spf_runs_total{layer="net",ipcp="b"}`)
	if n := metricValue(t, text, `ouro_spf_duration_seconds_count{layer="net",ipcp="b"}`); runs == 0 || n != runs {
		t.Fatalf("metrics: %d SPF runs, duration count %d:\n%s", runs, n, text)
	}
	if sum := metricFloat(t, text, `ouro_spf_duration_seconds_sum{layer="net",ipcp="b"}`); sum <= 0 {
		t.Fatalf("metrics: SPF runs took %g s together, want more than 0:\n%s", sum, text)
	}
	metricFloat(t, text, `ouro_spf_last_duration_seconds{layer="net",ipcp="b"}`)
	if text := irmAt(t, tp, "b", "layer", "show", "net"); !strings.Contains(text, "members (3):") || !strings.Contains(text, "counters: forwarded ") {
		t.Fatalf("text view at b:\n%s", text)
	}

	dot := irmAt(t, tp, "b", "layer", "show", "net", "--dot")
	if !strings.HasPrefix(dot, `digraph "net" {`) || strings.Count(dot, "[label=") < 3+4 || !strings.Contains(dot, "style=bold") {
		t.Fatalf("dot at b lacks members or links:\n%s", dot)
	}
	for _, m := range u.Members {
		if !strings.Contains(dot, `"`+m.Address+`" [label="`+m.IPCP+`\n`+m.Address+`"`) {
			t.Fatalf("dot lacks member %s:\n%s", m.IPCP, dot)
		}
	}
	if path, err := exec.LookPath("dot"); err != nil {
		t.Log("no Graphviz dot program: the output is not checked by Graphviz")
	} else {
		cmd := exec.Command(path, "-Tsvg")
		cmd.Stdin = strings.NewReader(dot)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil || !strings.Contains(out.String(), "<svg") {
			t.Fatalf("dot -Tsvg refused the graph: %v %s\n%s", err, errb.String(), dot)
		}
	}

	var flows []ctrl.FlowStat
	if out := irmAt(t, tp, "c", "flow", "list", "--json"); json.Unmarshal([]byte(out), &flows) != nil || !strings.HasPrefix(strings.TrimSpace(out), "[") {
		t.Fatalf("flow list --json at c:\n%s", out)
	}
	if out, code := testenv.Run(t, "", tp.Hosts["b"].Dir, "irm", "layer", "show", "net", "--json", "--dot"); code != 2 {
		t.Fatalf("--json with --dot: exit %d, want 2 (usage)\n%s", code, out)
	}
}

// scrape GETs the metrics page.
func scrape(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{Timeout: 20 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %v %s", err, resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Fatalf("scrape: content type %q", ct)
	}
	return string(b)
}

// metricValue returns the value of the sample that starts with series
// (metric name and labels, in the order written).
func metricValue(t *testing.T, text, series string) uint64 {
	t.Helper()
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				t.Fatalf("sample %q: %v", l, err)
			}
			return n
		}
	}
	t.Fatalf("no sample %s in:\n%s", series, text)
	return 0
}

// metricFloat returns the value of one sample that need not be whole.
func metricFloat(t *testing.T, text, series string) float64 {
	t.Helper()
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("sample %q: %v", l, err)
			}
			return f
		}
	}
	t.Fatalf("no sample %s in:\n%s", series, text)
	return 0
}

// expoLine is one line of the text exposition format: a comment
// (HELP or TYPE) or a sample with optional labels.
var expoLine = regexp.MustCompile(`^(# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*|# TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|summary|untyped)|` +
	`[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\.)*"(,[a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\.)*")*\})? [-+0-9.eE]+)$`)

// checkExposition checks every line against the format and that each
// family has one HELP and one TYPE line, before its samples.
func checkExposition(t *testing.T, text string) {
	t.Helper()
	typed := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if !expoLine.MatchString(l) {
			t.Fatalf("not exposition format: %q", l)
		}
		if name, ok := strings.CutPrefix(l, "# TYPE "); ok {
			name = strings.Fields(name)[0]
			if typed[name] {
				t.Fatalf("two TYPE lines for %s", name)
			}
			typed[name] = true
			continue
		}
		if strings.HasPrefix(l, "#") {
			continue
		}
		name := l[:strings.IndexAny(l, "{ ")]
		if base, ok := strings.CutSuffix(name, "_sum"); ok && typed[base] {
			name = base
		} else if base, ok := strings.CutSuffix(name, "_count"); ok && typed[base] {
			name = base
		}
		if !typed[name] {
			t.Fatalf("sample before its TYPE line: %q", l)
		}
	}
}

// TestMetricsScrapeBounded: 40 scrapes at once of a host's metrics are
// all answered and share at most two collections (a scrape within a
// second of the last reuses it); a POST is refused; irm daemon
// --metrics with a bad address fails with an error naming it.
func TestMetricsScrapeBounded(t *testing.T) {
	tp := layerTopo(t, []string{"a", "b"}, [][2]string{{"b", "a"}}, nil)
	addr, err := tp.Hosts["a"].Daemon.ServeMetrics("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + addr.String() + "/metrics"
	first := metricValue(t, scrape(t, url), "ouro_irmd_scrape_collections_total")
	var wg sync.WaitGroup
	texts := make([]string, 40)
	for i := range texts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(url)
			if err != nil {
				t.Errorf("scrape %d: %v", i, err)
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			texts[i] = string(b)
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	last := first
	for _, x := range texts {
		last = max(last, metricValue(t, x, "ouro_irmd_scrape_collections_total"))
	}
	if last > first+2 {
		t.Fatalf("40 concurrent scrapes ran %d collections, want at most 2", last-first)
	}
	resp, err := http.Post(url, "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /metrics: %s", resp.Status)
	}
	if out, code := testenv.Run(t, "", t.TempDir(), "irm", "daemon", "--metrics", "256.0.0.1:1"); code == 0 || !strings.Contains(out, "metrics") {
		t.Fatalf("irm daemon with a bad metrics address: exit %d\n%s", code, out)
	}
}

// TestDaemonMetricsFlag: `irm daemon --metrics 127.0.0.1:0` serves the
// metrics (the address is in its log); an IPCP bootstrapped through the
// CLI appears in them.
func TestDaemonMetricsFlag(t *testing.T) {
	dir := testenv.ShortTempDir(t)
	p := testenv.Start(t, "", dir, "irm", "daemon", "--rundir", dir, "--metrics", "127.0.0.1:0")
	var url string
	for deadline := time.Now().Add(10 * time.Second); url == ""; time.Sleep(20 * time.Millisecond) {
		if m := regexp.MustCompile(`metrics: addr=(127\.0\.0\.1:\d+)`).FindStringSubmatch(p.Out.String()); m != nil {
			url = "http://" + m[1] + "/metrics"
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon did not log its metrics address:\n%s", p.Out.String())
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, code := testenv.Run(t, "", dir, "irm", "ipcp", "list"); code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the daemon does not answer")
		}
	}
	testenv.MustRun(t, "", dir, "irm", "ipcp", "bootstrap", "type", "local", "name", "lo", "layer", "lo")
	text := scrape(t, url)
	checkExposition(t, text)
	if metricValue(t, text, `ouro_ipcp_up{layer="lo",ipcp="lo",type="local"}`) != 1 {
		t.Fatalf("the local IPCP is not up in the metrics:\n%s", text)
	}
}
