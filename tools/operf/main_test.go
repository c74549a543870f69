package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/ouro-net/ouro/internal/testenv"
	"github.com/ouro-net/ouro/lib/seal"
	"github.com/ouro-net/ouro/tools/operf/perf"
)

func TestMain(m *testing.M) {
	testenv.MaybeRunIPCP()
	code := m.Run()
	testenv.CleanupBinaries()
	os.Exit(code)
}

// server starts a local layer with an operf server on it and returns
// the run directory; the server stops at cleanup.
func server(t *testing.T) (string, *testenv.SyncBuffer) {
	t.Helper()
	return testenv.ServeTool(t, "operf", runContext)
}

func runJSON(t *testing.T, args ...string) perf.Result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run(append(args, "--json"), &stdout, &stderr); code != 0 {
		t.Fatalf("operf %s: exit %d\n%s%s", strings.Join(args, " "), code, stdout.String(), stderr.String())
	}
	var res perf.Result
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("JSON summary: %v\n%s", err, stdout.String())
	}
	return res
}

func TestOverLocalLayer(t *testing.T) {
	dir, srv := server(t)
	t.Run("paced", func(t *testing.T) {
		res := runJSON(t, "-n", "operf", "-d", "1200ms", "-r", "200", "-s", "100", "--rundir", dir)
		f := res.Forward
		if f.Sent == 0 || f.Received != f.Sent || f.Lost != 0 || f.Bytes != 100*f.Sent {
			t.Fatalf("forward %+v", f)
		}
		if len(res.Intervals) < 1 || res.Intervals[0].Forward.Received == 0 {
			t.Fatalf("intervals %+v", res.Intervals)
		}
	})
	t.Run("both", func(t *testing.T) {
		res := runJSON(t, "-n", "operf", "-d", "500", "-r", "100", "-s", "64", "--both", "--rundir", dir)
		if r := res.Reverse; r == nil || r.Sent == 0 || r.Received != r.Sent || r.Lost != 0 {
			t.Fatalf("reverse %+v", r)
		}
	})
	t.Run("flood", func(t *testing.T) {
		// The local layer pushes back rather than drop: nothing is lost.
		res := runJSON(t, "-n", "operf", "-d", "300ms", "-s", "1400", "--rundir", dir)
		if f := res.Forward; f.Sent == 0 || f.Received != f.Sent {
			t.Fatalf("forward %+v", f)
		}
	})
	t.Run("text", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"-n", "operf", "-d", "1100ms", "-r", "50", "--rundir", dir}, &stdout, &stderr); code != 0 {
			t.Fatalf("exit %d: %s%s", code, stdout.String(), stderr.String())
		}
		for _, want := range []string{"[  1]", "pkt/s", "Mb/s", "client -> server: ", "lost 0 (0.00%)"} {
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
	for _, args := range [][]string{{"-s", "5"}, {"-d", "0"}, {"-r", "fast"}, {"-q", "psychic"}, {"extra"}, {"-i", "1"}, {"-nosuchflag"}} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 2 {
			t.Errorf("operf %v: exit %d, want 2", args, code)
		}
		if stderr.Len() == 0 {
			t.Errorf("operf %v: no explanation on stderr", args)
		}
	}
}

// TestEncryptedFlag: -x runs over an encrypted flow; -k pinning a key
// the server does not hold fails with the identity error; a server
// identity key readable by others is refused.
func TestEncryptedFlag(t *testing.T) {
	dir, _ := server(t)
	res := runJSON(t, "-n", "operf", "-x", "-d", "500", "-r", "100", "-s", "100", "--rundir", dir)
	if f := res.Forward; f.Sent == 0 || f.Received != f.Sent {
		t.Fatalf("encrypted forward %+v", f)
	}
	keys := t.TempDir()
	priv := keys + "/id"
	if err := seal.GenerateIdentity(priv, priv+".pub"); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run([]string{"-n", "operf", "-x", "-k", priv + ".pub", "-d", "300", "--rundir", dir}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "server identity check failed") {
		t.Fatalf("pin against a server without identity: exit %d: %s", code, stderr.String())
	}
	os.Chmod(priv, 0o644)
	stderr.Reset()
	code = run([]string{"-l", "-n", "operf", "-k", priv, "--rundir", dir}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "chmod 600") {
		t.Fatalf("world-readable identity: exit %d: %s", code, stderr.String())
	}
}
