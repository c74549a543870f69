package frame_test

import (
	"bytes"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/ouro-net/ouro/internal/testenv"
	"github.com/ouro-net/ouro/ipcpd/eth/frame"
	"github.com/ouro-net/ouro/lib/namehash"
	"github.com/ouro-net/ouro/lib/qos"
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

func mgmtSamples() []frame.Mgmt {
	h := namehash.Of("oping")
	return []frame.Mgmt{
		{Code: frame.QueryReq, Hash: h},
		{Code: frame.QueryReply, Hash: h},
		{Code: frame.AllocReq, SEID: 9, Hash: h, QoS: qos.Raw()},
		{Code: frame.AllocReq, SEID: 65535, Hash: h, QoS: qos.Reliable()},
		{Code: frame.AllocReq, SEID: 1, Hash: h, QoS: qos.LowLatency()},
		{Code: frame.AllocReq, SEID: 1, Hash: h, QoS: qos.Spec{Name: "custom", Cube: 200, PeerTimeout: 3 * time.Second}},
		{Code: frame.AllocReply, SEID: 3, DEID: 9, Result: frame.OK},
		{Code: frame.AllocReply, DEID: 9, Result: frame.NoName},
		{Code: frame.Dealloc, SEID: 3, DEID: 9},
		{Code: frame.Confirm, SEID: 9, DEID: 3},
	}
}

// TestAnswersNoLarger checks the no-amplification rule of the format:
// what one message can make a station send is no larger than it.
func TestAnswersNoLarger(t *testing.T) {
	h := namehash.Of("x")
	size := func(m frame.Mgmt) int { return m.Len() }
	req := size(frame.Mgmt{Code: frame.AllocReq, Hash: h, QoS: qos.Spec{}})
	for _, c := range []struct {
		what     string
		in, outs int
	}{
		{"query -> reply", size(frame.Mgmt{Code: frame.QueryReq}), size(frame.Mgmt{Code: frame.QueryReply})},
		{"alloc -> reply, dealloc on expiry", req, size(frame.Mgmt{Code: frame.AllocReply}) + size(frame.Mgmt{Code: frame.Dealloc})},
		{"reply -> confirm", size(frame.Mgmt{Code: frame.AllocReply}), size(frame.Mgmt{Code: frame.Confirm})},
		{"reply -> dealloc", size(frame.Mgmt{Code: frame.AllocReply}), size(frame.Mgmt{Code: frame.Dealloc})},
	} {
		if c.outs > c.in {
			t.Errorf("%s: %d bytes in, %d out", c.what, c.in, c.outs)
		}
	}
}

func TestMgmtRoundTrip(t *testing.T) {
	for _, m := range mgmtSamples() {
		b, err := m.Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != m.Len() || b[0] != frame.Version || frame.Code(b[1]) != m.Code {
			t.Fatalf("%v: encoded %x (len %d, want %d)", m.Code, b, len(b), m.Len())
		}
		got, err := frame.DecodeMgmt(b)
		if err != nil {
			t.Fatalf("%v: %v", m.Code, err)
		}
		if got != m {
			t.Fatalf("round trip %v:\n got %+v\nwant %+v", m.Code, got, m)
		}
	}
}

func TestMgmtQueryLayout(t *testing.T) {
	h := namehash.Of("x")
	b, _ := (&frame.Mgmt{Code: frame.QueryReq, Hash: h}).Append(nil)
	want := append([]byte{frame.Version, byte(frame.QueryReq)}, h[:]...)
	if !bytes.Equal(b, want) {
		t.Fatalf("query = %x, want %x", b, want)
	}
}

func TestMgmtBad(t *testing.T) {
	b, _ := (&frame.Mgmt{Code: frame.AllocReq, SEID: 1, Hash: namehash.Of("x"), QoS: qos.Reliable()}).Append(nil)
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, frame.ErrShort},
		{"version only", []byte{frame.Version}, frame.ErrShort},
		{"other version", append([]byte{frame.Version + 1}, b[1:]...), frame.ErrVersion},
		{"unknown code", []byte{frame.Version, 99, 0, 0}, frame.ErrCode},
		{"truncated", b[:len(b)-1], frame.ErrMalformed},
		{"trailing", append(append([]byte{}, b...), 0), frame.ErrMalformed},
		{"short fixed part", b[:20], frame.ErrMalformed},
		{"unknown flags", func() []byte { c := append([]byte{}, b...); c[2+2+16+1] |= 0x80; return c }(), frame.ErrMalformed},
		{"long qos name", func() []byte { c := append([]byte{}, b...); c[2+2+16+10] = 200; return c }(), frame.ErrMalformed},
		{"short query", []byte{frame.Version, byte(frame.QueryReq), 1, 2}, frame.ErrMalformed},
		{"short reply", []byte{frame.Version, byte(frame.AllocReply), 1, 2, 3, 4}, frame.ErrMalformed},
		{"long dealloc", []byte{frame.Version, byte(frame.Dealloc), 1, 2, 3, 4, 5}, frame.ErrMalformed},
	}
	for _, c := range cases {
		if _, err := frame.DecodeMgmt(c.b); !errors.Is(err, c.want) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := (&frame.Mgmt{Code: 77}).Append(nil); !errors.Is(err, frame.ErrCode) {
		t.Errorf("encode unknown code: %v", err)
	}
}

func TestMgmtQoSSaturates(t *testing.T) {
	m := frame.Mgmt{Code: frame.AllocReq, QoS: qos.Spec{Name: string(bytes.Repeat([]byte("n"), 50)),
		PeerTimeout: 100 * 365 * 24 * time.Hour}}
	b, _ := m.Append(nil)
	got, err := frame.DecodeMgmt(b)
	if err != nil {
		t.Fatal(err)
	}
	// The 4 reserved bytes after the QoS flags (they carried a delay
	// bound no layer acted on) go as zero and are ignored on receipt.
	const reserved = 2 + 2 + 16 + 2
	if !bytes.Equal(b[reserved:reserved+4], []byte{0, 0, 0, 0}) {
		t.Fatalf("reserved bytes sent as %x", b[reserved:reserved+4])
	}
	copy(b[reserved:], []byte{1, 2, 3, 4})
	if again, err := frame.DecodeMgmt(b); err != nil || again.QoS != got.QoS {
		t.Fatalf("non-zero reserved bytes: %v %+v", err, again.QoS)
	}
	if len(got.QoS.Name) != frame.MaxQoSName || got.QoS.PeerTimeout != (1<<32-1)*time.Millisecond {
		t.Fatalf("saturated QoS = %+v", got.QoS)
	}
}
