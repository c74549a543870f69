package unicast_test

import (
	"maps"
	"path/filepath"
	"testing"
	"time"

	"github.com/ouro-net/ouro/internal/topo"
	"github.com/ouro-net/ouro/lib/seal"
)

// TestSecretSquareFailover is TestSquareFailover in a layer with a
// secret: every adjacency is a sealed flow that proved the secret, and
// cutting A's link still moves the ping stream to the other side with
// no more loss than in an open layer.
func TestSecretSquareFailover(t *testing.T) {
	key := filepath.Join(t.TempDir(), "net.key")
	if err := seal.GenerateSecret(key); err != nil {
		t.Fatal(err)
	}
	params := maps.Clone(testParams)
	params["secret"] = key
	tp := build(t, topo.Config{Hosts: []string{"a", "b", "c", "d"}, Links: squareLinks, PerLink: true, Params: params})
	if show, err := tp.WaitRoute("a", "d", 2, 20*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, show)
	}
	_, u := hostStatus(t, tp, "a")
	if u.Config.Security != "secret" || len(u.Adjacencies) != 2 {
		t.Fatalf("a: security %q, %d adjacencies", u.Config.Security, len(u.Adjacencies))
	}
	for _, a := range u.Adjacencies {
		if !a.Sealed {
			t.Fatalf("adjacency to %s is not sealed", a.Peer)
		}
	}
	st := failoverRun(t, tp, "d", "b", "b", "c")
	t.Logf("secret square, cut a-b: %d sent, %d lost, longest gap %.1f ms", st.Transmitted, st.Transmitted-st.Received, st.LongestGapMS)
	if lost := st.Transmitted - st.Received; lost > maxLost {
		t.Fatalf("lost %d of %d packets across the cut", lost, st.Transmitted)
	}
}
