package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// stream scripts a 1 ms ping stream of 300 probes with a cut at 100 ms
// and a restore at 200 ms; echoed says whether probe seq (sent at seq
// ms) came back, with a 1 ms round trip.
func stream(echoed func(seq uint64) bool) (replies []reply, lost []uint64) {
	for seq := uint64(0); seq < 300; seq++ {
		sent := time.Duration(seq) * time.Millisecond
		if echoed(seq) {
			replies = append(replies, reply{seq: seq, sent: sent, recv: sent + time.Millisecond})
		} else {
			lost = append(lost, seq)
		}
	}
	return replies, lost
}

func TestDemoMeasure(t *testing.T) {
	const cut, restore = 100 * time.Millisecond, 200 * time.Millisecond
	for _, c := range []struct {
		name   string
		echoed func(uint64) bool
		want   string // verdict substring; "" survived
		check  func(demoMeasure) error
	}{
		{"failover after 10 ms", func(s uint64) bool { return s < 100 || s >= 110 }, "", func(m demoMeasure) error {
			if m.SentBefore != 100 || m.LostBefore != 0 || m.LostDown != 10 || m.DeliveredDown != 90 ||
				m.DeliveredAfter != 100 || m.Interruption != 11*time.Millisecond {
				return fmt.Errorf("%s", m)
			}
			return nil
		}},
		{"no failover", func(s uint64) bool { return s < 100 || s >= 205 }, "nothing sent while the link was down came back", func(m demoMeasure) error {
			if m.LostDown != 105 || m.DeliveredDown != 0 || m.Interruption != 106*time.Millisecond {
				return fmt.Errorf("%s", m)
			}
			return nil
		}},
		{"slow failover", func(s uint64) bool { return s < 100 || s >= 160 }, "interruption at the cut was 61.0 ms", nil},
		{"loss before the cut", func(s uint64) bool { return s%10 != 7 }, "10 of 100 probes lost before the cut", func(m demoMeasure) error {
			if m.LostBefore != 10 || m.LostDown != 10 || m.LostAfter != 10 {
				return fmt.Errorf("%s", m)
			}
			return nil
		}},
		{"dead after restore", func(s uint64) bool { return s < 200 }, "nothing came back after the restore", func(m demoMeasure) error {
			if m.LostAfter != 0 || m.LostDown != 100 {
				return fmt.Errorf("lost at the restore edge count as down: %s", m)
			}
			return nil
		}},
	} {
		replies, lost := stream(c.echoed)
		m := measure(replies, lost, cut, restore)
		got := m.verdict(50 * time.Millisecond)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%s: verdict %q, want %q (%s)", c.name, got, c.want, m)
		}
		if c.check != nil {
			if err := c.check(m); err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
		}
	}
	// Each reply line of the pinger is one Write.
	l := &replyLog{start: time.Now().Add(-time.Second)}
	fmt.Fprintf(l, "%d bytes from %s: seq=%d time=%.3f ms\n", 64, "oping", 7, 2.5)
	fmt.Fprintf(l, "garbage\n")
	if r := l.get(); len(r) != 1 || r[0].seq != 7 || r[0].recv-r[0].sent != 2500*time.Microsecond || r[0].recv < time.Second {
		t.Fatalf("reply log %+v", r)
	}
}
