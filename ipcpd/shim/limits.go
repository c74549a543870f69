package shim

import "github.com/ouro-net/ouro/ipcpd/eth/frame"

// What a station on the segment can make this engine hold is capped by
// an admit.Admission keyed by source MAC, with the defaults of package
// admit (see "Limits" in the package documentation).

// Usage reports the incoming flows and the pending ones, in total and
// those of source src.
func (e *Engine) Usage(src frame.MAC) (flows, pending, srcFlows, srcPending int) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	t, s := e.adm.Total(), e.adm.Of(src)
	return t.Flows, t.Pending, s.Flows, s.Pending
}
