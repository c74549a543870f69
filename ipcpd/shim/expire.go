package shim

import "time"

// sweepEvery is the sweeper's period: the spacing of a requester's
// confirmations, and the granularity of the confirmation timeout.
const sweepEvery = 100 * time.Millisecond

// SweepEvery is sweepEvery, for the tests of the media.
const SweepEvery = sweepEvery

// sweep runs every sweepEvery (on the engine's clock) until Close: it
// ends the incoming flows whose requester did not confirm them within
// ConfirmTimeout, and sends the repeated confirmations of outgoing
// flows. e.work counts it.
func (e *Engine[A]) sweep() {
	defer e.work.Done()
	t := e.clk.NewTimer(sweepEvery)
	defer t.Stop()
	var expired, confirm []*Flow[A]
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C():
		}
		now := e.clk.Now()
		expired, confirm = expired[:0], confirm[:0]
		e.mu.RLock()
		for _, fl := range e.flows {
			if fl.state.Load() != stateUp {
				continue
			}
			switch {
			case fl.Incoming && !fl.confirmed.Load() && now.Sub(fl.born) >= e.t.ConfirmTimeout:
				expired = append(expired, fl)
			case !fl.Incoming && fl.confirmsLeft.Load() > 0:
				fl.confirmsLeft.Add(-1)
				confirm = append(confirm, fl)
			}
		}
		e.mu.RUnlock()
		for _, fl := range confirm {
			e.sendConfirm(fl)
		}
		for _, fl := range expired {
			if fl.end(endExpired) {
				e.Counters.ExpiredUnconfirmed.Add(1)
				e.log.Debug("incoming flow never confirmed; ended", "name", fl.App.Name, "eid", fl.Local)
			}
		}
		clear(expired)
		clear(confirm)
		t.Reset(sweepEvery) // after the sweep, so that a test on a fake clock sees it done
	}
}
