package perf

import (
	"testing"
)

func TestParseRate(t *testing.T) {
	for in, want := range map[string]float64{"100": 100, "10k": 1e4, "2.5M": 2.5e6, "1G": 1e9, "0": 0, " 3K ": 3e3} {
		if got, err := ParseRate(in); err != nil || got != want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "abc", "10m", "NaN", "Inf", "1e400", "k"} {
		if got, err := ParseRate(in); err == nil {
			t.Errorf("ParseRate(%q) = %v, want an error", in, got)
		}
	}
	for f, want := range map[float64]string{2.5e6: "2.5M", 1e9: "1G", 100: "100", 1500: "1.5k"} {
		if got := FormatRate(f); got != want {
			t.Errorf("FormatRate(%v) = %q, want %q", f, got, want)
		}
	}
}
