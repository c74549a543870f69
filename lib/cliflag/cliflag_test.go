package cliflag

import (
	"testing"
	"time"
)

func TestDuration(t *testing.T) {
	var d time.Duration
	f := Duration{&d}
	for in, want := range map[string]time.Duration{"250": 250 * time.Millisecond, "1.5": 1500 * time.Microsecond, "2s": 2 * time.Second} {
		if err := f.Set(in); err != nil || d != want {
			t.Errorf("Set(%q): %v, %v; want %v", in, d, err, want)
		}
	}
	for _, in := range []string{"-1", "-1s", "soon"} {
		if err := f.Set(in); err == nil {
			t.Errorf("Set(%q) accepted", in)
		}
	}
}
