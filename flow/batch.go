package flow

import (
	"fmt"
	"io"
	"net"

	"github.com/ouro-net/ouro/lib/pipe"
)

// MaxBatch is the most packets one ReadBatch or WriteBatch call moves
// through the kernel at once.
const MaxBatch = pipe.MaxBatch

// ReadBatch reads up to len(bufs) packets with one system call on a raw
// flow, waiting only for the first: packet i lands in bufs[i] and its
// length in sizes[i] (-1 if it was longer than bufs[i] and truncated).
// It returns how many packets it read; io.EOF, ErrDown and deadlines
// are as for Read. A flow-state change is applied as Read applies it.
// On a reliable flow it reads one message, as Read does.
func (f *Flow) ReadBatch(bufs [][]byte, sizes []int) (int, error) {
	if len(bufs) == 0 || len(sizes) == 0 {
		return 0, nil
	}
	if f.rel != nil {
		n, err := f.rel.Read(bufs[0])
		if err != nil {
			return 0, err
		}
		sizes[0] = n
		return 1, nil
	}
	if f.sess != nil {
		return f.readBatchSealed(bufs, sizes)
	}
	return f.readBatchRaw(bufs, sizes, nil)
}

// readBatchRaw is ReadBatch of the packets as the channel carries them;
// when ce is not nil, ce[i] tells whether packet i arrived marked
// congestion experienced (a DataCE record).
func (f *Flow) readBatchRaw(bufs [][]byte, sizes []int, ce []bool) (int, error) {
	if f.closed.Load() {
		return 0, net.ErrClosed
	}
	if f.eof.Load() {
		return 0, io.EOF
	}
	var kinds [pipe.MaxBatch]pipe.Kind
	for {
		if dp := f.dp.Load(); dp != nil {
			n, err := f.readBatchDirect(dp, bufs, sizes)
			for i := 0; i < n && i < len(ce); i++ {
				ce[i] = false // the direct socket carries no marks
			}
			return n, err
		}
		n, err := f.p.ReadBatch(bufs, sizes, kinds[:])
		if err != nil {
			return 0, f.mapErr(err)
		}
		got := 0
		for i := 0; i < n; i++ {
			switch kinds[i] {
			case pipe.Data, pipe.DataCE:
				if kinds[i] == pipe.DataCE {
					f.ce.Add(1)
				}
				if got != i {
					// A state record came before: close the gap.
					if sizes[i] >= 0 {
						copy(bufs[got], bufs[i][:sizes[i]])
					}
					sizes[got] = sizes[i]
				}
				if got < len(ce) {
					ce[got] = kinds[i] == pipe.DataCE
				}
				got++
			case pipe.Dealloc:
				f.eof.Store(true)
				if got == 0 {
					return 0, io.EOF
				}
				return got, nil
			case pipe.Down, pipe.Up:
				f.setState(kinds[i])
			case pipe.Direct:
				f.goDirect()
			}
		}
		if got > 0 {
			return got, nil
		}
	}
}

// WriteBatch sends every packet of bufs on a raw flow with as few system
// calls as the channel allows, and returns how many it sent. Each packet
// is one packet, as with Write; a packet above the MTU stops the batch
// with ErrTooBig before anything of it is sent. On a reliable flow it
// writes the packets one by one.
func (f *Flow) WriteBatch(bufs [][]byte) (int, error) {
	if f.rel == nil && f.sess != nil {
		return f.writeBatchSealed(bufs)
	}
	if f.rel != nil {
		// Reliable: packet by packet (FRCT batches on its own).
		for i, b := range bufs {
			if _, err := f.Write(b); err != nil {
				return i, err
			}
		}
		return len(bufs), nil
	}
	if f.closed.Load() {
		return 0, net.ErrClosed
	}
	if f.info.MTU > 0 {
		for i, b := range bufs {
			if len(b) > f.info.MTU {
				n, err := f.WriteBatch(bufs[:i])
				if err != nil {
					return n, err
				}
				return n, fmt.Errorf("%w: packet %d of the batch: %d bytes, MTU %d", ErrTooBig, i, len(b), f.info.MTU)
			}
		}
	}
	n, err := f.data().WriteBatch(bufs)
	if err != nil {
		return n, f.mapErr(err)
	}
	return n, nil
}
