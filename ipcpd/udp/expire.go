package udp

import (
	"github.com/ouro-net/ouro/ipcpd/shim/wire"
	"time"
)

// sweepEvery is the sweeper's period: the spacing of a requester's
// confirmations, and the granularity of the confirmation timeout.
const sweepEvery = 100 * time.Millisecond

// sweep runs every sweepEvery (on u.clk) until Close: it ends the incoming
// flows whose requester did not confirm them within the confirmation
// timeout, and sends the repeated confirmations of outgoing flows.
// u.work counts it.
func (u *IPCP) sweep() {
	defer u.work.Done()
	t := u.clk.NewTimer(sweepEvery)
	defer t.Stop()
	var expired, confirm []*uflow
	for {
		select {
		case <-u.ctx.Done():
			return
		case <-t.C():
		}
		now := u.clk.Now()
		expired, confirm = expired[:0], confirm[:0]
		u.mu.RLock()
		for _, fl := range u.flows {
			if fl.state.Load() != stateUp {
				continue
			}
			switch {
			case fl.incoming && !fl.confirmed.Load() && now.Sub(fl.born) >= u.tm.confirm:
				expired = append(expired, fl)
			case !fl.incoming && fl.confirmsLeft.Load() > 0:
				fl.confirmsLeft.Add(-1)
				confirm = append(confirm, fl)
			}
		}
		u.mu.RUnlock()
		for _, fl := range confirm {
			u.sendMsg(&wire.Msg{Type: wire.Confirm, Dst: fl.remote, Src: fl.local}, fl.to)
			u.ctr.confirmsOut.Add(1)
		}
		for _, fl := range expired {
			if fl.end(endExpired) {
				u.ctr.expiredUnconfirmed.Add(1)
				u.h.Log.Debug("incoming flow never confirmed; ended", "name", fl.f.Name, "from", fl.to, "eid", fl.local)
			}
		}
		clear(expired)
		clear(confirm)
		t.Reset(sweepEvery) // after the sweep, so that a test on a fake clock sees it done
	}
}
