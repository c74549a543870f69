package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ouro-net/ouro/internal/testenv"
	"github.com/ouro-net/ouro/ipcpd/eth/frame"
	"github.com/ouro-net/ouro/lib/seal"
)

// markerPayload is the size of the marker datagrams sent through the
// tunnel: it makes their frames the only large ones on the wire.
const markerPayload = 1100

// packetSocket opens an AF_PACKET socket on device dev of namespace ns
// and closes it at cleanup.
func packetSocket(t *testing.T, ns, dev string) (fd, ifindex int) {
	t.Helper()
	fd = -1
	proto := htons(unix.ETH_P_ALL)
	testenv.InNetNS(t, ns, func() {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			t.Error(err)
			return
		}
		s, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(proto))
		if err != nil {
			t.Errorf("packet socket: %v", err)
			return
		}
		if err := unix.Bind(s, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index}); err != nil {
			unix.Close(s)
			t.Error(err)
			return
		}
		fd, ifindex = s, ifi.Index
	})
	if fd < 0 {
		t.FailNow()
	}
	return fd, ifindex
}

// frameCapture records the frames a device receives (AF_PACKET). The
// receiving end is where to look: the eth-dix IPCP sends with
// PACKET_QDISC_BYPASS, which packet taps on the sender do not see.
type frameCapture struct {
	fd     int
	mu     sync.Mutex
	frames [][]byte
	stop   atomic.Bool
	done   chan struct{}
}

func startFrameCapture(t *testing.T, ns, dev string) *frameCapture {
	t.Helper()
	c := &frameCapture{done: make(chan struct{})}
	c.fd, _ = packetSocket(t, ns, dev)
	unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
	unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100000})
	go func() {
		defer close(c.done)
		buf := make([]byte, 70000)
		for !c.stop.Load() {
			n, from, err := unix.Recvfrom(c.fd, buf, 0)
			if err != nil || n < frame.HeaderLen {
				continue
			}
			if ll, ok := from.(*unix.SockaddrLinklayer); !ok || ll.Pkttype == unix.PACKET_OUTGOING {
				continue
			}
			c.mu.Lock()
			c.frames = append(c.frames, bytes.Clone(buf[:n]))
			c.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		c.stop.Store(true)
		<-c.done
		unix.Close(c.fd)
	})
	return c
}

// take returns the frames captured since the last take.
func (c *frameCapture) take() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.frames
	c.frames = nil
	return f
}

// injector puts frames of its own on a device.
type injector struct{ fd, ifindex int }

func newInjector(t *testing.T, ns, dev string) *injector {
	t.Helper()
	fd, ifindex := packetSocket(t, ns, dev)
	t.Cleanup(func() { unix.Close(fd) })
	return &injector{fd: fd, ifindex: ifindex}
}

func (in *injector) send(t *testing.T, f []byte) {
	t.Helper()
	if err := unix.Sendto(in.fd, f, 0, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: in.ifindex}); err != nil {
		t.Fatalf("inject a frame: %v", err)
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// udpSink receives datagrams in a namespace and reports those that
// carry a marker.
type udpSink struct {
	conn *net.UDPConn
	got  chan []byte
}

func startUDPSink(t *testing.T, ns string) *udpSink {
	t.Helper()
	s := &udpSink{got: make(chan []byte, 64)}
	testenv.InNetNS(t, ns, func() {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero})
		if err != nil {
			t.Error(err)
			return
		}
		s.conn = c
	})
	if s.conn == nil {
		t.FailNow()
	}
	go func() {
		buf := make([]byte, 2000)
		for {
			n, _, err := s.conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			select {
			case s.got <- bytes.Clone(buf[:n]):
			default:
			}
		}
	}()
	t.Cleanup(func() { s.conn.Close() })
	return s
}

func (s *udpSink) port() int { return s.conn.LocalAddr().(*net.UDPAddr).Port }

