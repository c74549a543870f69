package perf

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// DurationFlag is a flag.Value for the tools' durations: a Go duration
// ("1ms", "5s") or a bare number of milliseconds.
type DurationFlag struct{ D *time.Duration }

// String returns the duration.
func (m DurationFlag) String() string {
	if m.D == nil {
		return ""
	}
	return m.D.String()
}

// Set parses s.
func (m DurationFlag) Set(s string) error {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if f < 0 {
			return errors.New("negative duration")
		}
		*m.D = time.Duration(f * float64(time.Millisecond))
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("not a duration: %q", s)
	}
	if d < 0 {
		return errors.New("negative duration")
	}
	*m.D = d
	return nil
}

// RateFlag is a flag.Value for rates with k, M or G suffixes (see
// ParseRate).
type RateFlag struct{ R *float64 }

// String returns the rate.
func (r RateFlag) String() string {
	if r.R == nil {
		return ""
	}
	return FormatRate(*r.R)
}

// Set parses s.
func (r RateFlag) Set(s string) error {
	f, err := ParseRate(s)
	if err != nil {
		return err
	}
	*r.R = f
	return nil
}
