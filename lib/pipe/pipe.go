// Package pipe is the data channel between an application and its IPCP
// (or between two local applications): one end of a SOCK_SEQPACKET
// socket pair, one packet per record, each record led by a one-byte
// kind so that deallocation and link events travel in band, in order
// with the data.
//
// Reads and writes are single recvmsg/sendmsg calls with two iovecs
// (kind byte, payload), so the payload is never copied in user space,
// and go through the runtime poller, so deadlines work. A record of
// zero bytes means the other process closed without saying goodbye:
// the end is gone (for an application, its IPCP died).
//
// A record of kind Direct carries a descriptor (SCM_RIGHTS): a shim
// IPCP hands its application a connected datagram socket that reaches
// the peer application's socket, so that data no longer crosses the
// IPCP process (see NewDatagram). The same record format then runs over
// that socket, one record per datagram. On such a data socket,
// WriteBatch sends a run of records of one size as one segmented send
// (UDP_SEGMENT, see gso.go): on loopback the IP stack then runs once
// per run, not once per record.
//
// The data path's system calls (recvmsg, sendmsg, recvmmsg, sendmmsg
// and the SIOCOUTQ ioctl) never block: the descriptors are non-blocking
// and the calls say MSG_DONTWAIT besides. So they may go to the kernel
// as raw system calls, without telling the Go scheduler that the
// goroutine may block; what waits for room or data waits in the
// runtime poller (or poll(2), DatagramWriter), never in a raw call. A
// scheduled call (syscall.Syscall) in a process whose processors were
// all idle, which is every IPCP between two bursts, also wakes the
// runtime's monitor thread (sysmon) with a futex: in the loopback bulk
// bench that wake-up and the monitor's own sleeping were about 9% of
// the machine's CPU, and raw calls raised a reliable flow's goodput by
// about half and cut a two-hop round trip from 0.20 to 0.16 ms.
//
// A socket-pair end (an application's or an IPCP's channel) makes raw
// calls. A data socket (NewDatagram) makes scheduled calls unless
// SetRawCalls says otherwise, which a forwarding process does for its
// lower flows (flow.WithForwarding): measured on a 2-core VM, the
// one-hop round trip between two applications over direct sockets took
// 0.06-0.09 ms with raw calls at both ends and 0.02-0.05 ms with
// scheduled ones, while the IPCPs' and the two-hop figures were as good
// as with raw calls everywhere. Why the scheduled calls help there is
// not known (the monitor thread they wake changes how the VM's idle
// processors are woken); the choice is the measured one.
package pipe

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Kind is the first byte of every record.
type Kind uint8

// Record kinds.
const (
	// Data carries one packet.
	Data Kind = 0
	// Dealloc says the sender deallocated the flow: the reader's EOF.
	Dealloc Kind = 1
	// Down says the flow lost its path (carrier loss, lower flow gone).
	Down Kind = 2
	// Up says the flow has a path again.
	Up Kind = 3
	// Direct hands the reader a data socket (see TakeFile): from now
	// on the flow's data goes through it, and only the other kinds
	// through this channel.
	Direct Kind = 4
	// DataCE carries one packet that arrived marked congestion
	// experienced by the layer (its header's ECN field was set on the
	// way). Only an IPCP writes it, towards an application; a reader
	// that does not care about marks treats it as Data (IsData).
	DataCE Kind = 5
	// Bend carries one byte, the flow's new path label: only an
	// application writes it, towards its IPCP, which stamps that label
	// on the flow's packets from then on (path bending; see package dt).
	// Records after it in the channel leave with the new label. An IPCP
	// whose layer has no path label ignores it, like any kind it does
	// not know.
	Bend Kind = 6
)

// IsData reports whether k is a record that carries a packet (Data or
// DataCE).
func (k Kind) IsData() bool { return k == Data || k == DataCE }

