package qos

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestWireRoundTrip(t *testing.T) {
	for _, name := range []string{"raw", "best-effort", "low-latency", "reliable", "bulk"} {
		s, _ := Parse(name)
		s.PeerTimeout = 1500 * time.Millisecond
		b := AppendWire(nil, s)
		if len(b) != WireLen(s) {
			t.Fatalf("%s: %d bytes, WireLen %d", name, len(b), WireLen(s))
		}
		got, n, err := DecodeWire(append(b, 0xEE))
		s.Congestion = false // not carried
		if err != nil || n != len(b) || got != s {
			t.Fatalf("%s: got %+v, %d, %v; want %+v, %d", name, got, n, err, s, len(b))
		}
	}
}

func TestWireSaturatesAndCuts(t *testing.T) {
	s := Spec{Name: strings.Repeat("x", 100), PeerTimeout: 1 << 62}
	got, _, err := DecodeWire(AppendWire(nil, s))
	if err != nil || len(got.Name) != MaxWireName || got.PeerTimeout != (1<<32-1)*time.Millisecond {
		t.Fatalf("got %+v, %v", got, err)
	}
	got, _, _ = DecodeWire(AppendWire(nil, Spec{PeerTimeout: -time.Second}))
	if got.PeerTimeout != 0 {
		t.Fatalf("negative timeout decoded as %v", got.PeerTimeout)
	}
}

func TestWireRejects(t *testing.T) {
	good := AppendWire(nil, Reliable())
	bad := map[string][]byte{
		"empty":    nil,
		"short":    good[:WireFixedLen-1],
		"name cut": good[:len(good)-1],
		"flags":    append([]byte{0, 8}, good[2:]...),
		"name too long": func() []byte {
			b := bytes.Clone(good[:WireFixedLen])
			b[10] = MaxWireName + 1
			return append(b, make([]byte, MaxWireName+1)...)
		}(),
	}
	for what, b := range bad {
		if _, _, err := DecodeWire(b); !errors.Is(err, ErrWire) {
			t.Errorf("%s: err %v, want ErrWire", what, err)
		}
	}
}

func TestWireDecodeNoAlloc(t *testing.T) {
	b := AppendWire(nil, Bulk())
	if n := testing.AllocsPerRun(100, func() { _, _, _ = DecodeWire(b) }); n != 0 {
		t.Fatalf("%v allocations per decode of a preset", n)
	}
}

func FuzzDecodeWire(f *testing.F) {
	f.Add(AppendWire(nil, LowLatency()))
	f.Add(AppendWire(nil, Spec{Name: "custom", Reliable: true, PeerTimeout: time.Hour}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, n, err := DecodeWire(b)
		if err != nil {
			return
		}
		if n > len(b) || n != WireLen(s) {
			t.Fatalf("took %d of %d bytes for %+v", n, len(b), s)
		}
		if again := AppendWire(nil, s); !bytes.Equal(again, append(b[:2:2], append([]byte{0, 0, 0, 0}, b[6:n]...)...)) {
			t.Fatalf("re-encoding %x gave %x", b[:n], again)
		}
	})
}
