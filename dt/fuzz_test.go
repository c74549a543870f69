package dt

import (
	"bytes"
	"errors"
	"testing"
)

func addDecodeSeeds(f *testing.F) {
	f.Add([]byte{}, 4, 8)
	f.Add([]byte{1, 2, 3}, 4, 8)
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 'h', 'i'}, 4, 8)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 8, 1)
	f.Add([]byte{0, 0, 1, 0, 0}, 1, 1)
	f.Add([]byte{9, 9, 9, 9}, 0, 8)
	f.Add([]byte{9, 9, 9, 9}, -3, 100)
	f.Add(bytes.Repeat([]byte{0x80}, 40), 8, 8)
}

// FuzzDecode checks that Decode never panics on any input or layout and
// that encoding a decoded header reproduces the input bytes.
func FuzzDecode(f *testing.F) {
	addDecodeSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte, addr, eid int) {
		l := Layout{AddrSize: addr, EIDSize: eid}
		p, rest, err := l.Decode(data)
		if l.Validate() != nil {
			if !errors.Is(err, ErrLayout) {
				t.Fatalf("invalid layout %+v: Decode err = %v", l, err)
			}
			return
		}
		if len(data) < l.Len() {
			if err != ErrShortPacket {
				t.Fatalf("short input: err = %v", err)
			}
			return
		}
		if err != nil {
			t.Fatalf("Decode(%x) with %+v: %v", data, l, err)
		}
		if !bytes.Equal(rest, data[l.Len():]) {
			t.Fatalf("payload %x, want %x", rest, data[l.Len():])
		}
		buf := make([]byte, l.Len())
		if p.Label > MaxLabel {
			// Decode returns the label as it is; Label and Encode refuse it.
			if _, err := l.Label(data); !errors.Is(err, ErrLabel) {
				t.Fatalf("label %d: Label err = %v, want ErrLabel", p.Label, err)
			}
			if _, err := l.Encode(buf, &p); !errors.Is(err, ErrRange) {
				t.Fatalf("label %d: Encode err = %v, want ErrRange", p.Label, err)
			}
			p.Label = 0
			data = append([]byte(nil), data...)
			data[l.AddrSize+3] = 0
		}
		n, err := l.Encode(buf, &p)
		if err != nil || n != l.Len() {
			t.Fatalf("re-encode %+v: %d, %v", p, n, err)
		}
		if !bytes.Equal(buf, data[:n]) {
			t.Fatalf("re-encoded %x, want %x", buf, data[:n])
		}
	})
}

// FuzzInPlace checks that the forwarding-path helpers never panic, only
// touch their own field, and agree with Decode.
func FuzzInPlace(f *testing.F) {
	addDecodeSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte, addr, eid int) {
		l := Layout{AddrSize: addr, EIDSize: eid}
		pkt := append([]byte(nil), data...)
		before, _, derr := l.Decode(data)
		dst, e, qos, kerr := l.FlowKey(pkt)
		ttl, terr := l.DecTTL(pkt)
		ecn, rerr := l.RaiseECN(pkt, 7)
		if got, err := l.ECN(pkt); (err == nil) != (rerr == nil) || (err == nil && got != ecn) {
			t.Fatalf("ECN = %d, %v after RaiseECN = %d, %v", got, err, ecn, rerr)
		}
		label, lerr := l.Label(pkt)
		_, _ = l.Dst(pkt)
		_, _ = l.EID(pkt)
		if derr != nil {
			if kerr == nil || terr == nil || rerr == nil {
				t.Fatalf("Decode failed (%v) but helpers did not: %v %v %v", derr, kerr, terr, rerr)
			}
			if !bytes.Equal(pkt, data) {
				t.Fatalf("failed helpers modified the packet")
			}
			return
		}
		if kerr != nil || rerr != nil || (terr != nil && !errors.Is(terr, ErrTTLExpired)) {
			t.Fatalf("helpers failed on a valid header: %v %v %v", kerr, terr, rerr)
		}
		if label != before.Label || (lerr != nil) != (before.Label > MaxLabel) {
			t.Fatalf("Label = %d, %v; Decode = %+v", label, lerr, before)
		}
		if dst != before.Dst || e != before.EID || qos != before.QoS {
			t.Fatalf("FlowKey = %d %d %d, Decode = %+v", dst, e, qos, before)
		}
		want := before
		want.TTL = 0
		if before.TTL > 1 {
			want.TTL = before.TTL - 1
		}
		want.ECN = max(before.ECN, 7)
		after, rest, err := l.Decode(pkt)
		if err != nil || after != want || ttl != want.TTL || ecn != want.ECN {
			t.Fatalf("after edits %+v (%v), ttl %d ecn %d; want %+v", after, err, ttl, ecn, want)
		}
		if !bytes.Equal(rest, data[l.Len():]) {
			t.Fatalf("payload changed")
		}
	})
}
