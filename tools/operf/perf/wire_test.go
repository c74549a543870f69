package perf

import (
	"errors"
	"testing"
	"time"
)

func TestControlRoundTrip(t *testing.T) {
	h := Hello{Run: 7, Both: true, Size: 1400, Rate: 2500.5, Duration: 3 * time.Second, Interval: time.Second}
	if got, err := ParseHello(h.Marshal()); err != nil || got != h {
		t.Fatalf("hello: got %+v, %v; want %+v", got, err, h)
	}
	a := Ack{Run: 9}
	if got, err := ParseAck(a.Marshal()); err != nil || got != a {
		t.Fatalf("ack: got %+v, %v", got, err)
	}
	e := End{Run: 9, Sent: 1 << 40}
	if got, err := ParseEnd(e.Marshal()); err != nil || got != e {
		t.Fatalf("end: got %+v, %v", got, err)
	}
	r := Report{Run: 3, Final: true, Index: 4, Sent: 12,
		Total: Counts{Elapsed: 2 * time.Second, Packets: 10, Bytes: 20, Lost: 30, Late: 40, DelaySum: 50, DelayMax: 60}}
	if got, err := ParseReport(r.Marshal()); err != nil || got != r {
		t.Fatalf("report: got %+v, %v; want %+v", got, err, r)
	}
}

func TestDataRoundTrip(t *testing.T) {
	b := make([]byte, 64)
	at := time.Unix(1700000000, 123456789)
	PutData(b, 42, at)
	seq, sent, err := ParseData(b)
	if err != nil || seq != 42 || !sent.Equal(at) {
		t.Fatalf("got %d %v %v", seq, sent, err)
	}
	if _, _, err := ParseData(b[:HeaderSize-1]); !errors.Is(err, ErrShort) {
		t.Fatalf("short data: %v", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	h := Hello{Run: 1, Size: 100}.Marshal()
	if _, err := ParseHello(h[:len(h)-1]); !errors.Is(err, ErrShort) {
		t.Errorf("short hello: %v", err)
	}
	h[1] = Version + 1
	if _, err := ParseHello(h); !errors.Is(err, ErrVersion) {
		t.Errorf("future version: %v", err)
	}
	if _, err := ParseAck(End{}.Marshal()); !errors.Is(err, ErrType) {
		t.Errorf("end parsed as ack: %v", err)
	}
	if _, err := ParseHello(Hello{Rate: -1}.Marshal()); err == nil {
		t.Error("negative rate accepted")
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Hello{Run: 1, Size: 64, Rate: 10}.Marshal())
	f.Add(Ack{Run: 1}.Marshal())
	f.Add(End{Run: 1, Sent: 5}.Marshal())
	f.Add(Report{Run: 1, Final: true}.Marshal())
	f.Add([]byte{TypeData, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if h, err := ParseHello(b); err == nil {
			if h2, err := ParseHello(h.Marshal()); err != nil || h2 != h {
				t.Fatalf("hello does not survive a round trip: %+v %+v %v", h, h2, err)
			}
		}
		if r, err := ParseReport(b); err == nil {
			if r2, err := ParseReport(r.Marshal()); err != nil || r2 != r {
				t.Fatalf("report does not survive a round trip")
			}
		}
		ParseAck(b)
		ParseEnd(b)
		ParseData(b)
	})
}
