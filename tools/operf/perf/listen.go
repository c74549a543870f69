package perf

import (
	"context"

	"github.com/ouro-net/ouro/flow"
)

// ServeFlows accepts flows on l and serves each (see Serve) in its own
// goroutine until ctx ends; it then closes the open flows and waits for
// their goroutines. logf, if not nil, is told of flows coming and
// going; onRun, if not nil, of every run that ends.
func ServeFlows(ctx context.Context, l *flow.Listener, logf func(format string, args ...any),
	onRun func(f *flow.Flow, s RunSummary)) error {
	return l.Serve(ctx, func(f *flow.Flow) {
		if logf != nil {
			logf("new flow %d (qos %s, layer %s)", f.ID(), f.QoS(), f.Layer())
		}
		var report func(RunSummary)
		if onRun != nil {
			report = func(s RunSummary) { onRun(f, s) }
		}
		err := Serve(ctx, f, report)
		if logf == nil {
			return
		}
		if err != nil {
			logf("flow %d ended: %v", f.ID(), err)
		} else {
			logf("flow %d closed", f.ID())
		}
	})
}
