package testenv

import (
	"bytes"
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// LoCapture records the UDP/IPv4 frames sent on lo with an AF_PACKET
// socket (root only), for the tests that look for plaintext on the
// wire and send captured frames again.
type LoCapture struct {
	mu     sync.Mutex
	frames [][]byte
	stop   atomic.Bool
	done   chan struct{}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// CaptureLo starts a capture of lo, ended at the test's cleanup.
func CaptureLo(t testing.TB) *LoCapture {
	t.Helper()
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		t.Fatalf("packet socket: %v", err)
	}
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: lo.Index}); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100000})
	c := &LoCapture{done: make(chan struct{})}
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

// Frames returns the frames captured so far (Ethernet header, IPv4,
// UDP), oldest first.
func (c *LoCapture) Frames() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.frames...)
}

// Payloads returns the UDP payloads of the frames captured so far.
func (c *LoCapture) Payloads() [][]byte {
	var out [][]byte
	for _, f := range c.Frames() {
		out = append(out, UDPPayload(f))
	}
	return out
}

// Count returns how many captured UDP payloads contain marker.
func (c *LoCapture) Count(marker []byte) int {
	n := 0
	for _, p := range c.Payloads() {
		if bytes.Contains(p, marker) {
			n++
		}
	}
	return n
}

// UDPPayload returns a captured frame's UDP payload.
func UDPPayload(f []byte) []byte { return f[14+int(f[14]&0x0f)*4+8:] }

// InjectUDP sends a captured frame again through a raw IP socket (its
// source address kept, so it arrives as from its first sender), with
// its UDP payload changed by edit and its checksum cleared (a loopback
// capture's is not final).
func InjectUDP(t testing.TB, frame []byte, edit func(payload []byte)) {
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
