package flow_test

import (
	"bytes"
	"encoding/binary"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/internal/testenv"
	"github.com/ouro-net/ouro/lib/qos"
	"github.com/ouro-net/ouro/lib/seal"
)

// udpHosts starts two hosts joined by a udp4 layer on 127.0.0.1 and
// 127.0.0.2, with names registered at the second.
func udpHosts(t *testing.T, names ...string) (*testenv.Host, *testenv.Host) {
	t.Helper()
	h, g := testenv.StartHost(t), testenv.StartHost(t)
	port := ""
	for p := 32000 + os.Getpid()%500; p < 33000; p++ {
		c1, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p})
		if err != nil {
			continue
		}
		c2, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: p})
		c1.Close()
		if err != nil {
			continue
		}
		c2.Close()
		port = strconv.Itoa(p)
		break
	}
	if port == "" {
		t.Fatal("no free UDP port")
	}
	h.Bootstrap(t, "udp4", "ua", "udp", map[string]string{"ip": "127.0.0.1", "port": port, "peer": "127.0.0.2:" + port})
	g.Bootstrap(t, "udp4", "ub", "udp", map[string]string{"ip": "127.0.0.2", "port": port, "peer": "127.0.0.1:" + port})
	for _, n := range names {
		g.Register(t, n, "udp")
	}
	return h, g
}

// capture records the UDP/IPv4 frames sent on lo (AF_PACKET) until stop.
type capture struct {
	fd     int
	lo     int
	mu     sync.Mutex
	frames [][]byte
	stop   atomic.Bool
	done   chan struct{}
}

func startCapture(t *testing.T) *capture {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
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
	c := &capture{fd: fd, lo: lo.Index, done: make(chan struct{})}
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

// payloads returns the UDP payloads captured so far.
func (c *capture) payloads() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out [][]byte
	for _, f := range c.frames {
		ihl := int(f[14]&0x0f) * 4
		out = append(out, f[14+ihl+8:])
	}
	return out
}

// inject sends a captured frame again, with its payload changed by
// edit, and no UDP checksum (the loopback capture's is not final).
func (c *capture) inject(t *testing.T, frame []byte, edit func(payload []byte)) {
	f := bytes.Clone(frame)
	ihl := int(f[14]&0x0f) * 4
	binary.BigEndian.PutUint16(f[14+ihl+6:], 0)
	edit(f[14+ihl+8:])
	// A raw IP socket sends the IP packet as captured (its source
	// address included) back through lo.
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

// TestCaptureSeesNoPlaintext runs flows over a udp4 layer on loopback
// (the direct UDP data sockets) under an AF_PACKET capture of lo: a
// marker written on a plain flow is seen on the wire, the marker
// written on an encrypted flow never is. A captured sealed datagram
// sent again (replay) and sent with a flipped byte is dropped and
// counted by the receiver and never delivered; the flow lives on.
func TestCaptureSeesNoPlaintext(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for an AF_PACKET capture on lo")
	}
	h, g := udpHosts(t, "cap-plain", "cap-enc")
	cap := startCapture(t)
	stamp := strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	send := func(name string, q qos.Spec, marker []byte) (*flow.Flow, *flow.Flow) {
		a, b, err := pairOpts(t, h, g, name, q, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 20; i++ {
			if _, err := a.Write(marker); err != nil {
				t.Fatal(err)
			}
		}
		buf := make([]byte, 4096)
		b.SetReadDeadline(time.Now().Add(5 * time.Second))
		for i := 0; i < 20; i++ {
			n, err := b.Read(buf)
			if err != nil || !bytes.Equal(buf[:n], marker) {
				t.Fatalf("%s: packet %d: %d bytes, %v", name, i, n, err)
			}
		}
		return a, b
	}
	pad := func(s string) []byte { return append([]byte(s), make([]byte, 700-len(s))...) }
	plain := pad("TOP-SECRET-password=hunter2-plain-" + stamp)
	send("cap-plain", qos.Raw(), plain)
	secret := pad("TOP-SECRET-password=hunter2-sealed-" + stamp)
	a, b := send("cap-enc", func() qos.Spec { q := qos.Raw(); q.Encrypt = true; return q }(), secret)
	// Let the capture catch up (other tests' traffic shares lo).
	seenPlain, seenSecret, sealed := 0, 0, -1
	var pl [][]byte
	for end := time.Now().Add(5 * time.Second); sealed < 0 && time.Now().Before(end); {
		time.Sleep(50 * time.Millisecond)
		seenPlain, seenSecret, sealed = 0, 0, -1
		pl = cap.payloads()
		for i, p := range pl {
			if bytes.Contains(p, plain[:40]) {
				seenPlain++
			}
			if bytes.Contains(p, secret[:40]) || bytes.Contains(p, []byte("sealed-"+stamp)) {
				seenSecret++
			}
			if len(p) >= len(secret)+seal.Overhead && len(p) <= len(secret)+seal.Overhead+16 && p[len(p)-len(secret)-seal.Overhead] == seal.KindData {
				sealed = i
			}
		}
	}
	t.Logf("captured %d UDP datagrams on lo: plain marker in %d, sealed marker in %d", len(pl), seenPlain, seenSecret)
	if seenPlain == 0 {
		t.Fatal("the capture did not see the plain flow's marker: it proves nothing")
	}
	if seenSecret != 0 {
		t.Fatal("the encrypted flow's marker is on the wire in clear")
	}
	if sealed < 0 {
		t.Fatal("no sealed datagram captured")
	}
	cap.mu.Lock()
	frame := cap.frames[sealed]
	cap.mu.Unlock()
	off := len(secret) + seal.Overhead
	cap.inject(t, frame, func(p []byte) {})                                         // replay
	cap.inject(t, frame, func(p []byte) { p[len(p)-1] ^= 1 })                       // flipped tag byte
	cap.inject(t, frame, func(p []byte) { p[len(p)-off+seal.HeaderLen-1] ^= 0x80 }) // flipped counter: a new number, a bad tag
	delivered := make(chan []byte, 8)
	go func() {
		buf := make([]byte, 4096)
		for {
			b.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, err := b.Read(buf)
			if err != nil {
				close(delivered)
				return
			}
			delivered <- bytes.Clone(buf[:n])
		}
	}()
	// The flow lives on: a packet after the forgeries arrives, and it
	// is the only one.
	if _, err := a.Write([]byte("after")); err != nil {
		t.Fatal(err)
	}
	if m := <-delivered; string(m) != "after" {
		t.Fatalf("delivered %q after the forgeries", m)
	}
	st := b.Crypto()
	for end := time.Now().Add(3 * time.Second); st.Dropped() < 3 && time.Now().Before(end); st = b.Crypto() {
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case m, ok := <-delivered:
		if ok {
			t.Fatalf("delivered %q, a forgery", m)
		}
	default:
	}
	if st.Replayed < 2 || st.Auth < 1 || st.Opened != 21 {
		t.Fatalf("receiver stats: %v", st)
	}
	t.Logf("receiver: %v", st)
}
