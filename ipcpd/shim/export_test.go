package shim

// SweepArmed reports whether the sweeper's timer is armed (or a sweep
// is running), for the tests of the idle sweeper.
func (e *Engine[A]) SweepArmed() bool {
	e.sweepMu.Lock()
	defer e.sweepMu.Unlock()
	return e.sweepArmed
}
