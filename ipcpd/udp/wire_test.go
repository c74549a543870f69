package udp

import "testing"

func TestDataHeader(t *testing.T) {
	b := make([]byte, eidLen+3)
	putDataHeader(b, 0x01020304)
	copy(b[eidLen:], "abc")
	eid, p, err := splitFrame(b)
	if err != nil || eid != 0x01020304 || string(p) != "abc" {
		t.Fatalf("got %x %q %v", eid, p, err)
	}
	if _, _, err := splitFrame(b[:3]); err != errShort {
		t.Fatalf("3 bytes: %v", err)
	}
}

// FuzzSplitFrame checks the data header parser.
func FuzzSplitFrame(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 2, 3})
	f.Add([]byte{0, 0, 0, 9, 'p'})
	f.Fuzz(func(t *testing.T, b []byte) {
		eid, p, err := splitFrame(b)
		if err != nil {
			if len(b) >= eidLen {
				t.Fatalf("%d bytes refused", len(b))
			}
			return
		}
		if len(p) != len(b)-eidLen || (eid == 0) != (b[0]|b[1]|b[2]|b[3] == 0) {
			t.Fatalf("eid %x payload %d of %x", eid, len(p), b)
		}
	})
}

func BenchmarkDataHeader(b *testing.B) {
	buf := make([]byte, eidLen+64)
	b.ReportAllocs()
	var sum uint32
	for i := 0; b.Loop(); i++ {
		putDataHeader(buf, uint32(i)|1)
		eid, p, _ := splitFrame(buf)
		sum += eid + uint32(len(p))
	}
	_ = sum
}
