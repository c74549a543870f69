package flow

// IsDirect reports whether f's packets go through a data socket of its
// own, off the IPCP (direct.go).
func IsDirect(f *Flow) bool { return f.dp.Load() != nil }
