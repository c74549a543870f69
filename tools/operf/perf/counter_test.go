package perf

import (
	"testing"
	"time"
)

func TestCounterGapsAndLate(t *testing.T) {
	t0 := time.Unix(1000, 0)
	c := NewCounter(t0)
	for _, seq := range []uint64{0, 1, 2, 5} {
		c.Add(seq, 100, time.Millisecond)
	}
	iv, total := c.Snapshot(t0.Add(time.Second))
	if iv.Packets != 4 || iv.Lost != 2 || iv.Bytes != 400 || iv.Elapsed != time.Second {
		t.Fatalf("first interval %+v", iv)
	}
	if total != iv {
		t.Fatalf("total %+v differs from the first interval %+v", total, iv)
	}
	c.Add(3, 100, 3*time.Millisecond) // late: fills a gap
	c.Add(6, 100, time.Millisecond)
	iv, total = c.Snapshot(t0.Add(2 * time.Second))
	if iv.Packets != 2 || iv.Late != 1 || iv.Lost != 0 || iv.Elapsed != time.Second {
		t.Fatalf("second interval %+v", iv)
	}
	if total.Packets != 6 || total.Lost != 1 || total.Late != 1 || total.DelayMax != 3*time.Millisecond ||
		total.DelaySum != 8*time.Millisecond {
		t.Fatalf("totals %+v", total)
	}
	// The sender says it sent 10: 0-6 but 4 arrived, 7-9 did not.
	iv, total = c.Finish(10, t0.Add(2500*time.Millisecond))
	if total.Lost != 4 || total.Packets != 6 || total.Elapsed != 2500*time.Millisecond {
		t.Fatalf("final totals %+v", total)
	}
	if iv.Lost != 3 || iv.Packets != 0 || iv.Elapsed != 500*time.Millisecond {
		t.Fatalf("final interval %+v", iv)
	}
	c.Add(7, 100, 0) // after the end: ignored
	if got := c.Total(t0.Add(time.Hour)); got != total {
		t.Fatalf("totals moved after Finish: %+v", got)
	}
}

func TestStatsOf(t *testing.T) {
	s := StatsOf(Counts{Elapsed: 2 * time.Second, Packets: 900, Bytes: 900 * 1000, Lost: 100,
		DelaySum: 900 * time.Millisecond, DelayMax: 5 * time.Millisecond})
	if s.PPS != 450 || s.Mbps != 3.6 || s.LossPct != 10 || s.DelayAvgMS != 1 || s.DelayMaxMS != 5 {
		t.Fatalf("%+v", s)
	}
	if z := StatsOf(Counts{}); z.PPS != 0 || z.LossPct != 0 || z.DelayAvgMS != 0 {
		t.Fatalf("empty counts: %+v", z)
	}
}