func (k Kind) String() string {
	switch k {
	case Data:
		return "data"
	case Dealloc:
		return "dealloc"
	case Down:
		return "down"
	case Up:
		return "up"
	case Direct:
		return "direct"
	case DataCE:
		return "data-ce"
	case Bend:
		return "bend"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// ErrGone is returned when the other end vanished without a Dealloc.
var ErrGone = errors.New("other end of the flow is gone")

// BufSize is the socket buffer size asked for each end. It is kept
// shallow on purpose: a channel's queue is latency (at 25k packets/s,
// 4 MiB of 1400 B packets is 70 ms), and a deep queue between a layer
// and its lower IPCP delays the adjacency hellos behind data until
// keepalive takes a busy link for a dead one. 512 KiB (about 200 full
// packets, given kernel per-packet overhead) still covers the
// scheduling latency of a loaded host at line rate; back-pressure
// does the rest.
const BufSize = 512 << 10

// Pipe is one end of a flow's data channel. One reader and one writer
// may use it concurrently.
type Pipe struct {
	uc    net.Conn
	rc    syscall.RawConn
	dgram bool        // a datagram socket (NewDatagram), not a socket pair end
	raw   atomic.Bool // raw system calls on the data path (see the package doc)

	// A descriptor received with a Direct record, until TakeFile.
	fmu   sync.Mutex
	rfile *os.File

	rmu   sync.Mutex
	rhdr  unix.Msghdr
	rctl  [64]byte // control messages: room for a descriptor
	riov  [2]unix.Iovec
	rkind [1]byte
	rn    int
	rflag int
	rerr  error
	rfn   func(uintptr) bool
	rb    *batch // ReadBatch state, made on first use
	rbfn  func(uintptr) bool

	wmu   sync.Mutex
	whdr  unix.Msghdr
	wiov  [2]unix.Iovec
	wkind [1]byte
	werr  error
	wfn   func(uintptr) bool
	wb    *batch // WriteBatch state, made on first use
	wbfn  func(uintptr) bool
	gso   *gsoState     // segmented sends of a data socket, made on first use
	qfn   func(uintptr) // Queued's ioctl, under wmu
	qn    int
}

// Pair returns a connected pair of Pipes.
func Pair() (*Pipe, *Pipe, error) {
	a, b, err := FilePair()
	if err != nil {
		return nil, nil, err
	}
	pa, err := New(a)
	if err != nil {
		b.Close()
		return nil, nil, err
	}
	pb, err := New(b)
	if err != nil {
		pa.Close()
		return nil, nil, err
	}
	return pa, pb, nil
}

// FilePair returns the two ends of a new channel as files, for passing
// to other processes.
func FilePair() (*os.File, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	for _, fd := range fds {
		setBuffers(fd)
	}
	return os.NewFile(uintptr(fds[0]), "flow"), os.NewFile(uintptr(fds[1]), "flow"), nil
}

func setBuffers(fd int) {
	for _, opt := range [][2]int{{unix.SO_SNDBUFFORCE, unix.SO_SNDBUF}, {unix.SO_RCVBUFFORCE, unix.SO_RCVBUF}} {
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt[0], BufSize) != nil {
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt[1], BufSize)
		}
	}
}

// New wraps a channel descriptor; it takes ownership of f.
func New(f *os.File) (*Pipe, error) { return open(f, false) }

// NewDatagram wraps a connected datagram socket (UDP) that carries the
// records of a flow, one per datagram; it takes ownership of f. Unlike a
// socket pair end, it never reports the other end gone: an empty
// datagram is ignored, and a refused send (the peer's socket closed) is
// a lost packet. The flow's end is told by its channel to the IPCP.
func NewDatagram(f *os.File) (*Pipe, error) { return open(f, true) }

// open wraps f, which must be a UNIX socket (dgram false) or a UDP
// socket (dgram true).
func open(f *os.File, dgram bool) (*Pipe, error) {
	what, want := "flow descriptor", "UNIX"
	if dgram {
		what, want = "data socket", "UDP"
	}
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	_, isUnix := c.(*net.UnixConn)
	_, isUDP := c.(*net.UDPConn)
	if (dgram && !isUDP) || (!dgram && !isUnix) {
		c.Close()
		return nil, fmt.Errorf("%s is not a %s socket", what, want)
	}
	return wrap(c, dgram)
}

func wrap(c net.Conn, dgram bool) (*Pipe, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		c.Close()
		return nil, errors.New("flow descriptor has no raw access")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("flow descriptor: %w", err)
	}
	p := &Pipe{uc: c, rc: rc, dgram: dgram}
	p.raw.Store(!dgram)
	p.rfn = p.doRead
	p.wfn = p.doWrite
	p.qfn = p.doQueued
	p.rhdr.Iov = &p.riov[0]
	p.riov[0].Base = &p.rkind[0]
	p.riov[0].SetLen(1)
	p.whdr.Iov = &p.wiov[0]
	p.wiov[0].Base = &p.wkind[0]
	p.wiov[0].SetLen(1)
	return p, nil
}