// sendThrough sends marker datagrams (padded to markerPayload) from
// namespace ns to dst:port through the tunnel every 50 ms until the sink
// received one, and fails the test after 10 s.
func sendThrough(t *testing.T, ns string, dst netip.Addr, sink *udpSink, marker []byte) {
	t.Helper()
	var conn *net.UDPConn
	testenv.InNetNS(t, ns, func() {
		c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: dst.AsSlice(), Port: sink.port()})
		if err != nil {
			t.Error(err)
			return
		}
		conn = c
	})
	if conn == nil {
		t.FailNow()
	}
	defer conn.Close()
	msg := append(bytes.Clone(marker), bytes.Repeat([]byte{'.'}, markerPayload-len(marker))...)
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn.Write(msg)
		select {
		case got := <-sink.got:
			if bytes.Equal(got, msg) {
				return
			}
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no datagram with the marker crossed the tunnel to %s in 10 s", dst)
		}
	}
}

// containsMarker counts the frames that carry marker.
func containsMarker(frames [][]byte, marker []byte) int {
	n := 0
	for _, f := range frames {
		if bytes.Contains(f, marker) {
			n++
		}
	}
	return n
}

// sealedAt returns where the sealed packet of an encrypted marker
// datagram starts in an eth-dix frame, and the payload's end, or ok
// false for any other frame. The sealed packet ends the frame's payload
// (below it: the shim header and the unicast layer's PCI, no trailer).
func sealedAt(f []byte) (start, end int, ok bool) {
	if len(f) < frame.HeaderLen || binary.BigEndian.Uint16(f[14:]) == 0 {
		return 0, 0, false // too short, or a shim management frame
	}
	end = frame.HeaderLen + int(binary.BigEndian.Uint16(f[16:]))
	start = end - (20 + 8 + markerPayload + seal.Overhead) // IPv4 + UDP + payload, sealed
	if end > len(f) || start < frame.HeaderLen || f[start] != seal.KindData {
		return 0, 0, false
	}
	return start, end, true
}

