package udp

import (
	"errors"
	"io"
	"math/rand/v2"

	"github.com/ouro-net/ouro/lib/pipe"
)

// txMemory bounds the buffers of one flow's sender: a stranger may
// hold MaxFlows flows, and buffers of reused memory are resident.
const txMemory = 256 << 10

// txBuffers is how many packets of mtu bytes a flow's sender reads at
// once: txBatch, fewer for a large MTU (4 on loopback).
func txBuffers(mtu int) int { return max(1, min(txBatch, txMemory/(eidLen+mtu+1))) }

// txBatched moves packets from the flow's pipe to the peer in batches:
// one recvmmsg from the pipe, one sendmmsg to the socket.
func (u *IPCP) txBatched(fl *uflow, snd *sender) {
	f := fl.App
	var bufs, payloads [txBatch][]byte
	var sizes [txBatch]int
	var kinds [txBatch]pipe.Kind
	nb := txBuffers(fl.MTU)
	for i := range nb {
		bufs[i] = make([]byte, eidLen+fl.MTU+1)
		putDataHeader(bufs[i], fl.Remote)
		payloads[i] = bufs[i][eidLen:]
	}
	drill := newDrill(u.loss, uint64(fl.Local))
	for {
		n, err := f.Pipe.ReadBatch(payloads[:nb], sizes[:nb], kinds[:nb])
		if err != nil {
			return
		}
		done := false
		for i := 0; i < n && !done; i++ {
			switch kinds[i] {
			case pipe.Dealloc:
				done = true
				continue
			case pipe.Data:
			default:
				continue
			}
			size := sizes[i]
			if size < 0 || size > fl.MTU {
				// Larger than the MTU: the flow library should not let
				// it by.
				f.Drops.Add(1)
				continue
			}
			f.PktsIn.Add(1)
			f.BytesIn.Add(uint64(size))
			if u.loss != 0 && drill.drop() {
				u.ctr.txDrill.Add(1)
				continue
			}
			snd.add(bufs[i][:eidLen+size])
			u.eng.Counters.TxBytes.Add(uint64(eidLen + size))
		}
		sent, failed := snd.flush(u.rc)
		u.eng.Counters.TxData.Add(uint64(sent))
		if failed > 0 {
			u.eng.Counters.TxErrors.Add(uint64(failed))
			f.Drops.Add(uint64(failed))
		}
		if done {
			return
		}
	}
}

// txOneByOne is txBatched for a peer address that sendmmsg cannot be
// given here: one datagram per system call.
func (u *IPCP) txOneByOne(fl *uflow) {
	f := fl.App
	to := u.canonical(fl.Peer)
	buf := make([]byte, eidLen+fl.MTU+1)
	putDataHeader(buf, fl.Remote)
	drill := newDrill(u.loss, uint64(fl.Local))
	for {
		n, k, err := f.Pipe.Read(buf[eidLen:])
		if err != nil {
			if errors.Is(err, io.ErrShortBuffer) && !fl.Ending() {
				f.Drops.Add(1) // larger than the MTU: the flow library should not let it by
				continue
			}
			return
		}
		if k == pipe.Dealloc {
			return
		}
		if k != pipe.Data {
			continue
		}
		f.PktsIn.Add(1)
		f.BytesIn.Add(uint64(n))
		if n > fl.MTU {
			f.Drops.Add(1)
			continue
		}
		if u.loss != 0 && drill.drop() {
			u.ctr.txDrill.Add(1)
			continue
		}
		if _, err := u.conn.WriteToUDPAddrPort(buf[:eidLen+n], to); err != nil {
			u.eng.Counters.TxErrors.Add(1)
			f.Drops.Add(1)
			continue
		}
		u.eng.Counters.TxData.Add(1)
		u.eng.Counters.TxBytes.Add(uint64(eidLen + n))
	}
}

// drill decides which packets the loss drill drops: a share of them at
// random, never two in a row (see the package doc).
type drill struct {
	p       float64 // chance to drop a packet that follows a sent one
	rng     *rand.Rand
	dropped bool
}

// newDrill returns the drill for loss (the share of packets to drop,
// at most 1/2): with no two drops in a row, dropping after a sent packet
// with chance loss/(1-loss) drops loss of all packets.
func newDrill(loss float64, seed uint64) *drill {
	if loss == 0 {
		return nil
	}
	return &drill{p: loss / (1 - loss), rng: rand.New(rand.NewPCG(seed, 0x6f75726f))}
}

func (d *drill) drop() bool {
	if d.dropped {
		d.dropped = false
		return false
	}
	d.dropped = d.rng.Float64() < d.p
	return d.dropped
}
