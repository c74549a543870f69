package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseVmRSS(t *testing.T) {
	status := "Name:\tirm\nState:\tS (sleeping)\nVmPeak:\t 1262344 kB\nVmHWM:\t   20480 kB\nVmRSS:\t   18772 kB\nRssAnon:\t    9000 kB\n"
	if kb, err := parseVmRSS(strings.NewReader(status)); err != nil || kb != 18772 {
		t.Fatalf("got %d, %v; want 18772", kb, err)
	}
	for _, bad := range []string{"Name:\tkthreadd\nState:\tS\n", "VmRSS:\t12 MB\n", "VmRSS:\tx kB\n"} {
		if kb, err := parseVmRSS(strings.NewReader(bad)); err == nil {
			t.Errorf("%q: got %d, no error", bad, kb)
		}
	}
	if kb, err := readRSS(os.Getpid()); err != nil || kb <= 0 {
		t.Fatalf("own RSS: %d, %v", kb, err)
	}
}

func TestJudge(t *testing.T) {
	procs := []soakProc{{label: "bench", role: roleBench, pid: 1}, {label: "a", role: roleIPCP, host: "a", pid: 2},
		{label: "a.udp1", role: roleIPCP, host: "a", pid: 3}, {label: "b", role: roleIPCP, host: "b", pid: 4}}
	samples := []SoakSample{
		{ElapsedS: 1, RSS: map[string]int64{"bench": 100, "a": 50, "a.udp1": 10}},
		{ElapsedS: 2.001, RSS: map[string]int64{"bench": 200, "a": 100, "a.udp1": 10, "b": 10}},
		{ElapsedS: 3, RSS: map[string]int64{"bench": 300, "a": 100, "a.udp1": 10, "b": 10}},
		{ElapsedS: 4, RSS: map[string]int64{"bench": 220, "a": 89, "a.udp1": 11}},
	}
	got, pass, verdict := judge(samples, procs, 2*time.Second, 0.10)
	if pass || len(got) != 4 {
		t.Fatalf("pass %v, %d procs", pass, len(got))
	}
	want := []struct {
		base, end, peak int64
		ok              bool
	}{{200, 220, 300, true}, {100, 89, 100, false}, {10, 11, 11, true}, {10, 0, 10, false}}
	for i, w := range want {
		p := got[i]
		if p.BaseKB != w.base || p.EndKB != w.end || p.PeakKB != w.peak || p.OK != w.ok {
			t.Errorf("%s: %+v, want %+v", p.Label, p, w)
		}
	}
	if !strings.HasPrefix(verdict, "FAIL") || !strings.Contains(verdict, "a (pid 2) 0.890x") ||
		!strings.Contains(verdict, "b (pid 4) gone by the end") || strings.Contains(verdict, "bench") {
		t.Errorf("verdict %q", verdict)
	}
	samples[3].RSS["a"], samples[3].RSS["b"] = 110, 9
	if _, pass, verdict := judge(samples, procs, 2*time.Second, 0.10); !pass || !strings.HasPrefix(verdict, "PASS") {
		t.Errorf("flat within 10%%: %v %q", pass, verdict)
	}
	if _, pass, _ := judge(samples, procs, 4*time.Second, 0.10); pass {
		t.Error("passed with the baseline in the last sample")
	}
	if _, pass, _ := judge(nil, procs, time.Second, 0.10); pass {
		t.Error("passed without samples")
	}
}

func TestSoakUsage(t *testing.T) {
	c, err := parse([]string{"-soak"}, io.Discard)
	if err != nil || c.duration != time.Minute || c.soakPath != pathUnicast2 || c.soakSize != 1000 || c.soakBase != 5*time.Second {
		t.Fatalf("defaults: %+v, %v", c, err)
	}
	if c, err := parse([]string{"-soak", "-d", "10s", "-path", "udp", "-s", "64"}, io.Discard); err != nil ||
		c.duration != 10*time.Second || c.soakPath != pathUDP || c.soakSize != 64 {
		t.Fatalf("flags: %+v, %v", c, err)
	}
	for _, args := range [][]string{{"-soak", "-path", "raw"}, {"-soak", "-s", "8"}, {"-soak", "-d", "5s"}, {"-soak", "-base", "0"}} {
		if code := run(args, io.Discard, io.Discard); code != 2 {
			t.Errorf("bench %v: exit %d, want 2", args, code)
		}
	}
}

// A short soak of the local layer: the IPCP is found and sampled every
// second along with the bench and server processes.
func TestSoakLocal(t *testing.T) {
	e := &env{irm: os.Args[0], logLevel: "error", log: io.Discard}
	var out bytes.Buffer
	r, err := soak(context.Background(), e, soakConfig{path: pathLocal, size: 1000, duration: 3 * time.Second, base: time.Second},
		&out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Samples) != 3 || r.FloodError != "" || r.Flood.Received == 0 {
		t.Fatalf("%d samples, flood %+v %q\n%s", len(r.Samples), r.Flood, r.FloodError, out.String())
	}
	roles := map[string]int{}
	for _, p := range r.Procs {
		roles[p.Role]++
		if p.BaseKB <= 0 || p.EndKB <= 0 {
			t.Errorf("process %+v not sampled", p)
		}
	}
	if roles[roleIPCP] != 1 || roles[roleBench] != 1 || roles[roleServer] != 1 {
		t.Errorf("processes %+v", r.Procs)
	}
	if s := r.Samples[2]; s.IPCPTotalKB <= 0 || s.IPCPMax != "lo" || s.BenchKB <= 0 || s.ServerKB <= 0 || s.PPS <= 0 {
		t.Errorf("last sample %+v", s)
	}
	if !strings.Contains(out.String(), r.Verdict) || r.Verdict == "" {
		t.Errorf("verdict %q not printed:\n%s", r.Verdict, out.String())
	}
	if err := writeJSON(t.TempDir()+"/soak.json", r); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out.String())
}
