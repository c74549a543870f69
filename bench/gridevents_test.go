package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestGridEvents: the adjacency events of the IPCPs' JSON logs are
// read per host and each down of a spell is classified by what became
// of it: taken back while held, flooded after the hold, flooded at
// once (hard), or still open; with its rule and mode, and starved when
// the peer said so or this host had just stalled. Lines that are not
// adjacency events, and garbage, are skipped.
func TestGridEvents(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Unix(1000, 0)
	at := func(ms int) int64 { return t0.Add(time.Duration(ms) * time.Millisecond).UnixNano() }
	line := func(msg string, ms int, id int, kv string) string {
		return fmt.Sprintf(`{"@level":"warn","@message":%q,"@module":"ipcpd.x","at_ns":%d,"id":%d,"peer":"p"%s}`, msg, at(ms), id, kv)
	}
	a := []string{
		`{"@level":"warn","@message":"something else","at_ns":1}`,
		"not json at all, adjacency",
		// held, taken back by a starved hello
		line(evDown, 10, 1, `,"withdraw_held":true,"rule":"bound","mode":"active","silence_ms":16.2,"bound_ms":15`),
		line(evBack, 30, 1, `,"by":"starved","down_ms":20,"heard_after_ms":20`),
		// held, then flooded, then back
		line(evDown, 40, 2, `,"withdraw_held":true,"rule":"bound","mode":"idle","silence_ms":766,"bound_ms":765,"own_stall_ms":40,"own_stall_ago_ms":100`),
		line(evFlooded, 340, 2, `,"held_ms":300`),
		line(evBack, 400, 2, `,"by":"heard","down_ms":360`),
	}
	b := []string{
		// hard: flooded at once
		line(evDown, 50, 1, `,"withdraw_held":false,"reason":"lower flow reports carrier loss"`),
		// held, never back (open); outside the spell below
		line(evDown, 20000, 3, `,"withdraw_held":true,"rule":"link","mode":"active"`),
	}
	for name, lines := range map[string][]string{"h0000.log": a, "h0001.log": b} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "ignored.txt"), []byte("adjacency down"), 0o600)
	evs, err := readGridEvents(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 7 {
		t.Fatalf("%d events, want 7: %+v", len(evs), evs)
	}
	s := gridDownsIn(evs, t0, t0.Add(time.Second))
	if s.Total != 3 || s.Held != 1 || s.Flooded != 2 || s.Open != 0 || s.Starved != 2 {
		t.Fatalf("spell: %+v", s)
	}
	if s.ByRule["bound/active"] != 1 || s.ByRule["bound/idle"] != 1 || s.ByRule["hard/"] != 1 {
		t.Errorf("by rule: %v", s.ByRule)
	}
	d := s.Downs[0]
	if d.Host != "h0000" || d.Kind != "held" || d.Back != "starved" || d.SilenceMS != 16.2 || d.BoundMS != 15 || !d.Starved {
		t.Errorf("first down: %+v", d)
	}
	if d := s.Downs[1]; d.Kind != "flooded" || d.Back != "heard" || !d.Starved {
		t.Errorf("second down: %+v", d)
	}
	late := gridDownsIn(evs, t0.Add(time.Second), t0.Add(time.Minute))
	if late.Total != 1 || late.Open != 1 || late.ByRule["link/active"] != 1 {
		t.Errorf("later spell: %+v", late)
	}
	var out strings.Builder
	s.print(&out, "idle", 1)
	if !strings.Contains(out.String(), "downs idle: 3 (held and taken back 1, flooded 2, open 0; starved 2)") || !strings.Contains(out.String(), "2 more in the JSON") {
		t.Errorf("print:\n%s", out.String())
	}
}
