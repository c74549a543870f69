package bottleneck

import (
	"testing"
	"time"
)

func TestLinkSerialisesQueuesAndDrops(t *testing.T) {
	s := New(time.Unix(0, 0))
	l := &Link{Sim: s, Rate: 8_000_000, Limit: 3000, Delay: 10 * time.Millisecond} // 1 byte/µs
	var got []time.Duration
	for i := 0; i < 4; i++ {
		ok := l.Send(1000, func(bool) { got = append(got, s.Now().Sub(time.Unix(0, 0))) })
		if want := i < 3; ok != want {
			t.Fatalf("packet %d queued = %v, want %v (backlog %d)", i, ok, want, l.Backlog())
		}
	}
	s.RunFor(time.Second)
	want := []time.Duration{11 * time.Millisecond, 12 * time.Millisecond, 13 * time.Millisecond}
	if len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("arrivals %v, want %v", got, want)
	}
	st := l.Stats()
	if st.Dropped != 1 || st.Sent != 4 || st.QueueDelayMax != 2*time.Millisecond {
		t.Fatalf("stats %+v", st)
	}
}

func TestLinkMarksAboveThreshold(t *testing.T) {
	s := New(time.Unix(0, 0))
	l := &Link{Sim: s, Rate: 8_000_000, MarkAbove: 1500}
	var marks []bool
	for i := 0; i < 4; i++ {
		l.Send(1000, func(ce bool) { marks = append(marks, ce) })
	}
	s.RunFor(time.Second)
	if len(marks) != 4 || marks[0] || marks[1] || !marks[2] || !marks[3] {
		t.Fatalf("marks %v, want [false false true true]", marks)
	}
}

func TestSimInterleavesClockTimers(t *testing.T) {
	s := New(time.Unix(0, 0))
	var order []string
	s.After(2*time.Millisecond, func() { order = append(order, "event2") })
	s.Clock().AfterFunc(time.Millisecond, func() {
		order = append(order, "timer1")
		s.After(0, func() { order = append(order, "event1") })
	})
	s.Clock().AfterFunc(3*time.Millisecond, func() { order = append(order, "timer3") })
	s.RunFor(10 * time.Millisecond)
	want := "timer1 event1 event2 timer3"
	if got := join(order); got != want {
		t.Fatalf("order %q, want %q", got, want)
	}
	if s.Now() != time.Unix(0, 0).Add(10*time.Millisecond) {
		t.Fatalf("now %v", s.Now())
	}
}

func join(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out
}

func TestLinkHoldsInOrder(t *testing.T) {
	s := New(time.Unix(0, 0))
	l := &Link{Sim: s, Delay: time.Millisecond, HoldUntil: time.Unix(0, 0).Add(5 * time.Millisecond)}
	var got []int
	for i := 0; i < 3; i++ {
		l.Send(100, func(bool) { got = append(got, i) })
	}
	s.RunFor(5*time.Millisecond + 999*time.Microsecond)
	if len(got) != 0 {
		t.Fatalf("delivered %v during the hold", got)
	}
	s.RunFor(time.Millisecond)
	if len(got) != 3 || got[0] != 0 || got[2] != 2 {
		t.Fatalf("after the hold: %v", got)
	}
}
