package unicast

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ouro-net/ouro/dt"
	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/ipcpd"
	"github.com/ouro-net/ouro/lib/clock"
	"github.com/ouro-net/ouro/lib/pipe"
)

// ForwardSized forwards one packet of size payload bytes to address 2,
// as readAdj does, and reports the ECN field its buffer carries after
// the flush (the mark must not stay on a reader's buffer).
func (l *ForwardLoop) ForwardSized(size int) uint8 {
	pkt := make([]byte, len(l.toOther)+size)
	copy(pkt, l.toOther)
	l.u.receiveFrame(l.a, &l.out, pkt)
	l.u.flush(&l.out)
	e, _ := l.u.layout.ECN(pkt[1:])
	return e
}

// DeliverECN delivers one packet carrying ECN level ecn to the local
// endpoint, batched (as readAdj does) or not.
func (l *ForwardLoop) DeliverECN(ecn uint8, batched bool) {
	pkt := append([]byte(nil), l.toSelf...)
	l.u.layout.SetECN(pkt[1:], ecn)
	if batched {
		l.u.receiveFrame(l.a, &l.out, pkt)
		l.u.flush(&l.out)
		return
	}
	l.u.receiveFrame(l.a, nil, pkt)
}

// Marked returns how many packets the adjacency sent marked.
func (l *ForwardLoop) Marked() uint64 { return l.a.ctr.Snapshot().ECNMarked }

// Queueing reports whether the loop's adjacency queues in its egress
// scheduler (its channel passed the threshold and has not drained).
func (l *ForwardLoop) Queueing() bool { return l.a.eg.active.Load() }

// PacketECN returns the ECN field of a frame read from the lower flow.
func PacketECN(frame []byte) uint8 {
	e, _ := dt.DefaultLayout().ECN(frame[1:])
	return e
}

// ECNMarkAbove is the send queue (bytes) above which the egress marks.
const ECNMarkAbove = ecnMarkAbove

// ECNPath is two members, at addresses 1 and 2, joined by one lower
// flow, forwarding with the IPCP's own code: readApp for each local
// endpoint, and for each end of the lower flow a reader that does what
// readAdj does (receiveFrame, flush). Member 2 reads its end at most
// perRead packets every gap: a slow link, so member 1's egress queues.
type ECNPath struct {
	u      [2]*IPCP
	a      [2]*adj
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewECNPath starts the two members over the two ends of a lower flow.
func NewECNPath(lower1, lower2 *flow.Flow, gap time.Duration, perRead int) *ECNPath {
	ctx, cancel := context.WithCancel(context.Background())
	p := &ECNPath{cancel: cancel}
	for i, lower := range []*flow.Flow{lower1, lower2} {
		self, other := uint64(i+1), uint64(2-i)
		u := &IPCP{layout: dt.DefaultLayout(), addr: self, fib: dt.NewFIB(1), clk: clock.Real(), ctx: ctx,
			log: hclog.NewNullLogger()}
		u.cfg.TTL = 16
		a := &adj{id: 7, f: lower}
		adjs := map[uint64]*adj{7: a}
		u.adjs.Store(&adjs)
		u.fib.Set(other, dt.Entry{Primary: []dt.NextHop{{ID: 7}}})
		p.u[i], p.a[i] = u, a
		limit, pause := fwdBatch, time.Duration(0)
		if i == 1 {
			limit, pause = min(max(perRead, 1), fwdBatch), gap
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			rb := newRecvBufs(nil, maxPacket)
			var sizes [fwdBatch]int
			var out outBatch
			for {
				got, err := a.f.ReadBatch(rb.bufs, sizes[:min(len(rb.bufs), limit)])
				if err != nil {
					return
				}
				for j := 0; j < got; j++ {
					if sizes[j] > 0 {
						u.receiveFrame(a, &out, rb.bufs[j][:sizes[j]])
					}
				}
				u.flush(&out)
				rb.adapt(got, false)
				if pause > 0 {
					time.Sleep(pause)
				}
			}
		}()
	}
	return p
}

// Connect makes endpoint eid at both members, each the other's remote,
// and returns their application ends (member 1's, member 2's).
func (p *ECNPath) Connect(eid uint64) (*pipe.Pipe, *pipe.Pipe, error) {
	var apps [2]*pipe.Pipe
	for i, u := range p.u {
		ipcpEnd, appEnd, err := pipe.Pair()
		if err != nil {
			return nil, nil, err
		}
		apps[i] = appEnd
		ep := &endpoint{eid: eid, f: &ipcpd.Flow{Pipe: ipcpEnd}, remoteAddr: uint64(2 - i), remoteEID: eid, mtu: 1400}
		u.eps.Store(eid, ep)
		u.wg.Add(1)
		go u.readApp(ep)
	}
	return apps[0], apps[1], nil
}

// Marked returns how many packets member 1 sent marked.
func (p *ECNPath) Marked() uint64 { return p.a[0].ctr.Snapshot().ECNMarked }

// Wait waits for the members' goroutines, once the caller closed the
// application ends and the lower flow (the test's cleanup does).
func (p *ECNPath) Wait() {
	p.cancel()
	p.wg.Wait()
	p.u[0].wg.Wait()
	p.u[1].wg.Wait()
}
