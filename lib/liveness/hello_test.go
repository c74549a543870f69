package liveness

import (
	"errors"
	"testing"
	"time"
)

func TestHelloRoundTrip(t *testing.T) {
	for _, h := range []Hello{
		{Flags: 0, Interval: 250 * time.Millisecond},
		{Flags: Poll | Starved, Interval: time.Millisecond},
		{Flags: 0xff, Interval: 65535 * time.Millisecond},
	} {
		b := AppendHello(nil, h)
		if len(b) != HelloLen {
			t.Fatalf("%+v: %d bytes", h, len(b))
		}
		got, err := ParseHello(b)
		if err != nil || got != h {
			t.Fatalf("%+v: got %+v, %v", h, got, err)
		}
	}
	// Out of range intervals are kept within 1 ms .. 65535 ms.
	if h, _ := ParseHello(AppendHello(nil, Hello{Interval: time.Hour})); h.Interval != 65535*time.Millisecond {
		t.Fatalf("an hour encoded as %v", h.Interval)
	}
	if h, _ := ParseHello(AppendHello(nil, Hello{Interval: time.Microsecond})); h.Interval != time.Millisecond {
		t.Fatalf("1 us encoded as %v", h.Interval)
	}
}

// TestHelloBadInput: anything but a well-formed hello is refused with
// ErrNotHello: the opening hello's msgpack map, truncated and padded
// hellos, a zero interval.
func TestHelloBadInput(t *testing.T) {
	for _, b := range [][]byte{nil, {}, {0x85, 1, 2, 3}, {HelloVersion}, {HelloVersion, 0, 0}, {HelloVersion, 0, 0, 10, 0}, {HelloVersion, 0, 0, 0}} {
		if _, err := ParseHello(b); !errors.Is(err, ErrNotHello) {
			t.Errorf("% x: %v, want ErrNotHello", b, err)
		}
	}
}

func FuzzParseHello(f *testing.F) {
	f.Add(AppendHello(nil, Hello{Flags: Poll, Interval: 250 * time.Millisecond}))
	f.Add([]byte{0x85, 0xa1, 'v', 3})
	f.Add([]byte{HelloVersion, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHello(b)
		if err != nil {
			return
		}
		if h.Interval < time.Millisecond || h.Interval > 65535*time.Millisecond {
			t.Fatalf("interval %v out of range", h.Interval)
		}
		if again, err := ParseHello(AppendHello(nil, h)); err != nil || again != h {
			t.Fatalf("%+v does not round-trip: %+v %v", h, again, err)
		}
	})
}
