package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ouro-net/ouro/internal/testenv"
	"github.com/ouro-net/ouro/lib/ctrl"
)

// TestSecretLayer: `irm key generate` writes a 0600 secret and refuses
// to overwrite it; a layer bootstrapped with it admits a member holding
// it (500 pings, 0% loss, sealed adjacency) and refuses an enroller
// with no secret and one with the wrong secret -- exit 1, "enrollment
// refused: authentication failed", within a few seconds -- leaving no
// trace at the bootstrapper (no member, directory entry or route), but
// counting both; a key file group-readable or of the wrong length is
// refused with a clear error.
func TestSecretLayer(t *testing.T) {
	dir := t.TempDir()
	key, wrong := filepath.Join(dir, "net.key"), filepath.Join(dir, "wrong.key")
	for _, k := range []string{key, wrong} {
		if out := testenv.MustRun(t, "", dir, "irm", "key", "generate", k); !strings.Contains(out, "mode 0600") {
			t.Fatalf("key generate: %s", out)
		}
	}
	if st, err := os.Stat(key); err != nil || st.Mode().Perm() != 0o600 || st.Size() != 32 {
		t.Fatalf("key file: %v %v", st, err)
	}
	before, _ := os.ReadFile(key)
	if out, code := testenv.Run(t, "", dir, "irm", "key", "generate", key); code != 1 || !strings.Contains(out, "exists") {
		t.Fatalf("key generate over a key: exit %d\n%s", code, out)
	}
	if after, _ := os.ReadFile(key); string(after) != string(before) {
		t.Fatal("key generate overwrote the key")
	}

	tp := layerTopo(t, []string{"a", "b"}, [][2]string{{"b", "a"}}, map[string]string{"secret": key})
	st := layerStatus(t, tp, "a")
	if st.Config.Security != "secret" {
		t.Fatalf("layer shows as %q", st.Config.Security)
	}
	if adj := st.AdjacenciesTo("b"); len(adj) != 1 || !adj[0].Sealed {
		t.Fatalf("adjacency to b: %+v", adj)
	}
	if out := irmAt(t, tp, "a", "layer", "show", "net"); !strings.Contains(out, "security: layer secret") {
		t.Fatalf("layer show does not say the layer is secret:\n%s", out)
	}

	// Strangers enroll from b's host, through the same lower layer.
	bdir := tp.Hosts["b"].Dir
	for _, c := range []struct{ what, secret string }{{"no secret", ""}, {"wrong secret", wrong}} {
		args := []string{"ipcp", "enroll", "name", "x", "layer", "net", "dst", "a"}
		if c.secret != "" {
			args = append(args, "secret", c.secret)
		}
		start := time.Now()
		out, code := testenv.Run(t, "", bdir, "irm", args...)
		took := time.Since(start)
		t.Logf("%s: exit %d after %v: %s", c.what, code, took.Round(time.Millisecond), strings.TrimSpace(out))
		if code != 1 || !strings.Contains(out, "enrollment refused: authentication failed") {
			t.Fatalf("%s: exit %d\n%s", c.what, code, out)
		}
		if took > 15*time.Second {
			t.Fatalf("%s: refused only after %v", c.what, took)
		}
	}
	for _, c := range []struct {
		mode os.FileMode
		size int
		want string
	}{{0o644, 32, "chmod 600"}, {0o600, 31, "31 bytes, want 32"}} {
		bad := filepath.Join(dir, "bad.key")
		os.Remove(bad)
		os.WriteFile(bad, make([]byte, c.size), c.mode)
		os.Chmod(bad, c.mode)
		out, code := testenv.Run(t, "", bdir, "irm", "ipcp", "enroll", "name", "x", "layer", "net", "dst", "a", "secret", bad)
		if code != 1 || !strings.Contains(out, c.want) {
			t.Fatalf("key file mode %v size %d: exit %d\n%s", c.mode, c.size, code, out)
		}
	}

	st = layerStatus(t, tp, "a")
	for _, m := range st.Members {
		if m.IPCP != "a" && m.IPCP != "b" {
			t.Fatalf("a stranger is a member: %+v", m)
		}
	}
	for _, d := range st.Directory {
		if d.Origin != "a" && d.Origin != "b" {
			t.Fatalf("a stranger has a directory entry: %+v", d)
		}
	}
	if len(st.Routes) != 1 || st.Routes[0].IPCP != "b" || len(st.Adjacencies) != 1 {
		t.Fatalf("routes %+v, adjacencies %d", st.Routes, len(st.Adjacencies))
	}
	k := st.Counters
	if k.AuthRefused != 1 || k.HandshakesAuth != 1 {
		t.Fatalf("counted: joiners without a secret %d, wrong-secret handshakes %d; want 1 and 1", k.AuthRefused, k.HandshakesAuth)
	}

	pingServer(t, tp, "a", "sping")
	pingFrom(t, tp, "b", "sping", 500)
	if out := testenv.MustRun(t, "", bdir, "oping", "-n", "sping", "-c", "500", "-i", "0", "-Q"); !strings.Contains(out, " 0% packet loss") {
		t.Fatalf("500 pings in the secret layer:\n%s", out)
	}
}

