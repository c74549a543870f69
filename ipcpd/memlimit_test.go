package ipcpd

import (
	"math"
	"testing"
)

func TestMemoryLimit(t *testing.T) {
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	for _, c := range []struct {
		env  func(string) string
		want int64
		from string
	}{
		{env(), DefaultMemoryLimit, "default"},
		{env("GOMEMLIMIT", "1GiB"), -1, "GOMEMLIMIT"},
		{env(MemoryLimitEnv, "96MiB", "GOMEMLIMIT", "1GiB"), 96 << 20, MemoryLimitEnv},
		{env(MemoryLimitEnv, "off"), math.MaxInt64, MemoryLimitEnv},
		{env(MemoryLimitEnv, "123456"), 123456, MemoryLimitEnv},
		{env(MemoryLimitEnv, "2KiB"), 2048, MemoryLimitEnv},
		{env(MemoryLimitEnv, "7B"), 7, MemoryLimitEnv},
	} {
		got, from, err := memoryLimit(c.env)
		if err != nil || got != c.want || from != c.from {
			t.Errorf("got %d from %q (%v), want %d from %q", got, from, err, c.want, c.from)
		}
	}
	for _, bad := range []string{"-1", "64MB", "lots", "1.5GiB", "9999999TiB", "MiB", " 64MiB"} {
		if n, _, err := memoryLimit(env(MemoryLimitEnv, bad)); err == nil {
			t.Errorf("%s=%q accepted as %d", MemoryLimitEnv, bad, n)
		}
	}
}