// keepFile records the descriptor that came with a record of kind k (in
// the control message ctl): a Direct record's is kept for TakeFile, any
// other is closed.
func (p *Pipe) keepFile(k Kind, ctl []byte) {
	msgs, err := unix.ParseSocketControlMessage(ctl)
	if err != nil {
		return
	}
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			f := os.NewFile(uintptr(fd), "flow data socket")
			p.fmu.Lock()
			if k == Direct && p.rfile == nil {
				p.rfile, f = f, nil
			}
			p.fmu.Unlock()
			if f != nil {
				f.Close()
			}
		}
	}
}

// TakeFile returns the descriptor of the last Direct record read, once.
func (p *Pipe) TakeFile() *os.File {
	p.fmu.Lock()
	defer p.fmu.Unlock()
	f := p.rfile
	p.rfile = nil
	return f
}

// WriteFile sends a record of kind k carrying descriptor f (f stays the
// caller's).
func (p *Pipe) WriteFile(k Kind, f *os.File) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	var werr error
	err := p.rc.Write(func(fd uintptr) bool {
		werr = unix.Sendmsg(int(fd), []byte{byte(k)}, unix.UnixRights(int(f.Fd())), nil, unix.MSG_NOSIGNAL)
		return werr != unix.EAGAIN
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		return mapErr(err)
	}
	return nil
}

func (p *Pipe) doRead(fd uintptr) bool {
	n, _, e := p.call(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&p.rhdr)), unix.MSG_DONTWAIT)
	if e == unix.EAGAIN {
		return false
	}
	if e == unix.EINTR {
		return false
	}
	p.rn = int(n)
	p.rflag = int(p.rhdr.Flags)
	if p.rhdr.Controllen > 0 && e == 0 && n > 0 {
		p.keepFile(Kind(p.rkind[0]), p.rctl[:p.rhdr.Controllen])
	}
	if e != 0 {
		p.rerr = e
	} else {
		p.rerr = nil
	}
	return true
}

func (p *Pipe) doWrite(fd uintptr) bool {
	_, _, e := p.call(unix.SYS_SENDMSG, fd, uintptr(unsafe.Pointer(&p.whdr)), unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT)
	if e == unix.EAGAIN || e == unix.EINTR {
		return false
	}
	if e != 0 {
		p.werr = e
	} else {
		p.werr = nil
	}
	return true
}

// Read reads one record into b and returns its kind and payload length.
// A payload longer than b is truncated and reported with
// io.ErrShortBuffer. When the other end vanished it returns ErrGone.
func (p *Pipe) Read(b []byte) (int, Kind, error) {
	p.rmu.Lock()
	defer p.rmu.Unlock()
	if len(b) > 0 {
		p.riov[1].Base = &b[0]
		p.riov[1].SetLen(len(b))
		p.rhdr.SetIovlen(2)
	} else {
		p.riov[1].Base = nil
		p.rhdr.SetIovlen(1)
	}
	for {
		p.rhdr.Flags = 0
		p.rhdr.Control = &p.rctl[0]
		p.rhdr.SetControllen(len(p.rctl))
		err := p.rc.Read(p.rfn)
		if err != nil {
			p.riov[1].Base = nil
			return 0, Data, mapErr(err)
		}
		if p.dgram && (p.rn == 0 || errors.Is(p.rerr, unix.ECONNREFUSED)) {
			continue // an empty datagram, or an old refusal: not an end
		}
		break
	}
	p.riov[1].Base = nil
	if p.rerr != nil {
		return 0, Data, mapErr(p.rerr)
	}
	if p.rn == 0 {
		return 0, Data, ErrGone
	}
	n := p.rn - 1
	k := Kind(p.rkind[0])
	if p.rflag&unix.MSG_TRUNC != 0 {
		return n, k, io.ErrShortBuffer
	}
	return n, k, nil
}

// Write sends one data record.
func (p *Pipe) Write(b []byte) error { return p.WriteKind(Data, b) }

