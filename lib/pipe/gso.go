package pipe

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// UDP segmentation offload (UDP_SEGMENT, Linux 4.18): on a data socket
// (NewDatagram), a run of records of one size goes to the kernel as
// one buffer cut into datagrams of that size, so the stack (on
// loopback: the sender's IP output and the receiver's IP input, in the
// sender's system call) runs once per run instead of once per record.
// The receiver needs nothing: a socket without UDP_GRO gets the
// datagrams one by one. When the kernel refuses (no offload on that
// route), the pipe falls back to sendmmsg for good.

// gsoMax is the most records one segmented send carries (the kernel's
// UDP_MAX_SEGMENTS is 64 or more) and gsoBytes the most bytes.
const (
	gsoMax   = 64
	gsoBytes = 65000
)

// gsoState is the segmented send of one pipe, under wmu.
type gsoState struct {
	hdr   unix.Msghdr
	iovs  [2 * gsoMax]unix.Iovec
	kinds [gsoMax]byte
	ctl   [32]byte
	off   bool // the kernel refused: never again on this pipe
	sent  uint64
	err   unix.Errno
	fn    func(uintptr) bool
}

// gsoRun returns how many records from bufs[0] one segmented send may
// carry: records of one non-zero size, the last possibly shorter.
func gsoRun(bufs [][]byte) int {
	if len(bufs) < 2 || len(bufs[0]) == 0 {
		return 0
	}
	size := len(bufs[0])
	n, total := 1, size+1
	for n < len(bufs) && n < gsoMax {
		l := len(bufs[n])
		if l == 0 || l > size || total+l+1 > gsoBytes {
			break
		}
		n++
		total += l + 1
		if l < size {
			break // a shorter record ends the run
		}
	}
	return n
}

// writeGSO sends bufs (a gsoRun) as one segmented send; it reports
// false when segmentation is unavailable (nothing was sent).
func (p *Pipe) writeGSO(bufs [][]byte, kinds []Kind, at int) (bool, error) {
	g := p.gso
	if g.fn == nil {
		g.fn = func(fd uintptr) bool {
			_, _, e := p.call(unix.SYS_SENDMSG, fd, uintptr(unsafe.Pointer(&g.hdr)), unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT)
			if e == unix.EAGAIN || e == unix.EINTR {
				return false
			}
			g.err = e
			return true
		}
	}
	for i, b := range bufs {
		k := Data
		if at+i < len(kinds) {
			k = kinds[at+i]
		}
		g.kinds[i] = byte(k)
		g.iovs[2*i].Base = &g.kinds[i]
		g.iovs[2*i].SetLen(1)
		g.iovs[2*i+1].Base = &b[0]
		g.iovs[2*i+1].SetLen(len(b))
	}
	h := (*unix.Cmsghdr)(unsafe.Pointer(&g.ctl[0]))
	h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	*(*uint16)(unsafe.Pointer(&g.ctl[unix.CmsgLen(0)])) = uint16(len(bufs[0]) + 1)
	g.hdr = unix.Msghdr{Iov: &g.iovs[0], Control: &g.ctl[0]}
	g.hdr.SetIovlen(2 * len(bufs))
	g.hdr.SetControllen(unix.CmsgSpace(2))
	err := p.rc.Write(g.fn)
	for i := range bufs {
		g.iovs[2*i+1].Base = nil
	}
	if err != nil {
		return true, mapErr(err)
	}
	switch g.err {
	case 0, unix.ECONNREFUSED: // sent, or lost: the peer's socket is gone
		g.sent++
		return true, nil
	case unix.EIO, unix.EINVAL, unix.ENOPROTOOPT, unix.EOPNOTSUPP, unix.EMSGSIZE:
		g.off = true
		return false, nil
	}
	return true, mapErr(g.err)
}
