package shim

import "time"

// sweepEvery is the sweeper's period: the spacing of a requester's
// Confirms, and the granularity of the confirmation timeout.
const sweepEvery = 100 * time.Millisecond

// sweep runs every sweepEvery (on the engine's clock) until Close: it
// ends the incoming flows whose requester did not confirm them within
// ConfirmTimeout, and sends the repeated Confirms of outgoing flows.
// e.wg counts it.
func (e *Engine) sweep() {
	defer e.wg.Done()
	t := e.clk.NewTimer(sweepEvery)
	defer t.Stop()
	type confirm struct {
		fr            *flowRec
		local, remote uint16
	}
	var expired []*flowRec
	var confirms []confirm
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C():
		}
		now := e.clk.Now()
		expired, confirms = expired[:0], confirms[:0]
		e.mu.Lock()
		for _, fr := range e.flows {
			if fr.state != stateUp {
				continue
			}
			switch {
			case fr.incoming && !fr.confirmed && now.Sub(fr.born) >= e.t.ConfirmTimeout:
				expired = append(expired, fr)
			case !fr.incoming && fr.confirmsLeft > 0:
				fr.confirmsLeft--
				confirms = append(confirms, confirm{fr, fr.local, fr.remote})
			}
		}
		if len(expired) > 0 && !e.closed {
			e.wg.Add(len(expired))
		} else {
			expired = expired[:0]
		}
		e.mu.Unlock()
		for _, c := range confirms {
			e.sendConfirm(c.fr.peer, c.local, c.remote)
		}
		for _, fr := range expired {
			e.Counters.ExpiredUnconfirmed.Add(1)
			e.log.Debug("incoming flow never confirmed; ended", "name", fr.name, "peer", fr.peer, "eid", fr.local)
			// Ending reports to the IRMd: off the sweeper.
			go func() {
				defer e.wg.Done()
				e.endFlow(fr, endExpired)
			}()
		}
		clear(expired)
		clear(confirms)
		t.Reset(sweepEvery)
	}
}
