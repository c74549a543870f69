// Package logging builds the hclog loggers used by the IRMd, the IPCPs
// and the tools, so that every process logs in the same terse format.
package logging

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// Levels lists the accepted level names, for usage messages.
const Levels = "trace, debug, info, warn, error, off"

// ParseLevel maps a level name to an hclog level; it rejects unknown names.
func ParseLevel(s string) (hclog.Level, error) {
	if s == "" {
		return hclog.Info, nil
	}
	l := hclog.LevelFromString(strings.ToLower(s))
	if l == hclog.NoLevel {
		return l, fmt.Errorf("unknown log level %q (want one of %s)", s, Levels)
	}
	return l, nil
}

// New returns a logger named name writing to w (stderr when nil) at level.
func New(name string, level hclog.Level, w io.Writer) hclog.Logger {
	if w == nil {
		w = os.Stderr
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:            name,
		Level:           level,
		Output:          w,
		TimeFormat:      "15:04:05.000",
		DisableTime:     false,
		IncludeLocation: false,
	})
}
