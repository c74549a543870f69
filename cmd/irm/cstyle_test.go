package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ouro-net/ouro/internal/testenv"
	"github.com/ouro-net/ouro/lib/ctrl"
)

// TestCStyleEnrollAndParams runs the command lines of a C Ouroboros
// user through the CLI: `routing link_state` is taken for link-state,
// and `irm ipcp enroll` creates the IPCP (unicast unless a type is
// given) when none of that name exists. An enrollment that fails leaves
// no IPCP behind, and a type that does not match an existing IPCP is
// refused.
func TestCStyleEnrollAndParams(t *testing.T) {
	dir, _ := testenv.StartDaemon(t, "")
	irm := func(args ...string) string { return testenv.MustRun(t, "", dir, "irm", args...) }
	irm("ipcp", "bootstrap", "type", "local", "name", "lo", "layer", "lo")
	irm("ipcp", "bootstrap", "type", "unicast", "name", "a", "layer", "net", "routing", "link_state", "autobind")
	irm("name", "register", "a", "layer", "lo")
	irm("name", "register", "net", "layer", "lo")
	var info ctrl.LayerInfo
	if err := json.Unmarshal([]byte(irm("layer", "show", "net", "--json")), &info); err != nil {
		t.Fatal(err)
	}
	if info.Status == nil || info.Status.Unicast == nil || info.Status.Unicast.Config.Routing != "link-state" {
		t.Fatalf("routing link_state not taken for link-state:\n%s", irm("layer", "show", "net"))
	}

	// No IPCP b exists: enroll creates a unicast one and enrolls it.
	out := irm("ipcp", "enroll", "name", "b", "layer", "net", "autobind")
	if !strings.Contains(out, "enrolled IPCP b in layer net") {
		t.Fatalf("enroll: %s", out)
	}
	list := irm("ipcp", "list", "--json")
	var ipcps []ctrl.IPCPInfo
	if err := json.Unmarshal([]byte(list), &ipcps); err != nil {
		t.Fatal(err)
	}
	var row ctrl.IPCPInfo
	for _, i := range ipcps {
		if i.Name == "b" {
			row = i
		}
	}
	if row.Type != "unicast" || row.Layer != "net" || row.State != "enrolled" {
		t.Fatalf("IPCP b after enroll: %+v in\n%s", row, list)
	}

	// A type that does not match the existing IPCP is refused.
	if out, code := testenv.Run(t, "", dir, "irm", "ipcp", "enroll", "name", "b", "layer", "net", "type", "local"); code == 0 ||
		!strings.Contains(out, "is of type unicast, not local") {
		t.Fatalf("enroll with the wrong type: exit %d: %s", code, out)
	}
	// A created IPCP whose enrollment fails is gone again.
	if out, code := testenv.Run(t, "", dir, "irm", "ipcp", "enroll", "name", "c", "layer", "net", "type", "local"); code == 0 ||
		!strings.Contains(out, "cannot enroll") {
		t.Fatalf("enroll of a local IPCP: exit %d: %s", code, out)
	}
	if list := irm("ipcp", "list"); strings.Contains(list, " c ") {
		t.Fatalf("IPCP c left behind by a failed enroll:\n%s", list)
	}
}
