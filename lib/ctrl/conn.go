package ctrl

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Conn sends and receives single control messages over a SOCK_SEQPACKET
// UNIX socket. Send is safe for concurrent use; Recv is not.
//
// The receive buffer follows the messages seen rather than their bound
// (an IRMd holds one Conn per client and IPCP): Recv first peeks at the
// length of the next message (MSG_PEEK|MSG_TRUNC), then reads it into a
// buffer that fits. Messages up to keepBuf bytes go into a buffer kept
// for the next ones, grown to the largest seen (a power of two, from
// minBuf); a larger one, up to MaxMsgSize, into a buffer of its own that
// is let go once decoded; a longer one is read into one byte, truncated
// and refused (ErrTooBig) without a buffer its size.
type Conn struct {
	uc   *net.UnixConn
	rc   syscall.RawConn
	wmu  sync.Mutex
	rbuf []byte  // kept receive buffer, nil until a message comes
	one  [1]byte // what an empty or oversized message is read into
	oob  []byte
	rcv  recvd // the last read (Recv only)
	rfn  func(fd uintptr) bool
	// sendTimeout, if set, bounds each Send (a peer that does not read
	// cannot hold a sender forever); guarded by wmu.
	sendTimeout time.Duration
}

// SetSendTimeout bounds every later Send by d (0: no bound). A Send
// that times out fails with an error wrapping os.ErrDeadlineExceeded.
func (c *Conn) SetSendTimeout(d time.Duration) {
	c.wmu.Lock()
	c.sendTimeout = d
	c.wmu.Unlock()
}

// Dial connects to the control socket at path.
func Dial(path string) (*Conn, error) {
	uc, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		return nil, err
	}
	return NewConn(uc), nil
}

// Receive buffer sizes (see Conn).
const (
	minBuf  = 512
	keepBuf = 4 << 10
)

// recvd is what one read took: the buffer, and recvmsg's results.
type recvd struct {
	buf            []byte
	n, oobn, flags int
	err            error
}

// NewConn wraps a connected seqpacket socket.
func NewConn(uc *net.UnixConn) *Conn {
	c := &Conn{uc: uc, oob: make([]byte, unix.CmsgSpace(4*MaxFiles))}
	if rc, err := uc.SyscallConn(); err == nil {
		c.rc = rc
	}
	c.rfn = c.read
	return c
}

// buffer returns a buffer for a message of size bytes (see Conn).
func (c *Conn) buffer(size int) []byte {
	switch {
	case size == 0 || size > MaxMsgSize:
		return c.one[:]
	case size <= len(c.rbuf):
		return c.rbuf
	case size > keepBuf:
		return make([]byte, size)
	}
	n := minBuf
	for n < size {
		n *= 2
	}
	c.rbuf = make([]byte, n)
	return c.rbuf
}

// read is the body of one RawConn.Read: it peeks at the next message's
// length, then takes the message into a buffer that fits. False asks
// the poller to wait.
func (c *Conn) read(fd uintptr) bool {
	var size uintptr
	for {
		var e syscall.Errno
		size, _, e = unix.Syscall6(unix.SYS_RECVFROM, fd, 0, 0, unix.MSG_PEEK|unix.MSG_TRUNC|unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e == unix.EAGAIN {
			return false
		}
		if e != 0 {
			c.rcv = recvd{err: os.NewSyscallError("recvfrom", e)}
			return true
		}
		break
	}
	buf := c.buffer(int(size))
	for {
		n, oobn, flags, _, err := unix.Recvmsg(int(fd), buf, c.oob, unix.MSG_CMSG_CLOEXEC|unix.MSG_DONTWAIT)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			return false
		}
		if err != nil {
			err = os.NewSyscallError("recvmsg", err)
		}
		c.rcv = recvd{buf: buf, n: n, oobn: oobn, flags: flags, err: err}
		return true
	}
}

// FileConn wraps an inherited descriptor (such as fd 3 of an IPCP).
// It takes ownership of f.
func FileConn(f *os.File) (*Conn, error) {
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("control descriptor: %w", err)
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, errors.New("control descriptor is not a UNIX socket")
	}
	return NewConn(uc), nil
}

// Pair returns two connected Conns (SOCK_SEQPACKET socketpair); the
// second is also returned as a raw *os.File for handing to a child.
func Pair() (*Conn, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	parent := os.NewFile(uintptr(fds[0]), "ctrl")
	c, err := FileConn(parent)
	if err != nil {
		unix.Close(fds[1])
		return nil, nil, err
	}
	return c, os.NewFile(uintptr(fds[1]), "ctrl-child"), nil
}

