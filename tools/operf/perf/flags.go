package perf

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/ouro-net/ouro/lib/qos"
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

// Common are the flags operf and ocbr share: serve or send, the name,
// duration, report interval, packet size, rate, QoS, JSON output and the
// IRMd's run directory.
type Common struct {
	Listen   bool
	Name     string
	Duration time.Duration
	Interval time.Duration
	Size     int
	Rate     float64
	QoS      qos.Spec
	JSON     bool
	Dir      string
	qosName  *string
}

// Register defines the shared flags on fs with c's current values as
// defaults; rateHelp says what -r means for the tool.
func (c *Common) Register(fs *flag.FlagSet, rateHelp string) {
	fs.BoolVar(&c.Listen, "l", false, "serve: count the packets sent to NAME")
	fs.StringVar(&c.Name, "n", c.Name, "name to serve or send to")
	fs.Var(DurationFlag{D: &c.Duration}, "d", "how long to send (Go duration, bare number = ms)")
	fs.Var(DurationFlag{D: &c.Interval}, "i", "report interval")
	fs.IntVar(&c.Size, "s", c.Size, "packet size in bytes")
	fs.Var(RateFlag{R: &c.Rate}, "r", rateHelp)
	c.qosName = fs.String("q", "raw", "QoS ("+qos.Names()+")")
	fs.StringVar(c.qosName, "qos", "raw", "QoS (same as -q)")
	fs.BoolVar(&c.JSON, "json", false, "print one JSON summary instead of text")
	fs.StringVar(&c.Dir, "rundir", "", "IRMd run directory (default $OURO_RUNDIR)")
}

// Check validates the shared flags after fs.Parse and sets QoS.
func (c *Common) Check(fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	q, err := qos.Parse(*c.qosName)
	if err != nil {
		return err
	}
	c.QoS = q
	switch {
	case c.Size < HeaderSize || c.Size > 65000:
		return fmt.Errorf("size must be between %d and 65000 bytes", HeaderSize)
	case c.Duration <= 0:
		return errors.New("duration must be positive")
	case c.Interval < 10*time.Millisecond:
		return errors.New("report interval must be at least 10 ms")
	}
	return nil
}
