package ipcpd

import (
	"errors"
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// DefaultMemoryLimit is the soft memory limit of an IPCP process
// (runtime/debug.SetMemoryLimit) unless its environment sets another:
// an idle IPCP holds 1-4 MiB of its own memory (go run ./bench -mem),
// so the limit only matters when a flood or a large layer makes it
// grow, and then it makes the garbage collector work harder instead of
// letting the heap double (GOGC) past it. It is soft: an IPCP that
// needs more gets more, at a higher GC cost (the runtime caps that).
const DefaultMemoryLimit = 64 << 20

// MemoryLimitEnv is the environment variable that sets the soft memory
// limit of IPCP processes only (the IRMd passes its environment on to
// them): a size in the syntax of GOMEMLIMIT ("96MiB", "1GiB", "500000000")
// or "off". Without it, GOMEMLIMIT applies if set (to every Go process
// of ouro), else DefaultMemoryLimit.
const MemoryLimitEnv = "OURO_IPCP_MEMLIMIT"

// memoryLimit returns the soft memory limit an IPCP process applies
// (math.MaxInt64: none) and where it comes from, given its environment.
// With only GOMEMLIMIT set it returns -1: the runtime has applied it.
func memoryLimit(getenv func(string) string) (int64, string, error) {
	if v := getenv(MemoryLimitEnv); v != "" {
		n, err := parseMemoryLimit(v)
		if err != nil {
			return 0, "", fmt.Errorf("%s=%q: %w", MemoryLimitEnv, v, err)
		}
		return n, MemoryLimitEnv, nil
	}
	if getenv("GOMEMLIMIT") != "" {
		return -1, "GOMEMLIMIT", nil
	}
	return DefaultMemoryLimit, "default", nil
}

// parseMemoryLimit parses a size as GOMEMLIMIT does: a non-negative
// integer of bytes with an optional unit (B, KiB, MiB, GiB, TiB), or
// "off" (no limit).
func parseMemoryLimit(s string) (int64, error) {
	if s == "off" {
		return math.MaxInt64, nil
	}
	units := []struct {
		suffix string
		shift  uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}
	num, shift := s, uint(0)
	for _, u := range units {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			num, shift = rest, u.shift
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, errors.New("want a number of bytes with an optional unit (B, KiB, MiB, GiB, TiB), or off")
	}
	if n > math.MaxInt64>>shift {
		return 0, errors.New("too large")
	}
	return n << shift, nil
}

// applyMemoryLimit sets the process's soft memory limit from its
// environment (see MemoryLimitEnv); a bad value is logged and the
// default applies.
func applyMemoryLimit(log hclog.Logger) {
	n, from, err := memoryLimit(os.Getenv)
	if err != nil {
		log.Warn("bad memory limit: using the default", "error", err, "default", DefaultMemoryLimit)
		n, from = DefaultMemoryLimit, "default"
	}
	if n >= 0 {
		debug.SetMemoryLimit(n)
	}
	log.Debug("soft memory limit", "bytes", debug.SetMemoryLimit(-1), "from", from)
}
