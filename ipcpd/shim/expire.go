package shim

import "time"

// sweepEvery is the sweeper's period: the spacing of a requester's
// confirmations, and the granularity of the confirmation timeout.
const sweepEvery = 100 * time.Millisecond

// SweepEvery is sweepEvery, for the tests of the media.
const SweepEvery = sweepEvery

// sweep runs every sweepEvery (on the engine's clock) while a flow
// needs it, until Close: it ends the incoming flows whose requester did
// not confirm them within ConfirmTimeout, and sends the repeated
// confirmations of outgoing flows. With none of those its timer stays
// unarmed (an idle shim does not wake up for it); kickSweep arms it
// again. e.work counts it.
func (e *Engine[A]) sweep() {
	defer e.work.Done()
	t := e.sweepT
	defer t.Stop()
	var expired, confirm []*Flow[A]
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C():
		}
		e.sweepMu.Lock()
		e.sweepKicked = false
		e.sweepMu.Unlock()
		now := e.clk.Now()
		expired, confirm = expired[:0], confirm[:0]
		waiting := false // a flow still needs a later sweep
		e.mu.RLock()
		for _, fl := range e.flows {
			if fl.state.Load() != stateUp {
				continue
			}
			switch {
			case fl.Incoming && !fl.confirmed.Load() && now.Sub(fl.born) >= e.t.ConfirmTimeout:
				expired = append(expired, fl)
			case fl.Incoming && !fl.confirmed.Load():
				waiting = true
			case !fl.Incoming && fl.confirmsLeft.Load() > 0:
				if fl.confirmsLeft.Add(-1) > 0 {
					waiting = true
				}
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
		// Re-armed after the sweep, so that a test on a fake clock sees
		// it done; left unarmed when nothing waits and no flow was
		// kicked in meanwhile.
		e.sweepMu.Lock()
		e.sweepArmed = waiting || e.sweepKicked
		if e.sweepArmed {
			t.Reset(sweepEvery)
		}
		e.sweepMu.Unlock()
	}
}

// kickSweep arms the sweeper's timer, if it is not armed, for a flow
// that now needs it (an incoming flow awaiting its confirmation, an
// outgoing one with confirmations to repeat). Call it after the flow's
// state is set.
func (e *Engine[A]) kickSweep() {
	e.sweepMu.Lock()
	defer e.sweepMu.Unlock()
	e.sweepKicked = true
	if !e.sweepArmed {
		e.sweepArmed = true
		e.sweepT.Reset(sweepEvery)
	}
}
