package perf

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/lib/cliflag"
	"github.com/ouro-net/ouro/lib/qos"
)

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
	// Encrypt (-x) seals the flow end to end; KeyFile (-k) is the
	// server's identity key, or the server key a client pins.
	Encrypt bool
	KeyFile string
	qosName *string
}

// FlowOpts are the flow options the flags ask for: the run directory
// and, with -k, the identity (server) or pin (client).
func (c *Common) FlowOpts() ([]flow.Option, error) {
	keys, err := flow.KeyFileOption(c.KeyFile, c.Listen)
	if err != nil {
		return nil, err
	}
	return append([]flow.Option{flow.WithRunDir(c.Dir)}, keys...), nil
}

// Register defines the shared flags on fs with c's current values as
// defaults; rateHelp says what -r means for the tool.
func (c *Common) Register(fs *flag.FlagSet, rateHelp string) {
	fs.BoolVar(&c.Listen, "l", false, "serve: count the packets sent to NAME")
	fs.StringVar(&c.Name, "n", c.Name, "name to serve or send to")
	fs.Var(cliflag.Duration{D: &c.Duration}, "d", "how long to send (Go duration, bare number = ms)")
	fs.Var(cliflag.Duration{D: &c.Interval}, "i", "report interval")
	fs.IntVar(&c.Size, "s", c.Size, "packet size in bytes")
	fs.Var(RateFlag{R: &c.Rate}, "r", rateHelp)
	c.qosName = fs.String("q", "raw", "QoS ("+qos.Names()+")")
	fs.StringVar(c.qosName, "qos", "raw", "QoS (same as -q)")
	fs.BoolVar(&c.JSON, "json", false, "print one JSON summary instead of text")
	fs.StringVar(&c.Dir, "rundir", "", "IRMd run directory (default $OURO_RUNDIR)")
	fs.BoolVar(&c.Encrypt, "x", false, "encrypt the flow end to end")
	fs.StringVar(&c.KeyFile, "k", "", "key file: a server's identity key (-l), or the server public key a client pins (with -x)")
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
	c.QoS.Encrypt = c.Encrypt
	switch {
	case c.KeyFile != "" && !c.Encrypt && !c.Listen:
		return errors.New("-k pins a key of an encrypted flow: add -x")
	case c.Size < HeaderSize || c.Size > 65000:
		return fmt.Errorf("size must be between %d and 65000 bytes", HeaderSize)
	case c.Duration <= 0:
		return errors.New("duration must be positive")
	case c.Interval < 10*time.Millisecond:
		return errors.New("report interval must be at least 10 ms")
	}
	return nil
}
