package unicast_test

import (
	"bytes"
	"encoding/binary"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ouro-net/ouro/internal/topo"
	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/liveness"
	"github.com/ouro-net/ouro/lib/seal"
)

// loCapture records the UDP/IPv4 frames sent on lo (AF_PACKET).
type loCapture struct {
	mu     sync.Mutex
	frames [][]byte
	stop   atomic.Bool
	done   chan struct{}
}

func startLoCapture(t *testing.T) *loCapture {
	t.Helper()
	proto := int(htons(unix.ETH_P_ALL))
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		t.Fatalf("packet socket: %v", err)
	}
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: lo.Index}); err != nil {
		t.Fatal(err)
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100000})
	c := &loCapture{done: make(chan struct{})}
	go func() {
		defer close(c.done)
		buf := make([]byte, 70000)
		for !c.stop.Load() {
			n, from, err := unix.Recvfrom(fd, buf, 0)
			if err != nil || n < 14+20+8 {
				continue
			}
			if ll, ok := from.(*unix.SockaddrLinklayer); !ok || ll.Pkttype != unix.PACKET_OUTGOING {
				continue // each frame on lo is seen going out and coming in
			}
			if binary.BigEndian.Uint16(buf[12:]) != unix.ETH_P_IP || buf[14+9] != unix.IPPROTO_UDP {
				continue
			}
			c.mu.Lock()
			c.frames = append(c.frames, bytes.Clone(buf[:n]))
			c.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.stop.Store(true); <-c.done; unix.Close(fd) })
	return c
}

// udpPayload returns a captured frame's UDP payload.
func udpPayload(f []byte) []byte { return f[14+int(f[14]&0x0f)*4+8:] }

// count returns how many captured payloads contain marker.
func (c *loCapture) count(marker []byte) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, f := range c.frames {
		if bytes.Contains(udpPayload(f), marker) {
			n++
		}
	}
	return n
}

// injectFrame sends a captured IPv4 frame again through a raw IP
// socket (its source address kept), its UDP payload changed by edit
// and its checksum cleared.
func injectFrame(t *testing.T, frame []byte, edit func(payload []byte)) {
	t.Helper()
	f := bytes.Clone(frame)
	ihl := int(f[14]&0x0f) * 4
	binary.BigEndian.PutUint16(f[14+ihl+6:], 0)
	edit(f[14+ihl+8:])
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		t.Fatalf("raw socket: %v", err)
	}
	defer unix.Close(fd)
	var dst unix.SockaddrInet4
	copy(dst.Addr[:], f[14+16:14+20])
	if err := unix.Sendto(fd, f[14:], 0, &dst); err != nil {
		t.Fatalf("inject: %v", err)
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

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
	var cp *loCapture
	for _, kind := range []string{"open", "secret"} {
		params := maps.Clone(testParams)
		if kind == "secret" {
			params["secret"] = key
		}
		tp := build(t, topo.Config{Hosts: []string{"a", "b"}, Links: [][2]string{{"b", "a"}}, Params: params})
		waitRoute(t, tp, "b", "a", 1)
		c := startLoCapture(t)
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
		seen[kind] = c.count([]byte(marker))
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
		cp.mu.Lock()
		for i := len(cp.frames) - 1; i >= 0; i-- {
			p := udpPayload(cp.frames[i])
			if h = len(p) - (1 + liveness.HelloLen + seal.Overhead); h >= 0 && h <= 8 && p[h] == seal.KindData {
				frame = cp.frames[i]
				break
			}
		}
		cp.mu.Unlock()
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
	injectFrame(t, frame, func([]byte) {})
	injectFrame(t, frame, func(p []byte) { p[h+5] ^= 0x01 })
	injectFrame(t, frame, func(p []byte) { p[h+3] ^= 0x01 })
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
