package wire

import (
	"bytes"
	"testing"
	"time"

	"github.com/ouro-net/ouro/lib/namehash"
	"github.com/ouro-net/ouro/lib/qos"
)

// sampleMsgs is one of each message, for tests and seeds.
func sampleMsgs() []Msg {
	h := namehash.Of("oping")
	return []Msg{
		{Type: Query, Hash: h},
		{Type: QueryReply, Hash: h, Found: true},
		{Type: QueryReply, Hash: h},
		{Type: AllocReq, Src: 0xdeadbeef, Hash: h, MTU: 1468, QoS: qos.Raw()},
		{Type: AllocReq, Src: 7, Hash: h, MTU: 65000, Port: 40000, QoS: qos.LowLatency()},
		{Type: AllocReq, Src: 9, Hash: h, MTU: 512, QoS: qos.Spec{Name: "my-own-qos-name-of-32-bytes-long", Cube: 2, Reliable: true,
			InOrder: true, PeerTimeout: 20 * time.Second}},
		{Type: AllocResp, Dst: 1, Src: 2, Status: OK, MTU: 1400, Port: 51234},
		{Type: AllocResp, Dst: 1, Status: NoName},
		{Type: AllocResp, Dst: 1, Status: Pending},
		{Type: Dealloc, Dst: 3, Src: 4},
		{Type: DeallocAck, Dst: 4, Src: 3},
		{Type: Confirm, Dst: 0xdeadbeef, Src: 0xdeadbeef},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, m := range sampleMsgs() {
		b := m.Append(make([]byte, 0, MaxLen))
		if len(b) != m.Len() {
			t.Fatalf("%v: %d bytes, Len says %d", m.Type, len(b), m.Len())
		}
		var got Msg
		if err := got.Decode(b); err != nil {
			t.Fatalf("%v: decode: %v", m.Type, err)
		}
		if got != m {
			t.Fatalf("%v: got %+v, want %+v", m.Type, got, m)
		}
		// Every strict prefix fails, every extension too.
		for n := range len(b) {
			if err := got.Decode(b[:n]); err == nil {
				t.Fatalf("%v: %d of %d bytes decoded", m.Type, n, len(b))
			}
		}
		if err := got.Decode(append(b, 0)); err == nil {
			t.Fatalf("%v: trailing byte accepted", m.Type)
		}
	}
}

func TestRejects(t *testing.T) {
	good := (&Msg{Type: Dealloc, Dst: 1, Src: 2}).Append(nil)
	mut := func(i int, v byte) []byte {
		b := bytes.Clone(good)
		b[i] = v
		return b
	}
	padded := (&Msg{Type: AllocReq, Src: 1, MTU: 1400, QoS: qos.Raw()}).Append(nil)
	padded[len(padded)-1] = 1
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"version only", []byte{Version}, ErrShort},
		{"version 2 (old eth-dix and tap)", mut(0, 2), ErrVersion},
		{"version 3 (old udp)", mut(0, 3), ErrVersion},
		{"version 5", mut(0, 5), ErrVersion},
		{"type 0", mut(1, 0), ErrType},
		{"type 99", mut(1, 99), ErrType},
		{"zero dst", mut(5, 0), ErrMalformed},
		{"alloc mtu 100", (&Msg{Type: AllocReq, Src: 1, MTU: 100}).Append(nil), ErrMalformed},
		{"alloc src 0", (&Msg{Type: AllocReq, MTU: 1400}).Append(nil), ErrMalformed},
		{"alloc padding not zero", padded, ErrMalformed},
		{"ok mtu 0", (&Msg{Type: AllocResp, Dst: 1, Src: 2}).Append(nil), ErrMalformed},
		{"found 2", append((&Msg{Type: QueryReply}).Append(nil)[:QueryLen-1], 2), ErrMalformed},
		{"query found 1", append((&Msg{Type: Query}).Append(nil)[:QueryLen-1], 1), ErrMalformed},
	}
	for _, c := range cases {
		var m Msg
		if err := m.Decode(c.b); err != c.want {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
	if VersionOf(mut(0, 3)) != 3 || VersionOf(nil) != 0 {
		t.Fatal("VersionOf")
	}
	// A QoS name longer than the limit is cut on encoding.
	var m Msg
	long := (&Msg{Type: AllocReq, Src: 1, MTU: 1400, QoS: qos.Spec{Name: string(bytes.Repeat([]byte{'x'}, 100))}}).Append(nil)
	if err := m.Decode(long); err != nil || len(m.QoS.Name) != qos.MaxWireName {
		t.Fatalf("long QoS name: %v, %q", err, m.QoS.Name)
	}
	// The 4 reserved QoS bytes go as zero and are ignored on receipt.
	const reserved = HeaderLen + 4 + namehash.Size + 2 + 2 + 2
	enc := (&Msg{Type: AllocReq, Src: 1, MTU: 1400, QoS: qos.LowLatency()}).Append(nil)
	if !bytes.Equal(enc[reserved:reserved+4], []byte{0, 0, 0, 0}) {
		t.Fatalf("reserved bytes sent as %x", enc[reserved:reserved+4])
	}
	copy(enc[reserved:], []byte{1, 2, 3, 4})
	if err := m.Decode(enc); err != nil || m.QoS != qos.LowLatency() {
		t.Fatalf("non-zero reserved bytes: %v %+v", err, m.QoS)
	}
}

// TestAnswersNoLarger checks the no-amplification rule of the format:
// whatever one message can make a shim send is no larger than it.
func TestAnswersNoLarger(t *testing.T) {
	enc := func(m Msg) int { return len(m.Append(nil)) }
	h := namehash.Of("x")
	for _, c := range []struct {
		what     string
		req, ans int
	}{
		{"query -> reply", enc(Msg{Type: Query, Hash: h}), enc(Msg{Type: QueryReply, Hash: h, Found: true})},
		// pending now, the answer later, a dealloc if never confirmed
		{"alloc req -> pending, ok, dealloc", enc(Msg{Type: AllocReq, Src: 1, Hash: h, MTU: 1400}),
			2*enc(Msg{Type: AllocResp, Dst: 1, Src: 1, MTU: 1400}) + enc(Msg{Type: Dealloc, Dst: 1, Src: 1})},
		{"stale ok -> dealloc", enc(Msg{Type: AllocResp, Dst: 1, Src: 1, MTU: 1400}), enc(Msg{Type: Dealloc, Dst: 1, Src: 1})},
		{"repeated ok -> confirm", enc(Msg{Type: AllocResp, Dst: 1, Src: 1, MTU: 1400}), enc(Msg{Type: Confirm, Dst: 1, Src: 1})},
		{"dealloc -> ack", enc(Msg{Type: Dealloc, Dst: 1, Src: 1}), enc(Msg{Type: DeallocAck, Dst: 1, Src: 1})},
	} {
		if c.ans > c.req {
			t.Errorf("%s: %d bytes in, %d out", c.what, c.req, c.ans)
		}
	}
}

func TestDecodeNoAlloc(t *testing.T) {
	b := (&Msg{Type: AllocReq, Src: 5, Hash: namehash.Of("oping"), MTU: 1400, QoS: qos.Reliable()}).Append(nil)
	buf := make([]byte, 0, MaxLen)
	var m Msg
	if n := testing.AllocsPerRun(100, func() {
		if m.Decode(b) != nil {
			t.Fatal("decode")
		}
		buf = m.Append(buf[:0])
	}); n != 0 {
		t.Fatalf("%v allocations per decode and encode", n)
	}
}

// FuzzDecode checks that decoding never panics and that whatever
// decodes re-encodes to the same bytes (but for an alloc request's
// reserved QoS bytes, ignored and sent as zero).
func FuzzDecode(f *testing.F) {
	for _, m := range sampleMsgs() {
		b := m.Append(nil)
		f.Add(b)
		f.Add(b[:len(b)-1])
	}
	f.Add([]byte{})
	f.Add([]byte{Version, 1})
	f.Add([]byte{3, 3, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Msg
		if err := m.Decode(b); err != nil {
			return
		}
		out := m.Append(make([]byte, 0, MaxLen))
		want := b
		if m.Type == AllocReq {
			const at = HeaderLen + 4 + namehash.Size + 2 + 2 + 1 + 1
			want = bytes.Clone(b)
			clear(want[at : at+4])
		}
		if !bytes.Equal(out, want) {
			t.Fatalf("decode/encode changed the message:\n in %x\nout %x", b, out)
		}
	})
}

func BenchmarkCodec(b *testing.B) {
	m := Msg{Type: AllocReq, Src: 5, Hash: namehash.Of("oping"), MTU: 1400, QoS: qos.Reliable()}
	buf := make([]byte, 0, MaxLen)
	var out Msg
	b.ReportAllocs()
	for b.Loop() {
		buf = m.Append(buf[:0])
		if err := out.Decode(buf); err != nil {
			b.Fatal(err)
		}
	}
}
