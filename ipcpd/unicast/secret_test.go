package unicast_test

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/internal/topo"
	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/qos"
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

// TestSecretLayerStrangerFlood: a stranger on a member's lower layer
// opens 200 flows to the member's name and sends handshakes under a
// wrong secret, 8 at a time: every one fails with flow.ErrAuth, every
// one is counted at the member, nothing of the stranger enters the
// layer, the member's adjacency stays sealed and up, and its
// goroutines come back to where they were (nothing held per attempt).
func TestSecretLayerStrangerFlood(t *testing.T) {
	key := filepath.Join(t.TempDir(), "net.key")
	if err := seal.GenerateSecret(key); err != nil {
		t.Fatal(err)
	}
	params := maps.Clone(testParams)
	params["secret"] = key
	tp := build(t, topo.Config{Hosts: []string{"a", "b"}, Links: [][2]string{{"b", "a"}}, Params: params})
	waitRoute(t, tp, "b", "a", 1)
	st0, _ := hostStatus(t, tp, "a")
	wrong, err := seal.NewPSK(bytes.Repeat([]byte{7}, seal.SecretLen), nil)
	if err != nil {
		t.Fatal(err)
	}
	const n, par = 200, 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	var others []error
	for w := 0; w < par; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n/par; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				f, err := flow.Alloc(ctx, "a", qos.Raw(), flow.WithRunDir(tp.Hosts["b"].Dir), flow.WithPSK(wrong))
				cancel()
				if err == nil {
					f.Close()
				}
				if !errors.Is(err, flow.ErrAuth) {
					mu.Lock()
					others = append(others, err)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if len(others) > 0 {
		t.Fatalf("%d of %d attempts did not fail authentication, e.g. %v", len(others), n, others[0])
	}
	var st *ctrl.Status
	var u *ctrl.UnicastStatus
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st, u = hostStatus(t, tp, "a")
		if (u.Counters.HandshakesAuth >= n && st.Process.Goroutines <= st0.Process.Goroutines+10) || time.Now().After(end) {
			break
		}
	}
	t.Logf("a: handshakes refused %d (auth %d), goroutines %d before, %d after", u.Counters.HandshakesFailed,
		u.Counters.HandshakesAuth, st0.Process.Goroutines, st.Process.Goroutines)
	if u.Counters.HandshakesAuth != n {
		t.Fatalf("counted %d wrong-secret handshakes, want %d", u.Counters.HandshakesAuth, n)
	}
	if st.Process.Goroutines > st0.Process.Goroutines+10 {
		t.Fatalf("goroutines %d after the flood, %d before", st.Process.Goroutines, st0.Process.Goroutines)
	}
	if len(u.Members) != 2 || len(u.Adjacencies) != 1 || !u.Adjacencies[0].Sealed || !u.Adjacencies[0].Up {
		t.Fatalf("members %+v, adjacencies %+v", u.Members, u.Adjacencies)
	}
}
