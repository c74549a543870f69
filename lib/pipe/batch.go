package pipe

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// MaxBatch is the most records one ReadBatch or WriteBatch moves.
const MaxBatch = 64

// batch is the preallocated recvmmsg/sendmmsg state of one direction.
type batch struct {
	hdrs  [MaxBatch]unix.Mmsghdr
	iovs  [MaxBatch][2]unix.Iovec
	kinds [MaxBatch]byte
	ctls  *[MaxBatch][64]byte // control buffers, reads only
	n     int                 // records asked for
	got   int                 // records moved
	err   unix.Errno
}

func (b *batch) init() {
	for i := range b.hdrs {
		b.hdrs[i].Hdr.Iov = &b.iovs[i][0]
		b.iovs[i][0].Base = &b.kinds[i]
		b.iovs[i][0].SetLen(1)
	}
}

// set points record i at payload buf.
func (b *batch) set(i int, buf []byte) {
	b.hdrs[i].Hdr.Flags = 0
	b.hdrs[i].Len = 0
	if b.ctls != nil {
		b.hdrs[i].Hdr.Control = &b.ctls[i][0]
		b.hdrs[i].Hdr.SetControllen(len(b.ctls[i]))
	}
	if len(buf) > 0 {
		b.iovs[i][1].Base = &buf[0]
		b.iovs[i][1].SetLen(len(buf))
		b.hdrs[i].Hdr.SetIovlen(2)
	} else {
		b.iovs[i][1].Base = nil
		b.hdrs[i].Hdr.SetIovlen(1)
	}
}

// clear drops the references to the caller's buffers.
func (b *batch) clear() {
	for i := 0; i < b.n; i++ {
		b.iovs[i][1].Base = nil
	}
}

func (p *Pipe) doReadBatch(fd uintptr) bool {
	b := p.rb
	n, _, e := p.call6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.hdrs[0])), uintptr(b.n), unix.MSG_DONTWAIT, 0, 0)
	if e == unix.EAGAIN || e == unix.EINTR {
		return false
	}
	b.got, b.err = int(n), e
	return true
}

func (p *Pipe) doWriteBatch(fd uintptr) bool {
	b := p.wb
	n, _, e := p.call6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.hdrs[0])), uintptr(b.n), unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT, 0, 0)
	if e == unix.EAGAIN || e == unix.EINTR {
		return false
	}
	b.got, b.err = int(n), e
	return true
}

// ReadBatch reads up to len(bufs) records (at most MaxBatch) with one
// system call, waiting only for the first. Record i goes to bufs[i]:
// sizes[i] is its payload length and kinds[i] its kind; a record longer
// than its buffer is truncated and its size set to -1. It returns how
// many records it read; the error, if any, concerns the channel (as for
// Read: ErrGone when the other end vanished before anything was read).
func (p *Pipe) ReadBatch(bufs [][]byte, sizes []int, kinds []Kind) (int, error) {
	n := min(len(bufs), len(sizes), len(kinds), MaxBatch)
	if n == 0 {
		return 0, nil
	}
	p.rmu.Lock()
	defer p.rmu.Unlock()
	if p.rb == nil {
		p.rb = new(batch)
		p.rb.ctls = new([MaxBatch][64]byte)
		p.rb.init()
		p.rbfn = p.doReadBatch
	}
	b := p.rb
	for {
		for i := 0; i < n; i++ {
			b.set(i, bufs[i])
		}
		b.n = n
		err := p.rc.Read(p.rbfn)
		b.clear()
		if err != nil {
			return 0, mapErr(err)
		}
		if b.err != 0 {
			if p.dgram && b.err == unix.ECONNREFUSED {
				continue // the peer's socket went away once: not an end
			}
			return 0, mapErr(b.err)
		}
		got := 0
		for i := 0; i < b.got; i++ {
			h := &b.hdrs[i]
			l := int(h.Len)
			if h.Hdr.Controllen > 0 && l > 0 {
				p.keepFile(Kind(b.kinds[i]), b.ctls[i][:h.Hdr.Controllen])
			}
			if l == 0 {
				if p.dgram {
					continue // an empty datagram: no record at all
				}
				// End of stream: the other end closed.
				if got == 0 {
					return 0, ErrGone
				}
				break
			}
			if got != i {
				// Skipped empty datagrams: the record moves down, its
				// payload with it.
				copy(bufs[got], bufs[i][:min(l-1, len(bufs[i]))])
			}
			kinds[got] = Kind(b.kinds[i])
			sizes[got] = l - 1
			if h.Hdr.Flags&unix.MSG_TRUNC != 0 {
				sizes[got] = -1
			}
			got++
		}
		if got > 0 {
			return got, nil
		}
	}
}

// WriteBatch sends len(bufs) data records (at most MaxBatch at a time)
// with as few system calls as the socket buffer allows, waiting while
// it is full. It returns how many it sent.
func (p *Pipe) WriteBatch(bufs [][]byte) (int, error) { return p.WriteBatchKinds(bufs, nil) }

// WriteBatchKinds is WriteBatch where record i is of kind kinds[i]
// (Data where kinds is nil or shorter than bufs): an IPCP delivers
// CE-marked packets as DataCE in the same batch as the others.
func (p *Pipe) WriteBatchKinds(bufs [][]byte, kinds []Kind) (int, error) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if p.wb == nil {
		p.wb = new(batch)
		p.wb.init()
		p.wbfn = p.doWriteBatch
	}
	b := p.wb
	if p.dgram && p.gso == nil {
		p.gso = new(gsoState)
	}
	sent := 0
	for sent < len(bufs) {
		n := min(len(bufs)-sent, MaxBatch)
		if p.dgram && !p.gso.off {
			if r := gsoRun(bufs[sent:]); r >= 2 {
				ok, err := p.writeGSO(bufs[sent:sent+r], kinds, sent)
				if err != nil {
					return sent, err
				}
				if ok {
					sent += r
					continue
				}
			}
			// Up to the next run that can go segmented.
			for j := sent + 1; j < sent+n; j++ {
				if gsoRun(bufs[j:]) >= 2 {
					n = j - sent
					break
				}
			}
		}
		for i := 0; i < n; i++ {
			k := Data
			if sent+i < len(kinds) {
				k = kinds[sent+i]
			}
			b.kinds[i] = byte(k)
			b.set(i, bufs[sent+i])
		}
		b.n = n
		err := p.rc.Write(p.wbfn)
		b.clear()
		if err != nil {
			return sent, mapErr(err)
		}
		if b.err != 0 {
			if p.dgram && b.err == unix.ECONNREFUSED {
				// The peer's socket is gone: this packet is lost.
				sent++
				continue
			}
			return sent, mapErr(b.err)
		}
		sent += b.got
	}
	return sent, nil
}