// TestConfigSecret: a TOML host file gives the layer secret as secret =
// "FILE" (relative to the file's directory) at bootstrap and enroll; the
// layer comes up secret with a sealed adjacency. A group-readable or
// short key file, a secret in params and a secret on an IPCP that
// neither bootstraps nor enrolls are refused with the line and key.
func TestConfigSecret(t *testing.T) {
	cdir := t.TempDir()
	if err := os.WriteFile(filepath.Join(cdir, "host.toml"), []byte(`[[ipcp]]
name = "lo"
type = "local"
bootstrap = "lo"

[[ipcp]]
name = "a"
type = "unicast"
bootstrap = "net"
secret = "net.key"
autobind = true
register = ["lo"]

[[ipcp]]
name = "b"
enroll = "net"
secret = "net.key"
autobind = true
register = ["lo"]
connect = [{ dst = "a" }]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.MustRun(t, "", cdir, "irm", "key", "generate", filepath.Join(cdir, "net.key"))
	dir := testenv.ShortTempDir(t)
	testenv.Start(t, "", dir, "irm", "daemon", "--rundir", dir, "--config", filepath.Join(cdir, "host.toml"))
	waitIPCP(t, dir, "b", "enrolled", 10*time.Second)
	eventuallyLayer(t, dir, "net", 10*time.Second, "a sealed adjacency", func(u *ctrl.UnicastStatus) bool {
		return slices.ContainsFunc(u.Adjacencies, func(a ctrl.Adjacency) bool { return a.Sealed })
	})

	os.WriteFile(filepath.Join(cdir, "open.key"), make([]byte, 32), 0o644)
	os.Chmod(filepath.Join(cdir, "open.key"), 0o644)
	os.WriteFile(filepath.Join(cdir, "short.key"), make([]byte, 5), 0o600)
	for _, c := range []struct{ text, want string }{
		{"[[ipcp]]\nname = \"a\"\nbootstrap = \"net\"\nsecret = \"open.key\"\n", ":4: ipcp[0].secret: layer secret " + filepath.Join(cdir, "open.key") + ": mode 0644"},
		{"[[ipcp]]\nname = \"a\"\nenroll = \"net\"\nsecret = \"short.key\"\n", ":4: ipcp[0].secret: layer secret " + filepath.Join(cdir, "short.key") + ": 5 bytes, want 32"},
		{"[[ipcp]]\nname = \"a\"\nbootstrap = \"net\"\nparams = { secret = \"net.key\" }\n", ":4: ipcp[0].params: give the layer secret as secret"},
		{"[[ipcp]]\nname = \"a\"\ntype = \"unicast\"\nsecret = \"net.key\"\n", ":4: ipcp[0].secret: a layer secret is given at bootstrap or enroll only"},
	} {
		path := filepath.Join(cdir, "bad.toml")
		_, _, err := parseConfig(path, c.text)
		if err == nil || !strings.Contains(err.Error(), path+c.want) {
			t.Errorf("config %q: %v; want %q", c.text, err, path+c.want)
		}
	}
}

// TestEncryptRequired: in a layer bootstrapped with `encrypt required`
// a flow without -x is refused with an error saying what to do, and an
// encrypted one passes; layer show says so.
func TestEncryptRequired(t *testing.T) {
	tp := layerTopo(t, []string{"a", "b"}, [][2]string{{"b", "a"}}, map[string]string{"encrypt": "required"})
	if st := layerStatus(t, tp, "b"); !st.Config.EncryptRequired || st.Config.Security != "open" {
		t.Fatalf("config %+v", st.Config)
	}
	if out := irmAt(t, tp, "a", "layer", "show", "net"); !strings.Contains(out, "flows encrypt required") {
		t.Fatalf("layer show:\n%s", out)
	}
	pingServer(t, tp, "a", "eping")
	bdir := tp.Hosts["b"].Dir
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, code := testenv.Run(t, "", bdir, "oping", "-n", "eping", "-x", "-c", "1", "-Q"); code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("b cannot reach eping with -x")
		}
	}
	if out := testenv.MustRun(t, "", bdir, "oping", "-n", "eping", "-x", "-c", "20", "-f", "-Q"); !strings.Contains(out, "20 received") {
		t.Fatalf("encrypted ping:\n%s", out)
	}
	out, code := testenv.Run(t, "", bdir, "oping", "-n", "eping", "-c", "1", "-Q")
	if code != 1 || !strings.Contains(out, "requires end-to-end encrypted flows") {
		t.Fatalf("plain ping in an encrypt-required layer: exit %d\n%s", code, out)
	}
}
