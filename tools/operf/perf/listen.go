package perf

import (
	"context"
	"sync"

	"github.com/ouro-net/ouro/flow"
)

// ServeFlows accepts flows on l and serves each (see Serve) in its own
// goroutine until ctx ends; it then closes the open flows and waits for
// their goroutines. logf, if not nil, is told of flows coming and
// going; onRun, if not nil, of every run that ends.
func ServeFlows(ctx context.Context, l *flow.Listener, logf func(format string, args ...any),
	onRun func(f *flow.Flow, s RunSummary)) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	var mu sync.Mutex
	open := map[*flow.Flow]bool{}
	defer func() {
		mu.Lock()
		for f := range open {
			f.Close()
		}
		mu.Unlock()
	}()
	for {
		f, err := l.Accept(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		mu.Lock()
		open[f] = true
		mu.Unlock()
		if logf != nil {
			logf("new flow %d (qos %s, layer %s)", f.ID(), f.QoS(), f.Layer())
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var report func(RunSummary)
			if onRun != nil {
				report = func(s RunSummary) { onRun(f, s) }
			}
			err := Serve(ctx, f, report)
			mu.Lock()
			delete(open, f)
			mu.Unlock()
			f.Close()
			if logf != nil {
				if err != nil {
					logf("flow %d ended: %v", f.ID(), err)
				} else {
					logf("flow %d closed", f.ID())
				}
			}
		}()
	}
}
