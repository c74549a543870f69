package testenv

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
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

// CaptureLo starts a capture of lo, ended at the test's cleanup. With
// hosts, only frames from or to one of those IPv4 addresses are kept.
// A socket filter keeps only outgoing UDP/IPv4 frames (of hosts) in the
// kernel, so another process flooding lo cannot fill the capture's
// buffer with frames it would throw away.
func CaptureLo(t testing.TB, hosts ...netip.Addr) *LoCapture {
	t.Helper()
	return captureLo(t, true, hosts)
}

// captureLo is CaptureLo; without check it keeps whatever the kernel
// filter lets through (its test).
func captureLo(t testing.TB, check bool, hosts []netip.Addr) *LoCapture {
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
	prog := loFilter(hosts)
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}); err != nil {
		unix.Close(fd)
		t.Fatalf("capture filter: %v", err)
	}
	// Frames queued before the filter: drop them.
	for {
		if _, _, err := unix.Recvfrom(fd, make([]byte, 1), unix.MSG_DONTWAIT|unix.MSG_TRUNC); err != nil {
			break
		}
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
			if ll, ok := from.(*unix.SockaddrLinklayer); check && (!ok || ll.Pkttype != unix.PACKET_OUTGOING) {
				continue // each frame on lo is seen going out and coming in
			}
			if check && (binary.BigEndian.Uint16(buf[12:]) != unix.ETH_P_IP || buf[14+9] != unix.IPPROTO_UDP || !hostOf(buf, hosts)) {
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

// hostOf reports whether frame is from or to one of hosts (any frame
// when there are none).
func hostOf(frame []byte, hosts []netip.Addr) bool {
	if len(hosts) == 0 {
		return true
	}
	src, _ := netip.AddrFromSlice(frame[14+12 : 14+16])
	dst, _ := netip.AddrFromSlice(frame[14+16 : 14+20])
	for _, h := range hosts {
		if h == src || h == dst {
			return true
		}
	}
	return false
}

// loFilter is the classic BPF program of CaptureLo: IPv4, UDP, going
// out (each frame on lo is seen going out and coming in), and from or
// to one of hosts if any; kept whole.
func loFilter(hosts []netip.Addr) []unix.SockFilter {
	const (
		ldH   = unix.BPF_LD | unix.BPF_H | unix.BPF_ABS
		ldB   = unix.BPF_LD | unix.BPF_B | unix.BPF_ABS
		ldW   = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq   = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		ret   = unix.BPF_RET | unix.BPF_K
		adPkt = 0xfffff000 + 4 // SKF_AD_OFF + SKF_AD_PKTTYPE
	)
	// Jumps name their target (drop or keep, the last two
	// instructions); they are made relative at the end.
	const next, drop, keep = 0, -1, -2
	type insn struct {
		code   uint16
		k      uint32
		jt, jf int
	}
	p := []insn{
		{ldH, 12, next, next},
		{jeq, unix.ETH_P_IP, next, drop},
		{ldB, 14 + 9, next, next},
		{jeq, unix.IPPROTO_UDP, next, drop},
		{ldW, adPkt, next, next},
	}
	var v4 []uint32
	for _, h := range hosts {
		if h.Is4() {
			b := h.As4()
			v4 = append(v4, binary.BigEndian.Uint32(b[:]))
		}
	}
	if len(v4) == 0 {
		p = append(p, insn{jeq, unix.PACKET_OUTGOING, keep, drop})
	} else {
		p = append(p, insn{jeq, unix.PACKET_OUTGOING, next, drop})
		for _, a := range v4 {
			for _, off := range []uint32{14 + 12, 14 + 16} {
				p = append(p, insn{ldW, off, next, next}, insn{jeq, a, keep, next})
			}
		}
	}
	p = append(p, insn{ret, 0, next, next}, insn{ret, 0x40000, next, next})
	at := map[int]int{drop: len(p) - 2, keep: len(p) - 1}
	rel := func(i, target int) uint8 {
		if target == next {
			return 0
		}
		return uint8(at[target] - i - 1)
	}
	out := make([]unix.SockFilter, len(p))
	for i, in := range p {
		out[i] = unix.SockFilter{Code: in.code, K: in.k, Jt: rel(i, in.jt), Jf: rel(i, in.jf)}
	}
	return out
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
