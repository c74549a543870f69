package dt

import (
	"fmt"
	"testing"
)

// sink keeps decoded values alive so the compiler cannot drop the work.
var sink uint64

func BenchmarkEncode(b *testing.B) {
	l := DefaultLayout()
	buf := make([]byte, 1500)
	p := PCI{Dst: 0x0a000001, QoS: 1, TTL: 60, EID: 0x1122334455667788}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.Encode(buf, &p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	l := DefaultLayout()
	buf := make([]byte, 1500)
	p := PCI{Dst: 0x0a000001, QoS: 1, TTL: 60, EID: 0x1122334455667788}
	if _, err := l.Encode(buf, &p); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		q, _, err := l.Decode(buf)
		if err != nil {
			b.Fatal(err)
		}
		sink += q.Dst ^ q.EID ^ uint64(q.TTL)
	}
}

func BenchmarkDecTTL(b *testing.B) {
	l := DefaultLayout()
	buf := make([]byte, 1500)
	b.ReportAllocs()
	for b.Loop() {
		buf[l.AddrSize+1] = 200
		if _, err := l.DecTTL(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	for _, weighted := range []bool{false, true} {
		for _, n := range []int{1, 2, 4, 16} {
			if weighted && n == 1 {
				continue
			}
			nhs := make([]NextHop, n)
			for i := range nhs {
				nhs[i] = NextHop{ID: uint64(i + 1)}
				if weighted {
					nhs[i].Weight = uint32(i + 1)
				}
			}
			f := NewFIB(42)
			routes := map[uint64]Entry{}
			for dst := range uint64(1000) {
				routes[dst] = Entry{Primary: nhs}
			}
			f.Replace(routes)
			name := fmt.Sprintf("hops=%d", n)
			if weighted {
				name += "/weighted"
			}
			b.Run(name, func(b *testing.B) {
				b.ReportAllocs()
				var i uint64
				for b.Loop() {
					i++
					if _, ok := f.Lookup(i%1000, i, uint8(i)); !ok {
						b.Fatal("no route")
					}
				}
			})
		}
	}
}