// TestOvpnEncryptedNetns runs ovpn over a unicast layer between two
// namespaces (one veth pair, eth-dix below) with a server holding an
// identity key, and a capture of the lower layer's frames: the marker of
// datagrams sent through a plain tunnel is on the wire, through an
// encrypted one it is not; a client pinning another key fails with a
// clear error, one pinning the server's key carries traffic; forged,
// truncated and replayed frames injected on the wire under the encrypted
// tunnel are dropped, counted in the server's status, and the tunnel
// carries on.
func TestOvpnEncryptedNetns(t *testing.T) {
	testenv.RequireRoot(t)
	p := buildPairOver(t, []string{"e1"})
	keys := t.TempDir()
	srvKey, otherKey := filepath.Join(keys, "srv.key"), filepath.Join(keys, "other.key")
	for _, k := range []string{srvKey, otherKey} {
		if err := seal.GenerateIdentity(k, k+".pub"); err != nil {
			t.Fatal(err)
		}
	}
	p.irm(t, "b", "name", "register", "ovpn", "layer", "net")
	server := p.ovpn(t, "b", "serving", "-l", "-n", "ovpn", "--ip", "10.9.0.1/24", "--dev", testenv.UniqueName("ovs"),
		"-k", srvKey, "--status", "100ms")
	for deadline := time.Now().Add(10 * time.Second); !p.knows("a", "ovpn"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("A never learnt the name ovpn")
		}
	}
	sink := startUDPSink(t, p.ns["b"])
	// What A sends, seen where it arrives at B; injected from A's end.
	capture := startFrameCapture(t, p.ns["b"], p.dev["b"]["e1"])
	inject := newInjector(t, p.ns["a"], p.dev["a"]["e1"])
	marker := fmt.Appendf(nil, "OVPN-MARKER-%d-%d", os.Getpid(), time.Now().UnixNano())

	t.Run("plain: marker on the wire", func(t *testing.T) {
		c := p.ovpn(t, "a", "up", "-n", "ovpn", "--ip", "10.9.0.2/24", "--dev", testenv.UniqueName("ovc"))
		defer c.Stop()
		capture.take()
		sendThrough(t, p.ns["a"], serverIP, sink, marker)
		time.Sleep(50 * time.Millisecond) // the capture reads behind the wire
		if n := containsMarker(capture.take(), marker); n == 0 {
			t.Fatal("the capture never saw the marker of a plain tunnel: it would prove nothing with -x")
		}
	})

	t.Run("wrong pinned key fails", func(t *testing.T) {
		start := time.Now()
		proc := testenv.Start(t, p.ns["a"], p.dir["a"], "ovpn", "-n", "ovpn", "--ip", "10.9.0.3/24",
			"--dev", testenv.UniqueName("ovc"), "-x", "-k", otherKey+".pub")
		if !proc.Wait(15 * time.Second) {
			t.Fatalf("client pinning another key still runs after 15 s:\n%s", proc.Out.String())
		}
		out, code := proc.Out.String(), proc.Cmd.ProcessState.ExitCode()
		t.Logf("client pinning another key, after %v: exit %d: %s", time.Since(start).Round(time.Millisecond), code, strings.TrimSpace(out))
		if code != 1 || !strings.Contains(out, "server identity check failed") || !strings.Contains(out, "pins another server key") {
			t.Fatalf("client pinning another key: exit %d:\n%s", code, out)
		}
		if strings.Contains(out, "ovpn: up") {
			t.Fatalf("client pinning another key came up:\n%s", out)
		}
	})

	c := p.ovpn(t, "a", "up", "-n", "ovpn", "--ip", "10.9.0.4/24", "--dev", testenv.UniqueName("ovc"),
		"-x", "-k", srvKey+".pub")
	var sealed [][]byte // frames of marker datagrams, encrypted
	t.Run("encrypted: no marker on the wire", func(t *testing.T) {
		capture.take()
		sendThrough(t, p.ns["a"], serverIP, sink, marker)
		time.Sleep(50 * time.Millisecond)
		frames := capture.take()
		if n := containsMarker(frames, marker); n != 0 {
			t.Fatalf("%d frames of the encrypted tunnel carry the marker in clear", n)
		}
		for _, f := range frames {
			if _, _, ok := sealedAt(f); ok {
				sealed = append(sealed, f)
			}
		}
		if len(sealed) == 0 {
			t.Fatalf("none of the %d captured frames is a sealed marker datagram", len(frames))
		}
		t.Logf("%d frames captured, %d of them sealed marker datagrams, none with the marker", len(frames), len(sealed))
	})

	t.Run("abuse: forged, truncated, replayed frames dropped and counted", func(t *testing.T) {
		if len(sealed) == 0 {
			t.Fatal("no sealed frame captured to forge from (see the subtest before)")
		}
		for len(sink.got) > 0 {
			<-sink.got
		}
		const each = 4
		for i := range each {
			f := sealed[i%len(sealed)]
			start, end, _ := sealedAt(f)
			// Forged: a fresh counter and a flipped byte; it cannot
			// authenticate.
			forged := bytes.Clone(f)
			binary.BigEndian.PutUint64(forged[start+1:], binary.BigEndian.Uint64(f[start+1:])+1000+uint64(i))
			forged[end-1] ^= 0xff
			inject.send(t, forged)
			// Truncated: the sealed packet cut to a few bytes.
			cut := bytes.Clone(f[:start+5])
			binary.BigEndian.PutUint16(cut[16:], uint16(start+5-frame.HeaderLen))
			cut = append(cut, make([]byte, max(0, frame.MinFrame-len(cut)))...)
			inject.send(t, cut)
			// Replayed: a frame the server already opened, verbatim.
			inject.send(t, f)
		}
		want := map[string]uint64{dropCryptoAuth: each, dropCryptoShort: each, dropCryptoReplayed: each}
		var last event
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			last = waitEvent(t, server, "status", 0, time.Second)
			ok := last.Stats != nil
			for k, v := range want {
				ok = ok && last.Stats.Drops[k] >= v
			}
			if ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("server's drops never counted %v: last status %+v", want, last.Stats)
			}
		}
		t.Logf("server's drops after the injection: %v", last.Stats.Drops)
		for k, v := range want {
			if last.Stats.Drops[k] != v {
				t.Errorf("server counted %s %d, want %d (one per injected frame)", k, last.Stats.Drops[k], v)
			}
		}
		if n := len(sink.got); n > 0 {
			t.Errorf("%d injected datagrams crossed the tunnel", n)
		}
		// The tunnel lives on.
		sendThrough(t, p.ns["a"], serverIP, sink, marker)
		select {
		case <-server.Exited():
			t.Fatalf("server exited:\n%s", server.Out.String())
		case <-c.Exited():
			t.Fatalf("client exited:\n%s", c.Out.String())
		default:
		}
	})
}
