package frame_test

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"github.com/ouro-net/ouro/internal/testenv"
	"github.com/ouro-net/ouro/ipcpd/eth/frame"
)

func TestMain(m *testing.M) {
	testenv.MaybeRunIPCP()
	code := m.Run()
	testenv.CleanupBinaries()
	os.Exit(code)
}

var (
	macA = frame.MAC{0x02, 0, 0, 0, 0, 0xa}
	macB = frame.MAC{0x02, 0, 0, 0, 0, 0xb}
)

func TestFrameRoundTrip(t *testing.T) {
	h := frame.Header{Dst: macB, Src: macA, EtherType: frame.DefaultEtherType, EID: 0x1234}
	b := frame.Append(nil, h, []byte("hello"))
	want := []byte{
		0x02, 0, 0, 0, 0, 0xb, // dst
		0x02, 0, 0, 0, 0, 0xa, // src
		0xa0, 0x00, // EtherType
		0x12, 0x34, // eid
		0x00, 0x05, // length
		'h', 'e', 'l', 'l', 'o',
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("encoded\n%x\nwant\n%x", b, want)
	}
	got, p, err := frame.Decode(b)
	if err != nil || got != h || string(p) != "hello" {
		t.Fatalf("decode = %+v %q %v", got, p, err)
	}
}

// Ethernet pads short frames to 60 bytes: the length field, not the
// frame size, says where the payload ends.
func TestFramePadding(t *testing.T) {
	h := frame.Header{Dst: macB, Src: macA, EtherType: frame.DefaultEtherType, EID: 7}
	b := frame.Append(nil, h, []byte{1, 2, 3})
	padded := append(b, make([]byte, frame.MinFrame-len(b))...)
	_, p, err := frame.Decode(padded)
	if err != nil || !bytes.Equal(p, []byte{1, 2, 3}) {
		t.Fatalf("padded frame: payload %x, err %v", p, err)
	}
	// An empty payload is legal.
	_, p, err = frame.Decode(frame.Append(nil, h, nil))
	if err != nil || len(p) != 0 {
		t.Fatalf("empty payload: %x %v", p, err)
	}
}

func TestFrameBad(t *testing.T) {
	h := frame.Header{Dst: macB, Src: macA, EtherType: frame.DefaultEtherType, EID: 7}
	b := frame.Append(nil, h, []byte("payload"))
	for n := 0; n < frame.HeaderLen; n++ {
		if _, _, err := frame.Decode(b[:n]); !errors.Is(err, frame.ErrShort) {
			t.Errorf("%d bytes: err %v, want ErrShort", n, err)
		}
	}
	for n := frame.HeaderLen; n < len(b); n++ {
		if _, _, err := frame.Decode(b[:n]); !errors.Is(err, frame.ErrLength) {
			t.Errorf("%d bytes: err %v, want ErrLength", n, err)
		}
	}
	if _, ok := frame.EtherType(b[:13]); ok {
		t.Error("EtherType of 13 bytes should fail")
	}
	if et, ok := frame.EtherType(b); !ok || et != frame.DefaultEtherType {
		t.Errorf("EtherType = %x %v", et, ok)
	}
}

func TestFrameNoAlloc(t *testing.T) {
	h := frame.Header{Dst: macB, Src: macA, EtherType: frame.DefaultEtherType, EID: 7}
	buf := make([]byte, frame.HeaderLen+100)
	n := testing.AllocsPerRun(100, func() {
		frame.PutHeader(buf, h, 100)
		if _, _, err := frame.Decode(buf); err != nil {
			t.Fatal(err)
		}
		_, _, _ = frame.Decode(buf[:10])
	})
	if n != 0 {
		t.Fatalf("%v allocations per encode+decode, want 0", n)
	}
}

func TestMACs(t *testing.T) {
	if !frame.Broadcast().IsBroadcast() || !frame.Broadcast().IsMulticast() || macA.IsMulticast() {
		t.Fatal("address classes wrong")
	}
	if s := macA.String(); s != "02:00:00:00:00:0a" {
		t.Fatalf("String = %q", s)
	}
	if _, err := frame.MACFrom([]byte{1, 2, 3}); err == nil {
		t.Fatal("3-byte MAC accepted")
	}
}
