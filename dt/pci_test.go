package dt

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

func allLayouts() []Layout {
	var ls []Layout
	for a := 1; a <= MaxFieldSize; a++ {
		for e := 1; e <= MaxFieldSize; e++ {
			ls = append(ls, Layout{AddrSize: a, EIDSize: e})
		}
	}
	return ls
}

func TestLayoutValidate(t *testing.T) {
	if err := DefaultLayout().Validate(); err != nil {
		t.Fatalf("default layout: %v", err)
	}
	if got := DefaultLayout().Len(); got != 16 {
		t.Fatalf("default Len = %d, want 16", got)
	}
	for _, l := range []Layout{{0, 8}, {4, 0}, {9, 8}, {4, 9}, {-1, 4}} {
		if err := l.Validate(); !errors.Is(err, ErrLayout) {
			t.Errorf("%+v: Validate = %v, want ErrLayout", l, err)
		}
		if _, _, err := l.Decode(make([]byte, 64)); !errors.Is(err, ErrLayout) {
			t.Errorf("%+v: Decode = %v, want ErrLayout", l, err)
		}
		if _, err := l.Encode(make([]byte, 64), &PCI{}); !errors.Is(err, ErrLayout) {
			t.Errorf("%+v: Encode = %v, want ErrLayout", l, err)
		}
		if _, err := l.DecTTL(make([]byte, 64)); !errors.Is(err, ErrLayout) {
			t.Errorf("%+v: DecTTL = %v, want ErrLayout", l, err)
		}
	}
}

func TestRoundTripAllLayouts(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	payload := []byte("payload")
	for _, l := range allLayouts() {
		cases := []PCI{
			{},
			{Dst: l.MaxAddr(), QoS: 255, TTL: 255, ECN: 255, EID: l.MaxEID()},
			{Dst: 1, QoS: 1, TTL: 1, ECN: 1, EID: 1},
		}
		for range 20 {
			cases = append(cases, PCI{
				Dst: rng.Uint64() & l.MaxAddr(), QoS: uint8(rng.Uint32()),
				TTL: uint8(rng.Uint32()), ECN: uint8(rng.Uint32()), EID: rng.Uint64() & l.MaxEID(),
			})
		}
		for _, p := range cases {
			buf := make([]byte, l.Len()+len(payload))
			n, err := l.Encode(buf, &p)
			if err != nil || n != l.Len() {
				t.Fatalf("%+v: Encode(%+v) = %d, %v", l, p, n, err)
			}
			copy(buf[n:], payload)
			got, rest, err := l.Decode(buf)
			if err != nil {
				t.Fatalf("%+v: Decode: %v", l, err)
			}
			if got != p || !bytes.Equal(rest, payload) {
				t.Fatalf("%+v: Decode = %+v %q, want %+v %q", l, got, rest, p, payload)
			}
			dst, eid, qos, err := l.FlowKey(buf)
			if err != nil || dst != p.Dst || eid != p.EID || qos != p.QoS {
				t.Fatalf("%+v: FlowKey = %d %d %d %v", l, dst, eid, qos, err)
			}
		}
	}
}

func TestEncodeNetworkByteOrder(t *testing.T) {
	l := DefaultLayout()
	b := make([]byte, l.Len())
	p := PCI{Dst: 0x01020304, QoS: 5, TTL: 6, ECN: 7, Label: 9, EID: 0x08090a0b0c0d0e0f}
	if _, err := l.Encode(b, &p); err != nil {
		t.Fatal(err)
	}
	want := []byte{1, 2, 3, 4, 5, 6, 7, 9, 8, 9, 10, 11, 12, 13, 14, 15}
	if !bytes.Equal(b, want) {
		t.Fatalf("encoded % x, want % x", b, want)
	}
	l = Layout{AddrSize: 3, EIDSize: 2}
	b = make([]byte, l.Len())
	p = PCI{Dst: 0x010203, QoS: 4, TTL: 5, ECN: 6, EID: 0x0708}
	if _, err := l.Encode(b, &p); err != nil {
		t.Fatal(err)
	}
	if want := []byte{1, 2, 3, 4, 5, 6, 0, 7, 8}; !bytes.Equal(b, want) {
		t.Fatalf("encoded % x, want % x", b, want)
	}
}

func TestEncodeErrors(t *testing.T) {
	for _, l := range allLayouts() {
		buf := make([]byte, l.Len())
		if l.AddrSize < 8 {
			p := PCI{Dst: l.MaxAddr() + 1}
			if _, err := l.Encode(buf, &p); !errors.Is(err, ErrRange) {
				t.Errorf("%+v: dst too big: %v, want ErrRange", l, err)
			}
		}
		if l.EIDSize < 8 {
			p := PCI{EID: l.MaxEID() + 1}
			if _, err := l.Encode(buf, &p); !errors.Is(err, ErrRange) {
				t.Errorf("%+v: eid too big: %v, want ErrRange", l, err)
			}
		}
		if _, err := l.Encode(buf[:l.Len()-1], &PCI{}); !errors.Is(err, ErrShortBuffer) {
			t.Errorf("%+v: short buffer: %v, want ErrShortBuffer", l, err)
		}
	}
}

