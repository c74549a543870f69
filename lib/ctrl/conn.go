package ctrl

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Conn sends and receives single control messages over a SOCK_SEQPACKET
// UNIX socket. Send is safe for concurrent use; Recv is not.
type Conn struct {
	uc   *net.UnixConn
	wmu  sync.Mutex
	rbuf []byte
	oob  []byte
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

// NewConn wraps a connected seqpacket socket.
func NewConn(uc *net.UnixConn) *Conn {
	return &Conn{
		uc:   uc,
		rbuf: make([]byte, MaxMsgSize+1),
		oob:  make([]byte, unix.CmsgSpace(4*MaxFiles)),
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
	n, oobn, flags, _, err := c.uc.ReadMsgUnix(c.rbuf, c.oob)
	if err != nil {
		return nil, nil, err
	}
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
	m, err := Decode(c.rbuf[:n])
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
