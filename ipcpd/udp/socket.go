package udp

import (
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sockBuf is the SO_RCVBUF/SO_SNDBUF size asked for.
const sockBuf = 4 << 20

// rxBatch is how many datagrams one recvmmsg call may return at most.
const rxBatch = 16

// listen binds the IPCP's socket, sizes its buffers and makes the
// kernel fragment rather than drop datagrams above the path MTU. It
// returns the socket and the buffer sizes the kernel granted.
func listen(network string, bind netip.AddrPort) (*net.UDPConn, int, int, error) {
	c, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(bind))
	if err != nil {
		return nil, 0, 0, err // "listen udp4 ADDR: bind: address already in use"
	}
	rc, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return nil, 0, 0, fmt.Errorf("socket %s: %w", bind, err)
	}
	var rcv, snd int
	cerr := rc.Control(func(fd uintptr) {
		s := int(fd)
		for _, o := range [][2]int{{unix.SO_RCVBUFFORCE, unix.SO_RCVBUF}, {unix.SO_SNDBUFFORCE, unix.SO_SNDBUF}} {
			if unix.SetsockoptInt(s, unix.SOL_SOCKET, o[0], sockBuf) != nil {
				// Not root: the kernel caps this at net.core.[rw]mem_max.
				unix.SetsockoptInt(s, unix.SOL_SOCKET, o[1], sockBuf)
			}
		}
		if bind.Addr().Is4() {
			unix.SetsockoptInt(s, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DONT)
		} else {
			unix.SetsockoptInt(s, unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_DONT)
		}
		rcv, _ = unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUF)
		snd, _ = unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_SNDBUF)
	})
	if cerr != nil {
		c.Close()
		return nil, 0, 0, fmt.Errorf("socket %s: %w", bind, cerr)
	}
	return c, rcv, snd, nil
}

// The receiver looks at whether its batch could be smaller every
// rxShrinkCalls batches or rxShrinkAfter, whichever comes first (see
// receiver).
const (
	rxShrinkCalls = 4096
	rxShrinkAfter = 10 * time.Second
)

// receiver reads datagrams in batches with recvmmsg. Only the receive
// goroutine uses it.
//
// Each slot of the batch needs a buffer for the largest datagram the
// link can carry (64 KiB on loopback), so a full batch costs rxBatch
// times that. The receiver holds only what the traffic needs: it starts
// with one slot, doubles its batch (up to rxBatch) when two calls in a
// row return a full batch without the socket running dry between them
// (a backlog), and every rxShrinkCalls calls or rxShrinkAfter (looked
// at when a batch comes) cuts it to the smallest power of two that held
// the largest batch seen since, if that is at most half of it (a load
// steady at one batch size does not thrash: at worst one grow and one
// cut per window). An idle IPCP holds one buffer; a loaded one reads rxBatch
// datagrams per call and allocates nothing per datagram.
type receiver struct {
	hdrs  [rxBatch]unix.Mmsghdr
	iovs  [rxBatch]unix.Iovec
	names [rxBatch]unix.RawSockaddrInet6
	bufs  [rxBatch][]byte
	size  int       // bytes per buffer
	cur   int       // slots in use (a power of two, 1..rxBatch)
	n     int       // datagrams in the last batch
	errno error     // error of the last call, if any
	full  int       // consecutive full batches, no EAGAIN between
	calls int       // calls since the last look at shrinking
	peak  int       // largest batch since the last look
	since time.Time // when the window since the last look began
	now   func() time.Time
	slots atomic.Int32 // cur, for show
	fn    func(fd uintptr) bool
}

// newReceiver prepares a receiver whose buffers take size bytes each;
// it holds one until traffic asks for more. now is the clock.
func newReceiver(size int, now func() time.Time) *receiver {
	r := &receiver{size: size, now: now, since: now()}
	for i := range r.hdrs {
		h := &r.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		h.Iov = &r.iovs[i]
		h.SetIovlen(1)
	}
	r.resize(1)
	r.fn = r.recv
	return r
}

// resize makes the batch n slots: new slots get a buffer, dropped ones
// let theirs go. Only between batches (no datagram of the last batch in
// use).
func (r *receiver) resize(n int) {
	for i := r.cur; i < n; i++ {
		r.bufs[i] = make([]byte, r.size)
		r.iovs[i].Base = &r.bufs[i][0]
		r.iovs[i].SetLen(r.size)
	}
	for i := n; i < r.cur; i++ {
		r.bufs[i] = nil
		r.iovs[i].Base = nil
		r.iovs[i].SetLen(0)
	}
	r.cur = n
	r.slots.Store(int32(n))
}

// adapt sizes the batch to the traffic after a batch was handled (see
// receiver).
func (r *receiver) adapt() {
	r.peak = max(r.peak, r.n)
	r.calls++
	if r.full >= 2 && r.cur < rxBatch {
		r.resize(r.cur * 2)
		r.full, r.calls, r.peak, r.since = 0, 0, 0, r.now()
		return
	}
	if r.cur == 1 {
		return // nothing to cut: no need to look at the clock
	}
	if now := r.now(); r.calls >= rxShrinkCalls || now.Sub(r.since) >= rxShrinkAfter {
		want := 1
		for want < r.peak {
			want *= 2
		}
		if want*2 <= r.cur {
			r.resize(want)
		}
		r.calls, r.peak, r.since = 0, 0, now
	}
}

