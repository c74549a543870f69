package flow

// IsDirect reports whether f's packets go through a data socket of its
// own, off the IPCP (direct.go).
func IsDirect(f *Flow) bool { return f.dp.Load() != nil }

// RawCalls reports whether f's data socket makes raw system calls.
func RawCalls(f *Flow) bool {
	dp := f.dp.Load()
	return dp != nil && dp.RawCalls()
}
