package unicast_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ouro-net/ouro/ipcpd/unicast"
	"github.com/ouro-net/ouro/layer"
	"github.com/ouro-net/ouro/lib/clock"
)

// TestDirectoryRefreshJitter: members that come up at the same instant
// (virtual time) do not refresh their directory entries together ever
// after: their refreshes spread out. No wait between two refreshes of a
// member is longer than the refresh interval, so an observer expiring
// entries at a MaxAge just above the interval never loses one.
func TestDirectoryRefreshJitter(t *testing.T) {
	const members, periods = 20, 8
	const step = 100 * time.Millisecond
	cfg := layer.Defaults("jitter")
	R := cfg.RefreshInterval
	t0 := time.Unix(1000, 0)
	fc := clock.NewFake(t0)
	rng := rand.New(rand.NewPCG(1, 2))
	ms := make([]*unicast.DirMember, members)
	for i := range ms {
		m, err := unicast.NewDirMember(fc, rng.Float64, cfg, "m", uint64(i+10))
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		ms[i] = m
	}
	obs := layer.NewDirectory(1, "observer")
	seq := make([]uint64, members)
	last := make([]time.Time, members)
	for i, m := range ms {
		seq[i], last[i] = m.Own().Seq, t0
		obs.Apply(m.Own(), t0)
	}
	var final []time.Duration // when each member refreshed in the last period
	for now := t0; now.Before(t0.Add(periods * R)); {
		fc.Advance(step)
		now = fc.Now()
		for i, m := range ms {
			e := m.Own()
			if e.Seq == seq[i] {
				continue
			}
			gap := now.Sub(last[i])
			if gap > R || gap < R*3/4-step {
				t.Fatalf("member %d refreshed %v after its last refresh, want between %v and %v", i, gap, R*3/4, R)
			}
			seq[i], last[i] = e.Seq, now
			obs.Apply(e, now)
			if now.After(t0.Add((periods - 1) * R)) {
				final = append(final, now.Sub(t0))
			}
		}
		if n := obs.Expire(now, R+step, time.Hour, nil); n != 0 {
			t.Fatalf("at %v the observer expired %d entries before their refresh", now.Sub(t0), n)
		}
	}
	t.Logf("last period: %d refreshes", len(final))
	// Spread: at most a quarter of the members in any one second.
	worst := 0
	for _, a := range final {
		n := 0
		for _, b := range final {
			if b >= a && b < a+time.Second {
				n++
			}
		}
		worst = max(worst, n)
	}
	if len(final) == 0 || worst > members/4 {
		t.Fatalf("last period: %d refreshes, up to %d of %d members within one second, want at most %d", len(final), worst, members, members/4)
	}
}
