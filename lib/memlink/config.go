package memlink

import (
	"errors"
	"fmt"
	"time"

	"github.com/ouro-net/ouro/lib/clock"
)

// Defaults applied to zero Config fields.
const (
	DefaultQueueLen    = 1024
	DefaultMTU         = 1500
	DefaultReorderHold = time.Millisecond
)

// ErrInvalidConfig is wrapped by every Config validation error.
var ErrInvalidConfig = errors.New("memlink: invalid config")

// Config sets the behaviour of a link; the zero value is a perfect
// link on the wall clock.
type Config struct {
	// Loss is the probability that a written packet is dropped.
	Loss float64
	// Dup is the probability that a written packet is delivered twice.
	Dup float64
	// Reorder is the probability that a written packet is held back so
	// that the next packet overtakes it.
	Reorder float64
	// ReorderHold bounds how long a held-back packet waits for a packet
	// to overtake it (default DefaultReorderHold).
	ReorderHold time.Duration
	// Delay is the one-way latency added to every packet, on Clock.
	Delay time.Duration
	// Clock drives Delay and ReorderHold (default clock.Real()).
	Clock clock.Clock
	// Seed seeds the per-direction random sources.
	Seed int64
	// QueueLen bounds each receive queue and each in-flight delay line,
	// in packets (default DefaultQueueLen).
	QueueLen int
	// MTU is the largest packet WritePacket accepts (default DefaultMTU).
	MTU int
}

// Validate reports whether c is usable, before defaults are applied.
func (c Config) Validate() error {
	for _, p := range []struct {
		name string
		v    float64
	}{{"Loss", c.Loss}, {"Dup", c.Dup}, {"Reorder", c.Reorder}} {
		if !(p.v >= 0 && p.v <= 1) {
			return fmt.Errorf("%w: %s %v is not a probability in [0, 1]", ErrInvalidConfig, p.name, p.v)
		}
	}
	if c.Delay < 0 {
		return fmt.Errorf("%w: negative Delay %v", ErrInvalidConfig, c.Delay)
	}
	if c.ReorderHold < 0 {
		return fmt.Errorf("%w: negative ReorderHold %v", ErrInvalidConfig, c.ReorderHold)
	}
	if c.QueueLen < 0 {
		return fmt.Errorf("%w: negative QueueLen %d", ErrInvalidConfig, c.QueueLen)
	}
	if c.MTU < 0 {
		return fmt.Errorf("%w: negative MTU %d", ErrInvalidConfig, c.MTU)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Clock == nil {
		c.Clock = clock.Real()
	}
	if c.QueueLen == 0 {
		c.QueueLen = DefaultQueueLen
	}
	if c.MTU == 0 {
		c.MTU = DefaultMTU
	}
	if c.ReorderHold == 0 {
		c.ReorderHold = DefaultReorderHold
	}
	return c
}
