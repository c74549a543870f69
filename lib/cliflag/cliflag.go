// Package cliflag holds the flag values the command-line tools share.
package cliflag

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Duration is a flag.Value for the tools' durations: a Go duration
// ("1ms", "5s") or a bare number of milliseconds.
type Duration struct{ D *time.Duration }

// String returns the duration.
func (m Duration) String() string {
	if m.D == nil {
		return ""
	}
	return m.D.String()
}

// Set parses s.
func (m Duration) Set(s string) error {
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
