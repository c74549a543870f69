package clock

import (
	"testing"
	"time"
)

func TestFakeFiresInOrder(t *testing.T) {
	f := NewFake(time.Unix(0, 0))
	var got []int
	f.AfterFunc(30*time.Millisecond, func() { got = append(got, 3) })
	f.AfterFunc(10*time.Millisecond, func() {
		got = append(got, 1)
		f.AfterFunc(5*time.Millisecond, func() { got = append(got, 2) })
	})
	stopped := f.AfterFunc(20*time.Millisecond, func() { got = append(got, 99) })
	if !stopped.Stop() {
		t.Fatal("Stop on armed timer reported false")
	}
	tm := f.NewTimer(25 * time.Millisecond)
	f.Advance(29 * time.Millisecond)
	if len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Fatalf("got %v, want [1 2]", got)
	}
	select {
	case at := <-tm.C():
		if at != time.Unix(0, 0).Add(25*time.Millisecond) {
			t.Fatalf("timer fired at %v", at)
		}
	default:
		t.Fatal("timer did not fire")
	}
	f.Advance(time.Millisecond)
	if len(got) != 3 || got[2] != 3 {
		t.Fatalf("got %v, want [1 2 3]", got)
	}
	if f.Now() != time.Unix(0, 0).Add(30*time.Millisecond) {
		t.Fatalf("now = %v", f.Now())
	}
	if f.Pending() != 0 {
		t.Fatalf("pending = %d", f.Pending())
	}
}

func TestRealClockTimer(t *testing.T) {
	c := Real()
	tm := c.NewTimer(time.Millisecond)
	<-tm.C()
	if tm.Stop() {
		t.Fatal("Stop after fire reported active")
	}
}
