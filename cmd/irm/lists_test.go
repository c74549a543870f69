package main

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/ouro-net/ouro/internal/testenv"
	"github.com/ouro-net/ouro/lib/ctrl"
)

// listed runs `irm KIND list --json` at dir (KIND ipcp, name or flow)
// and decodes the entries; a failed run or bad JSON is nil.
func listed[T any](t *testing.T, dir, kind string) ([]T, string) {
	t.Helper()
	out, code := testenv.Run(t, "", dir, "irm", kind, "list", "--json")
	var v []T
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil {
		return nil, out
	}
	return v, out
}

// eventuallyListed polls `irm KIND list --json` at dir for up to within
// until an entry satisfies ok (what says which, for the failure), and
// returns it.
func eventuallyListed[T any](t *testing.T, dir, kind string, within time.Duration, what string, ok func(T) bool) T {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		all, out := listed[T](t, dir, kind)
		if i := slices.IndexFunc(all, ok); i >= 0 {
			return all[i]
		}
		if time.Now().After(deadline) {
			t.Fatalf("irm %s list at %s never showed %s:\n%s", kind, dir, what, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitIPCP waits until IPCP name is listed at dir in state (any state
// when empty).
func waitIPCP(t *testing.T, dir, name, state string, within time.Duration) ctrl.IPCPInfo {
	t.Helper()
	return eventuallyListed(t, dir, "ipcp", within, "IPCP "+name+" "+state, func(i ctrl.IPCPInfo) bool {
		return i.Name == name && (state == "" || i.State == state)
	})
}

// waitNameListed waits until name is listed at dir with ok true of it.
func waitNameListed(t *testing.T, dir, name, what string, within time.Duration, ok func(ctrl.NameInfo) bool) ctrl.NameInfo {
	t.Helper()
	return eventuallyListed(t, dir, "name", within, "name "+name+" "+what, func(n ctrl.NameInfo) bool {
		return n.Name == name && ok(n)
	})
}

// waitListener waits until a process listens on name at dir and returns
// the name's entry.
func waitListener(t *testing.T, dir, name string, within time.Duration) ctrl.NameInfo {
	t.Helper()
	return waitNameListed(t, dir, name, "with a listening process", within, func(n ctrl.NameInfo) bool { return len(n.Processes) > 0 })
}

// inLayer is a waitNameListed condition: the name is registered in layer.
func inLayer(layer string) func(ctrl.NameInfo) bool {
	return func(n ctrl.NameInfo) bool { return slices.Contains(n.Layers, layer) }
}

// eventuallyLayer polls `irm layer show LAYER --json` at dir for up to
// within until the unicast status satisfies ok (what says how, for the
// failure).
func eventuallyLayer(t *testing.T, dir, layer string, within time.Duration, what string, ok func(*ctrl.UnicastStatus) bool) *ctrl.UnicastStatus {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		out, code := testenv.Run(t, "", dir, "irm", "layer", "show", layer, "--json")
		var info ctrl.LayerInfo
		if code == 0 && json.Unmarshal([]byte(out), &info) == nil && info.Status != nil && info.Status.Unicast != nil && ok(info.Status.Unicast) {
			return info.Status.Unicast
		}
		if time.Now().After(deadline) {
			t.Fatalf("layer %s at %s never showed %s:\n%s", layer, dir, what, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
