package ctrl

import (
	"strings"
	"testing"
	"time"
)

func sampleInfo() LayerInfo {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return LayerInfo{Layer: "net", IPCP: "a", Type: "unicast", Status: &Status{At: at,
		Process: ProcessStatus{Goroutines: 7, HeapBytes: 3 << 10, Flows: 1},
		Unicast: &UnicastStatus{
			Config: UnicastConfig{Address: "0000000a", Addr: 10, Routing: "link-state", AddrSize: 4, EIDSize: 8, TTL: 60},
			Members: []Member{
				{Address: "0000000a", Addr: 10, IPCP: "a", Self: true, Links: []Link{{Neighbor: "b", Addr: 11, Cost: 1}}},
				{Address: "0000000b", Addr: 11, IPCP: `b"x`, Names: []string{"svc"}, Links: []Link{{Neighbor: "a", Addr: 10, Cost: 1}, {Addr: 99, Cost: 5}}},
			},
			Adjacencies: []Adjacency{{ID: 1, Peer: "b", Address: "0000000b", PeerAddr: 11, Lower: "udp", Comp: "dt+mgmt", Cost: 1, Up: true,
				Since: at.Add(-1500 * time.Millisecond), PacketsIn: 4, PacketsOut: 5, DropTTL: 2}},
			Routes:   []Route{{Dest: "0000000b", Addr: 11, IPCP: "b", Cost: 1, NextHops: []string{"b"}, Flows: []RouteFlow{{Adj: 1, Peer: "b"}}}},
			Counters: UnicastCounters{Forwarded: 12, Delivered: 3, TTLExpired: 1, SPFRuns: 4, SPFTime: 2 * time.Millisecond, LastSPFTime: 300 * time.Microsecond},
		}}}
}

// TestRenderText: the text users see, section by section, from the
// typed status (the layout `irm layer show` has always printed).
func TestRenderText(t *testing.T) {
	got := sampleInfo().Render()
	for _, want := range []string{
		"address 0000000a, routing link-state, addr 4 B, eid 8 B, ttl 60,",
		"\nmembers (2):\n  ADDRESS   IPCP      NAMES\n  0000000a  a (self)  -\n",
		"  #1  b     0000000b  udp    dt+mgmt  1     up     4/5          2      1.5s\n",
		"  0000000b  b     1     b          -           b#1\n",
		"counters: forwarded 12, delivered 3, no route 0, ttl expired 1,",
		"failover: adjacencies up 0, down 0, withdrawals 0, last never;",
		"spf runs 4 (last 00:00:00.000, took 300µs, all 2ms)",
		"process: goroutines 7, heap 3 KiB, flows 1\n",
	} {
		if !strings.Contains(got, want) {
			t.Fatalf("render lacks %q:\n%s", want, got)
		}
	}
	if got := (LayerInfo{Layer: "net"}).Render(); got != "not in a layer yet\n" {
		t.Fatalf("empty status renders %q", got)
	}
	if got := (LayerInfo{Text: "shim text"}).Render(); got != "shim text\n" {
		t.Fatalf("a kind's own text renders %q", got)
	}
}

// TestStatusRoundTrip: the status survives the control protocol's
// body encoding.
func TestStatusRoundTrip(t *testing.T) {
	in := sampleInfo()
	b, err := Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out LayerInfo
	if err := Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out.Render() != in.Render() {
		t.Fatalf("round trip changed the status:\n%s\nvs\n%s", out.Render(), in.Render())
	}
}

// TestWriteDot: one node per member, one edge per announced link with
// its cost, names quoted (a quote in a name is escaped), an unknown
// far end by its address.
func TestWriteDot(t *testing.T) {
	var b strings.Builder
	sampleInfo().Status.Unicast.WriteDot(&b, "net")
	got := b.String()
	for _, want := range []string{
		"digraph \"net\" {\n",
		`  "0000000a" [label="a\n0000000a", style=bold];`,
		`  "0000000b" [label="b\"x\n0000000b"];`,
		`  "0000000a" -> "0000000b" [label="1"];`,
		`  "0000000b" -> "63" [label="5"];`,
	} {
		if !strings.Contains(got, want) {
			t.Fatalf("dot lacks %q:\n%s", want, got)
		}
	}
}

// FuzzLayerInfo: any body decodes to an error or a status that renders
// (text and dot) without panicking.
func FuzzLayerInfo(f *testing.F) {
	b, _ := Marshal(sampleInfo())
	f.Add([]byte(b))
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, data []byte) {
		var info LayerInfo
		if Unmarshal(data, &info) != nil {
			return
		}
		_ = info.Render()
		if info.Status != nil && info.Status.Unicast != nil {
			var sb strings.Builder
			info.Status.Unicast.WriteDot(&sb, info.Layer)
		}
	})
}
