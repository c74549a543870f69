package unicast_test

import (
	"bytes"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ouro-net/ouro/internal/testenv"
	"github.com/ouro-net/ouro/internal/topo"
	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/liveness"
	"github.com/ouro-net/ouro/lib/seal"
)

// TestSecretLayerCapture captures lo while a member registers a name
// (a directory frame crosses the adjacency): in an open layer the name
// is on the wire in clear, in a secret layer it never is. A captured
// sealed keepalive of the secret layer's adjacency sent again as is
// (replay) and with a flipped byte is dropped and counted by the
// receiving member's adjacency, which stays up.
func TestSecretLayerCapture(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for an AF_PACKET capture on lo")
	}
	key := filepath.Join(t.TempDir(), "net.key")
	if err := seal.GenerateSecret(key); err != nil {
		t.Fatal(err)
	}
	stamp := strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	seen := map[string]int{}
	var secretTopo *topo.Topo
	var cp *testenv.LoCapture
	for _, kind := range []string{"open", "secret"} {
		params := maps.Clone(testParams)
		if kind == "secret" {
			params["secret"] = key
		}
		tp := build(t, topo.Config{Hosts: []string{"a", "b"}, Links: [][2]string{{"b", "a"}}, Params: params})
		waitRoute(t, tp, "b", "a", 1)
		c := testenv.CaptureLo(t)
		marker := "MGMT-MARKER-" + kind + "-" + stamp
		if err := tp.Register("a", marker); err != nil {
			t.Fatal(err)
		}
		for end := time.Now().Add(10 * time.Second); !tp.KnowsName("b", marker); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("%s layer: b never learnt %s", kind, marker)
			}
		}
		time.Sleep(200 * time.Millisecond) // let the capture catch up
		seen[kind] = c.Count([]byte(marker))
		secretTopo, cp = tp, c
	}
	t.Logf("directory frame marker on the wire: open layer %d datagrams, secret layer %d", seen["open"], seen["secret"])
	if seen["open"] == 0 {
		t.Fatal("the capture did not see the open layer's marker: it proves nothing")
	}
	if seen["secret"] != 0 {
		t.Fatal("the secret layer's management frame is on the wire in clear")
	}

	// A sealed keepalive (a frame of 1 + liveness.HelloLen bytes,
	// sealed, after the udp shim's header of h bytes) towards one of the
	// members, captured on the secret layer's adjacency.
	var frame []byte
	h := 0
	for end := time.Now().Add(5 * time.Second); frame == nil && time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		frames := cp.Frames()
		for i := len(frames) - 1; i >= 0; i-- {
			p := testenv.UDPPayload(frames[i])
			if h = len(p) - (1 + liveness.HelloLen + seal.Overhead); h >= 0 && h <= 8 && p[h] == seal.KindData {
				frame = frames[i]
				break
			}
		}
	}
	if frame == nil {
		t.Fatal("no sealed keepalive captured")
	}
	to := map[byte]string{1: "a", 2: "b"}[frame[14+19]]
	before := sealedDrops(t, secretTopo, to)
	// Replayed as is; with a flipped counter byte (a fresh number the
	// tag does not cover: a flipped byte of a seen counter would count
	// as a replay, the window is checked first); with the counter far
	// beyond the next epoch.
	testenv.InjectUDP(t, frame, func([]byte) {})
	testenv.InjectUDP(t, frame, func(p []byte) { p[h+5] ^= 0x01 })
	testenv.InjectUDP(t, frame, func(p []byte) { p[h+3] ^= 0x01 })
	var after ctrl.Adjacency
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		after = sealedDrops(t, secretTopo, to)
		if after.Replayed >= before.Replayed+1 && after.AuthFailures >= before.AuthFailures+2 {
			break
		}
	}
	t.Logf("%s's adjacency: replayed %d -> %d, auth failures %d -> %d", to, before.Replayed, after.Replayed, before.AuthFailures, after.AuthFailures)
	if after.Replayed < before.Replayed+1 || after.AuthFailures < before.AuthFailures+2 {
		t.Fatalf("forgeries not counted at %s", to)
	}
	if !after.Up {
		t.Fatal("the adjacency went down")
	}
	if out, err := secretTopo.Show(to); err != nil || !bytes.Contains([]byte(out), []byte("sealed #")) {
		t.Fatalf("layer show at %s: %v\n%s", to, err, out)
	}
}

// sealedDrops returns host's one adjacency.
func sealedDrops(t *testing.T, tp *topo.Topo, host string) ctrl.Adjacency {
	t.Helper()
	_, u := hostStatus(t, tp, host)
	if len(u.Adjacencies) != 1 || !u.Adjacencies[0].Sealed {
		t.Fatalf("%s: adjacencies %+v", host, u.Adjacencies)
	}
	return u.Adjacencies[0]
}