// WriteKind sends one record of kind k with payload b.
func (p *Pipe) WriteKind(k Kind, b []byte) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	p.wkind[0] = byte(k)
	if len(b) > 0 {
		p.wiov[1].Base = &b[0]
		p.wiov[1].SetLen(len(b))
		p.whdr.SetIovlen(2)
	} else {
		p.wiov[1].Base = nil
		p.whdr.SetIovlen(1)
	}
	err := p.rc.Write(p.wfn)
	p.wiov[1].Base = nil
	if err != nil {
		return mapErr(err)
	}
	if p.werr != nil {
		if p.dgram && errors.Is(p.werr, unix.ECONNREFUSED) {
			return nil // the peer's socket is gone: a lost packet
		}
		return mapErr(p.werr)
	}
	return nil
}

func mapErr(err error) error {
	switch {
	case errors.Is(err, unix.EPIPE), errors.Is(err, unix.ECONNRESET), errors.Is(err, unix.ENOTCONN):
		return ErrGone
	case errors.Is(err, unix.EMSGSIZE):
		return fmt.Errorf("packet too large for the flow channel: %w", err)
	}
	return err
}

// Dgram reports whether p is a datagram socket (NewDatagram).
func (p *Pipe) Dgram() bool { return p.dgram }

// SetReadDeadline sets the deadline for Read.
func (p *Pipe) SetReadDeadline(t time.Time) error { return p.uc.SetReadDeadline(t) }

// SetWriteDeadline sets the deadline for Write.
func (p *Pipe) SetWriteDeadline(t time.Time) error { return p.uc.SetWriteDeadline(t) }

// Close closes this end; the other end reads ErrGone unless a Dealloc
// was written first.
func (p *Pipe) Close() error { return p.uc.Close() }

// Dealloc tells the other end the flow is deallocated, then closes.
func (p *Pipe) Dealloc() error {
	p.uc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	err := p.WriteKind(Dealloc, nil)
	p.uc.Close()
	return err
}

// Queued reports how many bytes this end sent that the other end has
// not consumed yet (SIOCOUTQ: for a socket pair, the records still
// queued at the reader, counted with the kernel's per-record overhead;
// for a datagram socket, what waits to leave the host). The forwarding
// path reads it as the congestion of a lower flow.
// It does not allocate (it is asked once per forwarded batch).
func (p *Pipe) Queued() int {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	p.qn = 0
	p.rc.Control(p.qfn)
	return p.qn
}

func (p *Pipe) doQueued(fd uintptr) {
	var v int32
	if _, _, e := unix.RawSyscall(unix.SYS_IOCTL, fd, unix.SIOCOUTQ, uintptr(unsafe.Pointer(&v))); e == 0 {
		p.qn = int(v)
	}
}

// SetSendBuffer asks for this end's send buffer (SO_SNDBUF) to be n
// bytes; the kernel doubles the figure for its bookkeeping, so a writer
// blocks once about 2n bytes (records with their overhead) wait for the
// other end. A forwarder that queues and orders packets itself keeps
// the kernel's FIFO under it short this way (ipcpd/unicast's egress).
func (p *Pipe) SetSendBuffer(n int) error {
	var serr error
	if err := p.rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, n)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("set send buffer: %w", serr)
	}
	return nil
}

// SetRawCalls makes the data path's system calls raw (true) or
// scheduled (false); see the package documentation for which suits
// whom. A socket-pair end starts raw, a data socket scheduled.
func (p *Pipe) SetRawCalls(on bool) { p.raw.Store(on) }

// RawCalls reports whether the data path makes raw system calls.
func (p *Pipe) RawCalls() bool { return p.raw.Load() }

// call makes one non-blocking data-path system call, raw or scheduled
// as SetRawCalls chose.
func (p *Pipe) call(trap, a1, a2, a3 uintptr) (uintptr, uintptr, unix.Errno) {
	if p.raw.Load() {
		return unix.RawSyscall(trap, a1, a2, a3)
	}
	return unix.Syscall(trap, a1, a2, a3)
}

// call6 is call with six arguments.
func (p *Pipe) call6(trap, a1, a2, a3, a4, a5, a6 uintptr) (uintptr, uintptr, unix.Errno) {
	if p.raw.Load() {
		return unix.RawSyscall6(trap, a1, a2, a3, a4, a5, a6)
	}
	return unix.Syscall6(trap, a1, a2, a3, a4, a5, a6)
}

// Pending reports how many bytes wait in this end's receive queue: a
// peer whose packets are queued is not silent, however late we read.
func (p *Pipe) Pending() int {
	n := 0
	p.rc.Control(func(fd uintptr) {
		v, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ)
		if err == nil {
			n = v
		}
	})
	return n
}
