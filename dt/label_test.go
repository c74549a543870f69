package dt

import (
	"errors"
	"testing"
)

// TestLabelMovesFlows: a new path label moves a flow to another next
// hop with probability about 1-1/n over n equal next hops, and the same
// label always keeps it where it is.
func TestLabelMovesFlows(t *testing.T) {
	for _, n := range []int{2, 3, 4, 8} {
		f := NewFIB(0x5eed)
		var hops []NextHop
		for i := 0; i < n; i++ {
			hops = append(hops, NextHop{ID: uint64(100 + i)})
		}
		f.Set(7, Entry{Primary: hops})
		const flows = 4000
		moved := 0
		for eid := uint64(1); eid <= flows; eid++ {
			a, _ := f.LookupLabel(7, eid, 1, 3)
			if b, _ := f.LookupLabel(7, eid, 1, 3); b != a {
				t.Fatalf("n=%d eid %d: same label gave %d then %d", n, eid, a, b)
			}
			b, _ := f.LookupLabel(7, eid, 1, 4)
			if b != a {
				moved++
			}
		}
		want := 1 - 1/float64(n)
		got := float64(moved) / flows
		if got < want-0.05 || got > want+0.05 {
			t.Errorf("n=%d: a new label moved %.3f of the flows, want about %.3f", n, got, want)
		}
	}
	// One next hop: every label stays on it.
	f := NewFIB(1)
	f.Set(7, Entry{Primary: []NextHop{{ID: 9}}})
	for l := uint8(0); l <= MaxLabel; l++ {
		if id, ok := f.LookupLabel(7, 1, 0, l); !ok || id != 9 {
			t.Fatalf("label %d: %d %v", l, id, ok)
		}
	}
}

// TestLabelsReachEveryHop: cycling a flow through the labels reaches
// every next hop of a small set (a bend can always find the idle path).
func TestLabelsReachEveryHop(t *testing.T) {
	f := NewFIB(42)
	f.Set(7, Entry{Primary: []NextHop{{ID: 1}, {ID: 2}, {ID: 3}}})
	for eid := uint64(1); eid < 200; eid++ {
		seen := map[uint64]bool{}
		for l := uint8(0); l <= MaxLabel; l++ {
			id, _ := f.LookupLabel(7, eid, 0, l)
			seen[id] = true
		}
		if len(seen) < 2 {
			t.Fatalf("eid %d: %d labels reach only %v", eid, MaxLabel+1, seen)
		}
	}
}

func TestLabelField(t *testing.T) {
	l := DefaultLayout()
	b := make([]byte, l.Len())
	p := PCI{Dst: 1, TTL: 9, Label: MaxLabel, EID: 2}
	if _, err := l.Encode(b, &p); err != nil {
		t.Fatal(err)
	}
	if v, err := l.Label(b); err != nil || v != MaxLabel {
		t.Fatalf("Label = %d, %v", v, err)
	}
	if err := l.SetLabel(b, 3); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := l.Decode(b); got.Label != 3 || got.EID != 2 || got.TTL != 9 {
		t.Fatalf("after SetLabel: %+v", got)
	}
	if err := l.SetLabel(b, MaxLabel+1); !errors.Is(err, ErrRange) {
		t.Fatalf("SetLabel(%d) = %v, want ErrRange", MaxLabel+1, err)
	}
	p.Label = MaxLabel + 1
	if _, err := l.Encode(b, &p); !errors.Is(err, ErrRange) {
		t.Fatalf("Encode label %d = %v, want ErrRange", p.Label, err)
	}
	// From the wire: an out-of-range label is reported, not hidden.
	b[l.AddrSize+3] = 0xff
	if v, err := l.Label(b); !errors.Is(err, ErrLabel) || v != 0xff {
		t.Fatalf("wire label 0xff: %d, %v, want ErrLabel", v, err)
	}
	if _, err := l.Label(b[:3]); err != ErrShortPacket {
		t.Fatalf("short: %v", err)
	}
}

func TestLookupLabelNoAlloc(t *testing.T) {
	f := NewFIB(3)
	f.Set(7, Entry{Primary: []NextHop{{ID: 1}, {ID: 2}, {ID: 3}}})
	b := make([]byte, DefaultLayout().Len())
	if n := testing.AllocsPerRun(100, func() {
		l, _ := DefaultLayout().Label(b)
		f.LookupLabel(7, 5, 0, l)
	}); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}
