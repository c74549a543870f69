package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ouro-net/ouro/internal/testenv"
	"github.com/ouro-net/ouro/lib/ctrl"
)

// hostTOML brings up a local layer and a two-member unicast layer over
// it (one member enrolls, created by enroll, and opens an adjacency),
// and a name served in the unicast layer.
const hostTOML = `# one host, two unicast members over a local layer
[[ipcp]]
name = "lo"
type = "local"
bootstrap = "lo"

[[ipcp]]
name = "a"
type = "unicast"
bootstrap = "net"
autobind = true
params = { routing = "link_state", ttl = 30 }
register = ["lo"]

[[ipcp]]
name = "b"
enroll = "net"
autobind = true
register = ["lo"]
connect = [{ dst = "a" }]

[[name]]
name = "srv"
lb = "spillover"
layers = ["net"]
`

// TestDaemonTOMLConfig brings up a host from a TOML file and pings over
// the layer it describes; broken files stop the daemon with the file,
// line and key in the message.
func TestDaemonTOMLConfig(t *testing.T) {
	dir := testenv.ShortTempDir(t)
	cfg := filepath.Join(t.TempDir(), "host.toml")
	os.WriteFile(cfg, []byte(hostTOML), 0o644)
	testenv.Start(t, "", dir, "irm", "daemon", "--rundir", dir, "--config", cfg)
	waitIPCP(t, dir, "b", "enrolled", 10*time.Second)
	waitIPCP(t, dir, "a", "bootstrapped", time.Second)
	var info ctrl.LayerInfo
	if err := json.Unmarshal([]byte(testenv.MustRun(t, "", dir, "irm", "layer", "show", "net", "--json")), &info); err != nil {
		t.Fatal(err)
	}
	if info.Status == nil || info.Status.Unicast == nil || info.Status.Unicast.Config.Routing != "link-state" || info.Status.Unicast.Config.TTL != 30 {
		t.Fatalf("bootstrap parameters not applied:\n%s", info.Render())
	}
	waitNameListed(t, dir, "srv", "with spillover", 10*time.Second, func(n ctrl.NameInfo) bool { return n.LB == "spillover" })
	testenv.Start(t, "", dir, "oping", "-l", "-n", "srv")
	waitListener(t, dir, "srv", 10*time.Second)
	if out := testenv.MustRun(t, "", dir, "oping", "-n", "srv", "-c", "3", "-f", "-Q"); !strings.Contains(out, "3 received") {
		t.Fatalf("ping over the configured layer:\n%s", out)
	}

	for _, c := range []struct{ text, want string }{
		// A syntax error: the line of the bad value.
		{"[[ipcp]]\nname = \"lo\"\ntype = local\n", ":3: "},
		// An unknown key.
		{"[[ipcp]]\nname = \"lo\"\ntype = \"local\"\ncolour = \"blue\"\n", ":4: ipcp.colour: unknown key"},
		// A value of the wrong type.
		{"[[ipcp]]\nname = \"lo\"\nautobind = \"yes\"\n", ":3: "},
		// A description that cannot be: both bootstrap and enroll.
		{"[[ipcp]]\nname = \"x\"\nbootstrap = \"l\"\n\n[[ipcp]]\nname = \"y\"\nbootstrap = \"m\"\nenroll = \"n\"\n", ":8: ipcp[1].enroll: "},
		// A step the IRMd refuses: registering in a layer not here.
		{"[[ipcp]]\nname = \"lo\"\ntype = \"local\"\nbootstrap = \"lo\"\n\n[[name]]\nname = \"srv\"\nlayers = [\"nowhere\"]\n", ":8: name[0].layers: no IPCP in layer"},
	} {
		bad := filepath.Join(t.TempDir(), "bad.toml")
		os.WriteFile(bad, []byte(c.text), 0o644)
		bdir := testenv.ShortTempDir(t)
		p := testenv.Start(t, "", bdir, "irm", "daemon", "--rundir", bdir, "--config", bad)
		if !p.Wait(20 * time.Second) {
			t.Fatalf("daemon with %q kept running", c.text)
		}
		if out := p.Out.String(); !strings.Contains(out, "config "+bad+c.want) || p.Cmd.ProcessState.ExitCode() == 0 {
			t.Errorf("daemon with a bad config: exit %d, output %q; want %q", p.Cmd.ProcessState.ExitCode(), out, bad+c.want)
		}
	}
}

// FuzzParseConfig: no TOML text makes the loader panic or hang.
func FuzzParseConfig(f *testing.F) {
	f.Add(hostTOML)
	f.Add("[[ipcp]]\nname = \"x\"\nparams = { peer = [1, 2] }\n")
	f.Add("[[name]]\n[[name]]\nname=\"\"\n")
	f.Add("a = [[[[")
	f.Fuzz(func(t *testing.T, text string) {
		parseConfig("fuzz.toml", text)
	})
}

// TestShippedConfigParses: the example next to the systemd unit is a
// valid host description.
func TestShippedConfigParses(t *testing.T) {
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := loadConfig(filepath.Join(root, "dist", "irmd.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.IPCP) != 2 || len(cfg.Name) != 1 || cfg.IPCP[0].Params["peer"] == nil {
		t.Fatalf("dist/irmd.toml read as %+v", cfg)
	}
}
