package flow_test

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

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
	// Every datagram of these flows is from or to 127.0.0.2.
	cap := testenv.CaptureLo(t, netip.MustParseAddr("127.0.0.2"))
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
		pl = cap.Payloads()
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
	frame := cap.Frames()[sealed]
	off := len(secret) + seal.Overhead
	testenv.InjectUDP(t, frame, func(p []byte) {})                                         // replay
	testenv.InjectUDP(t, frame, func(p []byte) { p[len(p)-1] ^= 1 })                       // flipped tag byte
	testenv.InjectUDP(t, frame, func(p []byte) { p[len(p)-off+seal.HeaderLen-1] ^= 0x80 }) // flipped counter: a new number, a bad tag
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