func TestShortInput(t *testing.T) {
	for _, l := range allLayouts() {
		for n := 0; n < l.Len(); n++ {
			b := make([]byte, n)
			if _, _, err := l.Decode(b); err != ErrShortPacket {
				t.Fatalf("%+v len %d: Decode = %v, want ErrShortPacket", l, n, err)
			}
			if _, err := l.Dst(b); err != ErrShortPacket {
				t.Fatalf("%+v len %d: Dst = %v", l, n, err)
			}
			if _, err := l.EID(b); err != ErrShortPacket {
				t.Fatalf("%+v len %d: EID = %v", l, n, err)
			}
			if _, _, _, err := l.FlowKey(b); err != ErrShortPacket {
				t.Fatalf("%+v len %d: FlowKey = %v", l, n, err)
			}
			if _, err := l.DecTTL(b); err != ErrShortPacket {
				t.Fatalf("%+v len %d: DecTTL = %v", l, n, err)
			}
			if _, err := l.ECN(b); err != ErrShortPacket {
				t.Fatalf("%+v len %d: ECN = %v", l, n, err)
			}
			if err := l.SetECN(b, 1); err != ErrShortPacket {
				t.Fatalf("%+v len %d: SetECN = %v", l, n, err)
			}
			if _, err := l.RaiseECN(b, 1); err != ErrShortPacket {
				t.Fatalf("%+v len %d: RaiseECN = %v", l, n, err)
			}
		}
		// Exactly a header: empty payload.
		_, rest, err := l.Decode(make([]byte, l.Len()))
		if err != nil || len(rest) != 0 {
			t.Fatalf("%+v: header only: %q, %v", l, rest, err)
		}
	}
}

func TestInPlace(t *testing.T) {
	for _, l := range allLayouts() {
		p := PCI{Dst: l.MaxAddr(), QoS: 3, TTL: 3, ECN: 2, EID: l.MaxEID()}
		b := make([]byte, l.Len()+4)
		if _, err := l.Encode(b, &p); err != nil {
			t.Fatal(err)
		}
		if d, err := l.Dst(b); err != nil || d != p.Dst {
			t.Fatalf("%+v: Dst = %d, %v", l, d, err)
		}
		if e, err := l.EID(b); err != nil || e != p.EID {
			t.Fatalf("%+v: EID = %d, %v", l, e, err)
		}
		for _, want := range []uint8{2, 1} {
			if ttl, err := l.DecTTL(b); err != nil || ttl != want {
				t.Fatalf("%+v: DecTTL = %d, %v, want %d", l, ttl, err, want)
			}
		}
		for range 2 { // 1 -> 0 expires, and 0 stays 0
			if ttl, err := l.DecTTL(b); !errors.Is(err, ErrTTLExpired) || ttl != 0 {
				t.Fatalf("%+v: DecTTL at end = %d, %v", l, ttl, err)
			}
		}
		if v, err := l.RaiseECN(b, 1); err != nil || v != 2 {
			t.Fatalf("%+v: RaiseECN(1) over 2 = %d, %v", l, v, err)
		}
		if v, err := l.RaiseECN(b, 9); err != nil || v != 9 {
			t.Fatalf("%+v: RaiseECN(9) = %d, %v", l, v, err)
		}
		if v, err := l.ECN(b); err != nil || v != 9 {
			t.Fatalf("%+v: ECN after RaiseECN(9) = %d, %v", l, v, err)
		}
		if err := l.SetECN(b, 0); err != nil {
			t.Fatal(err)
		}
		got, _, err := l.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		want := p
		want.TTL, want.ECN = 0, 0
		if got != want {
			t.Fatalf("%+v: after in-place edits %+v, want %+v", l, got, want)
		}
	}
}

func TestCodecAllocs(t *testing.T) {
	l := DefaultLayout()
	b := make([]byte, 64)
	p := PCI{Dst: 7, TTL: 200, EID: 9}
	short := b[:3]
	allocs := testing.AllocsPerRun(100, func() {
		_, _ = l.Encode(b, &p)
		_, _, _ = l.Decode(b)
		_, _ = l.DecTTL(b)
		_, _ = l.RaiseECN(b, 1)
		_, _, _, _ = l.FlowKey(b)
		_, _, _ = l.Decode(short)
		_, _ = l.DecTTL(short)
	})
	if allocs != 0 {
		t.Fatalf("codec allocates %v times per run, want 0", allocs)
	}
}
