package routing

import (
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/ouro-net/ouro/lib/clock"
)

// FuzzDecode checks that Decode never panics and that whatever it
// accepts survives an Encode/Decode round trip unchanged.
func FuzzDecode(f *testing.F) {
	for _, m := range sampleMessages() {
		b, err := Encode(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for name, c := range badMessages(f) {
		if name != "oversized" {
			f.Add(c.b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		again, err := Encode(m)
		if err != nil {
			t.Fatalf("decoded message does not encode: %v (%+v)", err, m)
		}
		m2, err := Decode(again)
		if err != nil {
			t.Fatalf("re-encoded message does not decode: %v", err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip changed %+v into %+v", m, m2)
		}
	})
}

// FuzzReceive feeds arbitrary bytes to a Router with neighbours: it must
// never panic, reject what does not decode with a sentinel error, and
// keep a table whose next hops are all live neighbours.
func FuzzReceive(f *testing.F) {
	for _, m := range sampleMessages() {
		b, err := Encode(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	own, _ := Encode(Message{Kind: KindUpdate, LSUs: []LSU{{Origin: 1, Seq: 50, Links: []Link{{Neighbor: 2, Cost: 1}}}}})
	f.Add(own)
	// Sequence numbers near the maximum, and flushes.
	for _, l := range []LSU{
		{Origin: 1, Seq: MaxSeq}, {Origin: 1, Seq: MaxSeq - 1}, {Origin: 1, Seq: MaxSeq, Age: 4 * time.Second},
		{Origin: 2, Seq: MaxSeq, Links: []Link{{Neighbor: 1, Cost: 1}}}, {Origin: 4, Seq: MaxSeq, Age: time.Hour},
		{Origin: 2, Seq: 1, Age: 4 * time.Second},
	} {
		b, _ := Encode(Message{Kind: KindUpdate, LSUs: []LSU{l}})
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		clk := clock.NewFake(time.Unix(0, 0))
		r, err := New(Config{Self: 1, Clock: clk, Policy: PolicyLFA, RefreshInterval: time.Second, MaxAge: 4 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		r.NeighborUp(2, 1)
		r.NeighborUp(3, 2)
		if err := r.Receive(2, b); err != nil &&
			!errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownVersion) && !errors.Is(err, ErrTooLarge) {
			t.Fatalf("unexpected error %v", err)
		}
		clk.Advance(time.Second)
		for d, rt := range r.Table() {
			for _, n := range append(slices.Clone(rt.NextHops), rt.Alternates...) {
				if n != 2 && n != 3 {
					t.Fatalf("route to %d via non-neighbour %d", d, n)
				}
			}
		}
		clk.Advance(10 * time.Second)
		if st := r.Stats(); st.Flushes != st.Restarts || st.Flushes > 2 {
			t.Fatalf("flushes %d, restarts %d", st.Flushes, st.Restarts)
		}
		if ms := r.Members(); len(ms) != 1 {
			t.Fatalf("members after MaxAge: %+v", ms)
		}
	})
}