// recv is the body of one RawConn.Read: false asks the poller to wait.
// The call never blocks (MSG_DONTWAIT), so it is a raw system call,
// which does not wake the runtime's monitor thread (see lib/pipe).
func (r *receiver) recv(fd uintptr) bool {
	for i := range r.hdrs[:r.cur] {
		r.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet6
		r.hdrs[i].Hdr.Flags = 0
		r.hdrs[i].Len = 0
	}
	n, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(r.cur), unix.MSG_DONTWAIT, 0, 0)
	if e == unix.EAGAIN || e == unix.EINTR {
		if e == unix.EAGAIN {
			r.full = 0 // the socket ran dry: no backlog
		}
		return false
	}
	r.n, r.errno = 0, nil
	if e != 0 {
		r.errno = e
		return true
	}
	r.n = int(n)
	if r.n == r.cur {
		r.full++
	} else {
		r.full = 0
	}
	return true
}

// datagram returns the i-th datagram of the batch, its source, and
// whether the kernel truncated it.
func (r *receiver) datagram(i int) (b []byte, src netip.AddrPort, trunc bool) {
	h := &r.hdrs[i]
	n := min(int(h.Len), len(r.bufs[i]))
	return r.bufs[i][:n], sockaddrPort(&r.names[i]), h.Hdr.Flags&unix.MSG_TRUNC != 0
}

// sockaddrPort converts a raw socket address without allocating; the
// IPv6 scope is dropped (peers are matched without zones).
func sockaddrPort(sa *unix.RawSockaddrInet6) netip.AddrPort {
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		p := (*[2]byte)(unsafe.Pointer(&sa4.Port))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), uint16(p[0])<<8|uint16(p[1]))
	case unix.AF_INET6:
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(p[0])<<8|uint16(p[1]))
	}
	return netip.AddrPort{}
}

// txBatch is how many datagrams one sendmmsg carries at most.
const txBatch = 16

// sender sends a flow's datagrams to one address in batches with
// sendmmsg. Only the flow's txLoop uses it.
type sender struct {
	hdrs    [txBatch]unix.Mmsghdr
	iovs    [txBatch]unix.Iovec
	name    unix.RawSockaddrInet6
	namelen uint32
	n, off  int // datagrams queued, and handled so far in this flush
	failed  int // datagrams the kernel refused in this flush
	fn      func(fd uintptr) bool
}

// newSender returns a sender to to, or nil if to cannot be written as a
// raw socket address here (an IPv6 zone: the caller sends one by one).
func newSender(to netip.AddrPort) *sender {
	s := &sender{}
	switch {
	case to.Addr().Is4():
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&s.name))
		sa.Family = unix.AF_INET
		sa.Addr = to.Addr().As4()
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		p[0], p[1] = byte(to.Port()>>8), byte(to.Port())
		s.namelen = unix.SizeofSockaddrInet4
	case to.Addr().Zone() == "":
		s.name.Family = unix.AF_INET6
		s.name.Addr = to.Addr().As16()
		p := (*[2]byte)(unsafe.Pointer(&s.name.Port))
		p[0], p[1] = byte(to.Port()>>8), byte(to.Port())
		s.namelen = unix.SizeofSockaddrInet6
	default:
		return nil
	}
	for i := range s.hdrs {
		h := &s.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&s.name))
		h.Namelen = s.namelen
		h.Iov = &s.iovs[i]
		h.SetIovlen(1)
	}
	s.fn = s.send
	return s
}

// add queues datagram b (which must stay untouched until flush); it
// reports whether the batch is full.
func (s *sender) add(b []byte) bool {
	s.iovs[s.n].Base = &b[0]
	s.iovs[s.n].SetLen(len(b))
	s.n++
	return s.n == txBatch
}

// send is the body of one RawConn.Write: false asks the poller to wait;
// a raw, non-blocking call like recv's.
func (s *sender) send(fd uintptr) bool {
	for s.off < s.n {
		n, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&s.hdrs[s.off])), uintptr(s.n-s.off), unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			s.off += int(n)
		case unix.EAGAIN:
			return false
		case unix.EINTR:
		default:
			// This datagram failed (a refused port, say): count it
			// and carry on with the rest.
			s.failed++
			s.off++
		}
	}
	return true
}

// flush sends the queued datagrams; it returns how many left and how
// many failed.
func (s *sender) flush(rc syscall.RawConn) (sent, failed int) {
	if s.n == 0 {
		return 0, 0
	}
	s.off, s.failed = 0, 0
	if err := rc.Write(s.fn); err != nil {
		s.failed += s.n - s.off
	}
	for i := 0; i < s.n; i++ {
		s.iovs[i].Base = nil
	}
	n := s.n
	s.n = 0
	return n - s.failed, s.failed
}