// Cred is the identity of the process at the other end of a UNIX
// socket, as the kernel recorded it when that process connected
// (SO_PEERCRED): it cannot be forged by what the peer sends.
type Cred struct {
	PID int
	UID int
	GID int
}

// PeerCred returns the credentials of the other end (SO_PEERCRED).
func (c *Conn) PeerCred() (Cred, error) {
	rc, err := c.uc.SyscallConn()
	if err != nil {
		return Cred{}, fmt.Errorf("peer credentials: %w", err)
	}
	var cred *unix.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return Cred{}, fmt.Errorf("peer credentials: %w", err)
	}
	if cerr != nil {
		return Cred{}, fmt.Errorf("peer credentials: %w", cerr)
	}
	return Cred{PID: int(cred.Pid), UID: int(cred.Uid), GID: int(cred.Gid)}, nil
}

// PeerPID returns the process id of the other end (SO_PEERCRED), or 0
// if it cannot be had.
func (c *Conn) PeerPID() int {
	cr, err := c.PeerCred()
	if err != nil {
		return 0
	}
	return cr.PID
}

// Send writes one message with optional descriptors. The caller keeps
// ownership of files.
func (c *Conn) Send(m *Msg, files ...*os.File) error {
	m.V = Version
	b, err := Encode(m)
	if err != nil {
		return err
	}
	if len(files) > MaxFiles {
		return fmt.Errorf("send %s: %d descriptors, at most %d", m.Op, len(files), MaxFiles)
	}
	var oob []byte
	if len(files) > 0 {
		fds := make([]int, len(files))
		for i, f := range files {
			fds[i] = int(f.Fd())
		}
		oob = unix.UnixRights(fds...)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.sendTimeout > 0 {
		c.uc.SetWriteDeadline(time.Now().Add(c.sendTimeout))
	}
	_, _, err = c.uc.WriteMsgUnix(b, oob, nil)
	if err != nil {
		return fmt.Errorf("send %s: %w", m.Op, err)
	}
	return nil
}

// Recv reads one message. A malformed, oversized or wrong-version
// message is returned as an error wrapping ErrMalformed, ErrTooBig or
// ErrVersion together with whatever of the message could be parsed;
// such errors leave the connection usable. Other errors are fatal.
func (c *Conn) Recv() (*Msg, []*os.File, error) {
	if c.rc == nil {
		return nil, nil, errors.New("control connection: no raw socket")
	}
	c.rcv = recvd{}
	if err := c.rc.Read(c.rfn); err != nil {
		return nil, nil, err
	}
	r := c.rcv
	c.rcv = recvd{}
	if r.err != nil {
		return nil, nil, r.err
	}
	n, oobn, flags := r.n, r.oobn, r.flags
	files := parseFiles(c.oob[:oobn])
	if n == 0 && oobn == 0 {
		return nil, nil, errClosed
	}
	if flags&unix.MSG_TRUNC != 0 || n > MaxMsgSize {
		closeFiles(files)
		return nil, nil, fmt.Errorf("%w: more than %d bytes", ErrTooBig, MaxMsgSize)
	}
	if flags&unix.MSG_CTRUNC != 0 {
		closeFiles(files)
		return nil, nil, fmt.Errorf("%w: too many descriptors", ErrMalformed)
	}
	m, err := Decode(r.buf[:n])
	if err != nil {
		closeFiles(files)
		return m, nil, err
	}
	return m, files, nil
}

// Close closes the socket.
func (c *Conn) Close() error { return c.uc.Close() }

var errClosed = errors.New("control connection closed by peer")

// IsRecoverable reports whether a Recv error leaves the connection usable.
func IsRecoverable(err error) bool {
	return errors.Is(err, ErrMalformed) || errors.Is(err, ErrTooBig) || errors.Is(err, ErrVersion)
}

func parseFiles(oob []byte) []*os.File {
	if len(oob) == 0 {
		return nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var files []*os.File
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			unix.CloseOnExec(fd)
			files = append(files, os.NewFile(uintptr(fd), "passed"))
		}
	}
	return files
}

// CloseFiles closes every descriptor in files.
func CloseFiles(files []*os.File) { closeFiles(files) }

func closeFiles(files []*os.File) {
	for _, f := range files {
		if f != nil {
			f.Close()
		}
	}
}
