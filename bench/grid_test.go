package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestGridTopo(t *testing.T) {
	hosts, links := gridTopo(3)
	if len(hosts) != 9 || len(links) != 12 {
		t.Fatalf("3x3: %d hosts, %d links; want 9, 12", len(hosts), len(links))
	}
	deg := map[string]int{}
	for _, l := range links {
		deg[l[0]]++
		deg[l[1]]++
	}
	if deg[gridHost(0, 0)] != 2 || deg[gridHost(1, 1)] != 4 || deg[gridHost(0, 1)] != 3 || deg[gridHost(2, 2)] != 2 {
		t.Errorf("degrees %v", deg)
	}
	for _, n := range []int{4, 16, 49, 100} {
		if r := isqrt(n); r*r != n {
			t.Errorf("isqrt(%d) = %d", n, r)
		}
	}
	for _, bad := range []string{"3", "15", "1", "256", "-4"} {
		if _, err := parse([]string{"-grid", bad}, io.Discard); err == nil {
			t.Errorf("-grid %s accepted", bad)
		}
	}
	if c, err := parse([]string{"-grid", "49"}, io.Discard); err != nil || c.grid != 49 || c.duration != time.Minute {
		t.Errorf("-grid 49: %+v, %v", c, err)
	}
}

// A 2x2 grid with a short idle spell and ping: it comes up, measures
// every process, pings corner to corner, and leaves no process and no
// run directory behind.
func TestGrid4(t *testing.T) {
	if testing.Short() {
		t.Skip("brings up 12 IPCP processes; skipped with -short")
	}
	e := &env{irm: os.Args[0], logLevel: "error", log: io.Discard}
	var out bytes.Buffer
	tmpBefore := os.TempDir()
	r, err := gridRun(context.Background(), e, gridConfig{r: 2, idle: time.Second, cpuWindow: time.Second,
		interval: time.Millisecond, pingFor: time.Second}, &out, io.Discard)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if r.Hosts != 4 || r.Links != 4 || r.BringUpS <= 0 {
		t.Errorf("result %+v", r)
	}
	want := map[string]int{"irmd": 1, "udp4": 8, "unicast": 4}
	for k, n := range want {
		if g := r.Kinds[k]; g == nil || g.Procs != n || g.RSSMiB <= 0 {
			t.Errorf("kind %s: %+v, want %d processes with RSS", k, g, n)
		}
	}
	if r.Ping == nil || r.Ping.Received == 0 || r.Ping.Sent == 0 {
		t.Fatalf("ping %+v", r.Ping)
	}
	if !strings.Contains(out.String(), "ping h0000 -> h0101") {
		t.Errorf("no ping line:\n%s", out.String())
	}
	if os.TempDir() != tmpBefore {
		t.Errorf("TMPDIR left at %s", os.TempDir())
	}
	if v, ok := os.LookupEnv(logDirEnv); ok {
		t.Errorf("%s left at %s", logDirEnv, v)
	}
	// The IPCPs' logs were read: every spell has its down summary.
	if r.UpDowns == nil || r.IdleDownsWhy == nil || r.PingDownsWhy == nil {
		t.Errorf("down summaries missing: %+v %+v %+v", r.UpDowns, r.IdleDownsWhy, r.PingDownsWhy)
	}
	if logs, _ := filepath.Glob(filepath.Join(r.RunDir, "logs", "*.log")); len(logs) != 0 {
		t.Errorf("IPCP logs left: %v", logs)
	}
	// Cleaned up: no IPCP process of the run is left (the IRMds reap
	// them, so a gone pid has no /proc entry), and no run directory.
	var pids []int
	for _, p := range r.Procs {
		if p.Type != "irmd" {
			pids = append(pids, p.PID)
		}
	}
	if len(pids) != 12 {
		t.Errorf("%d IPCP processes measured, want 12", len(pids))
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for {
			if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); os.IsNotExist(err) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("IPCP pid %d still there after the run", pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if r.RunDir == "" {
		t.Fatal("no run directory recorded")
	}
	if _, err := os.Stat(r.RunDir); !os.IsNotExist(err) {
		t.Errorf("run directory %s still there: %v", r.RunDir, err)
	}
	t.Log("\n" + out.String())
}
