package perf

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ParseRate parses a rate with an optional decimal suffix: k (1e3),
// M (1e6) or G (1e9), as in "10k" or "2.5M". Units are the caller's
// (packets/s for operf, bits/s for ocbr). It refuses negative, NaN and
// infinite rates.
func ParseRate(s string) (float64, error) {
	t := strings.TrimSpace(s)
	mult := 1.0
	if t != "" {
		switch t[len(t)-1] {
		case 'k', 'K':
			mult = 1e3
		case 'M':
			mult = 1e6
		case 'G', 'g':
			mult = 1e9
		}
		if mult != 1 {
			t = t[:len(t)-1]
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil {
		return 0, fmt.Errorf("not a rate: %q (a number with an optional k, M or G suffix)", s)
	}
	f *= mult
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("not a rate: %q", s)
	}
	if f < 0 {
		return 0, errors.New("negative rate")
	}
	return f, nil
}

// FormatRate renders a rate with a decimal suffix, for example 2.5M.
func FormatRate(f float64) string {
	switch {
	case f >= 1e9:
		return strconv.FormatFloat(f/1e9, 'f', -1, 64) + "G"
	case f >= 1e6:
		return strconv.FormatFloat(f/1e6, 'f', -1, 64) + "M"
	case f >= 1e3:
		return strconv.FormatFloat(f/1e3, 'f', -1, 64) + "k"
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}
