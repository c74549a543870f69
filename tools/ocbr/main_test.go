package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/ouro-net/ouro/internal/testenv"
	"github.com/ouro-net/ouro/tools/operf/perf"
)

func TestMain(m *testing.M) {
	testenv.MaybeRunIPCP()
	code := m.Run()
	testenv.CleanupBinaries()
	os.Exit(code)
}

// server starts a local layer with an ocbr server on it and returns
// the run directory; the server stops at cleanup.
func server(t *testing.T) (string, *testenv.SyncBuffer) {
	t.Helper()
	return testenv.ServeTool(t, "ocbr", runContext)
}

func runJSON(t *testing.T, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run(append(args, "--json"), &stdout, &stderr); code != 0 {
		t.Fatalf("ocbr %s: exit %d\n%s%s", strings.Join(args, " "), code, stdout.String(), stderr.String())
	}
	res := result{Result: &perf.Result{}}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("JSON summary: %v\n%s", err, stdout.String())
	}
	return res
}

func TestOverLocalLayer(t *testing.T) {
	dir, srv := server(t)
	t.Run("json", func(t *testing.T) {
		// 800 kb/s of 1000-byte packets is 100 packets/s.
		res := runJSON(t, "-n", "ocbr", "-d", "1200ms", "-r", "800k", "-s", "1000", "--rundir", dir)
		f := res.Forward
		if f.Sent == 0 || f.Sent > 121 || f.Received != f.Sent || f.Lost != 0 {
			t.Fatalf("forward %+v: want at most 121 packets, all delivered", f)
		}
		if res.TargetBPS != 800e3 || res.Rate != 100 || len(res.Intervals) == 0 {
			t.Fatalf("result %+v", res)
		}
	})
	t.Run("text", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"-n", "ocbr", "-d", "1100ms", "-r", "100k", "-s", "500", "--rundir", dir}, &stdout, &stderr); code != 0 {
			t.Fatalf("exit %d: %s%s", code, stdout.String(), stderr.String())
		}
		for _, want := range []string{"[  1]", "delivered", "Mb/s", "lost 0 (0.00%)", "cbr statistics"} {
			if !strings.Contains(stdout.String(), want) {
				t.Errorf("output lacks %q:\n%s", want, stdout.String())
			}
		}
	})
	if !strings.Contains(srv.String(), "packets in") {
		t.Errorf("the server reported no run:\n%s", srv)
	}
}

func TestNoServer(t *testing.T) {
	h := testenv.StartHost(t)
	h.Bootstrap(t, "local", "lo", "lo", nil)
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-n", "nobody", "-d", "100", "--rundir", h.Dir}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1: %s%s", code, stdout.String(), stderr.String())
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{{"-s", "5"}, {"-d", "0"}, {"-r", "0"}, {"-r", "fast"}, {"-r", "8", "-s", "1000", "-d", "100"},
		{"-q", "psychic"}, {"extra"}, {"-nosuchflag"}} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 2 {
			t.Errorf("ocbr %v: exit %d, want 2", args, code)
		}
		if stderr.Len() == 0 {
			t.Errorf("ocbr %v: no explanation on stderr", args)
		}
	}
}
