package udp

import (
	"bytes"
	"testing"
	"time"

	"github.com/ouro-net/ouro/lib/namehash"
	"github.com/ouro-net/ouro/lib/qos"
)

// sampleMsgs is one of each management frame, for tests and seeds.
func sampleMsgs() []msg {
	h := namehash.Of("oping")
	return []msg{
		{typ: tQuery, hash: h},
		{typ: tQueryReply, hash: h, found: true},
		{typ: tQueryReply, hash: h},
		{typ: tAllocReq, src: 0xdeadbeef, hash: h, mtu: 1468, qos: qos.Raw()},
		{typ: tAllocReq, src: 7, hash: h, mtu: 65000, dport: 40000, qos: qos.LowLatency()},
		{typ: tAllocReq, src: 9, hash: h, mtu: 512, qos: qos.Spec{Name: "my-own", Cube: 2, Reliable: true,
			InOrder: true, PeerTimeout: 20 * time.Second}},
		{typ: tAllocResp, dst: 1, src: 2, status: stOK, mtu: 1400, dport: 51234},
		{typ: tAllocResp, dst: 1, status: stNoName},
		{typ: tDealloc, dst: 3, src: 4},
		{typ: tDeallocAck, dst: 4, src: 3},
		{typ: tConfirm, dst: 0xdeadbeef, src: 0xdeadbeef},
	}
}

func TestCodecRoundTrip(t *testing.T) {
	for _, m := range sampleMsgs() {
		b := m.encode(make([]byte, 0, maxMgmtLen))
		var got msg
		if err := got.decode(b); err != nil {
			t.Fatalf("%v: decode: %v", m.typ, err)
		}
		if got != m {
			t.Fatalf("%v: got %+v, want %+v", m.typ, got, m)
		}
		eid, _, err := splitFrame(b)
		if err != nil || eid != 0 {
			t.Fatalf("%v: management frame seen as eid %d, %v", m.typ, eid, err)
		}
		// Every strict prefix is short, every extension malformed.
		for n := range len(b) {
			if err := got.decode(b[:n]); err == nil {
				t.Fatalf("%v: %d of %d bytes decoded", m.typ, n, len(b))
			}
		}
		if err := got.decode(append(b, 0)); err == nil {
			t.Fatalf("%v: trailing byte accepted", m.typ)
		}
	}
}

func TestCodecRejects(t *testing.T) {
	good := (&msg{typ: tDealloc, dst: 1, src: 2}).encode(nil)
	mut := func(i int, v byte) []byte {
		b := bytes.Clone(good)
		b[i] = v
		return b
	}
	long := (&msg{typ: tAllocReq, src: 1, mtu: 1400, qos: qos.Spec{Name: string(bytes.Repeat([]byte{'x'}, 100))}}).encode(nil)
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, errShort},
		{"eid only", []byte{0, 0, 0, 0}, errShort},
		{"version 0", mut(4, 0), errVersion},
		{"version 1", mut(4, 1), errVersion},
		{"version 2", mut(4, 2), errVersion},
		{"version 4", mut(4, 4), errVersion},
		{"type 0", mut(5, 0), errType},
		{"type 99", mut(5, 99), errType},
		{"zero dst", mut(9, 0), errMalformed},
		{"not management", mut(3, 1), errMalformed},
		{"alloc mtu 100", (&msg{typ: tAllocReq, src: 1, mtu: 100}).encode(nil), errMalformed},
		{"ok mtu 0", (&msg{typ: tAllocResp, dst: 1, src: 2}).encode(nil), errMalformed},
		{"found 2", append((&msg{typ: tQueryReply}).encode(nil)[:queryLen], 2), errMalformed},
	}
	for _, c := range cases {
		var m msg
		if err := m.decode(c.b); err != c.want {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
	// A QoS name longer than the limit is cut on encoding.
	var m msg
	if err := m.decode(long); err != nil || len(m.qos.Name) != maxQoSName {
		t.Fatalf("long QoS name: %v, %q", err, m.qos.Name)
	}
	// Durations saturate instead of wrapping.
	big := (&msg{typ: tAllocReq, src: 1, mtu: 1400, qos: qos.Spec{PeerTimeout: 100 * 365 * 24 * time.Hour}}).encode(nil)
	if err := m.decode(big); err != nil || m.qos.PeerTimeout != (1<<32-1)*time.Millisecond {
		t.Fatalf("saturation: %v %+v", err, m.qos)
	}
	// The 4 reserved bytes after the QoS flags (they carried a delay
	// bound no layer acted on) go as zero and are ignored on receipt.
	const reserved = 4 + 2 + 4 + namehash.Size + 2 + 2 + 2
	enc := (&msg{typ: tAllocReq, src: 1, mtu: 1400, qos: qos.LowLatency()}).encode(nil)
	if !bytes.Equal(enc[reserved:reserved+4], []byte{0, 0, 0, 0}) {
		t.Fatalf("reserved bytes sent as %x", enc[reserved:reserved+4])
	}
	copy(enc[reserved:], []byte{1, 2, 3, 4})
	if err := m.decode(enc); err != nil || m.qos != qos.LowLatency() {
		t.Fatalf("non-zero reserved bytes: %v %+v", err, m.qos)
	}
	neg := (&msg{typ: tAllocReq, src: 1, mtu: 1400, qos: qos.Spec{PeerTimeout: -1}}).encode(nil)
	if err := m.decode(neg); err != nil || m.qos.PeerTimeout != 0 {
		t.Fatalf("negative: %v %+v", err, m.qos)
	}
}

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

// FuzzDecode checks that decoding never panics and that whatever
// decodes re-encodes to the same bytes (the format has one encoding,
// but for an alloc request's reserved QoS bytes, ignored and sent as
// zero).
func FuzzDecode(f *testing.F) {
	for _, m := range sampleMsgs() {
		b := m.encode(nil)
		f.Add(b)
		f.Add(b[:len(b)-1])
	}
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 0, 2, 1})
	f.Add([]byte{0, 0, 0, 1, 'x'})
	f.Fuzz(func(t *testing.T, b []byte) {
		var m msg
		if err := m.decode(b); err != nil {
			return
		}
		out := m.encode(make([]byte, 0, maxMgmtLen))
		want := b
		if m.typ == tAllocReq {
			// The 4 reserved bytes of the QoS are ignored and sent
			// as zero: the one place where decoding forgets input.
			const at = mgmtHdrLen + eidLen + namehash.Size + 2 + 2 + 1 + 1
			want = bytes.Clone(b)
			clear(want[at : at+4])
		}
		if !bytes.Equal(out, want) {
			t.Fatalf("decode/encode changed the frame:\n in %x\nout %x", b, out)
		}
	})
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

func BenchmarkMgmtCodec(b *testing.B) {
	m := msg{typ: tAllocReq, src: 5, hash: namehash.Of("oping"), mtu: 1400, qos: qos.Reliable()}
	buf := make([]byte, 0, maxMgmtLen)
	var out msg
	b.ReportAllocs()
	for b.Loop() {
		buf = m.encode(buf)
		if err := out.decode(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// TestAnswersNoLarger checks the no-amplification rule of the format:
// whatever one frame can make an IPCP send is no larger than the frame.
func TestAnswersNoLarger(t *testing.T) {
	enc := func(m msg) int { return len(m.encode(nil)) }
	h := namehash.Of("x")
	for _, c := range []struct {
		what     string
		req, ans int
	}{
		{"query -> reply", enc(msg{typ: tQuery, hash: h}), enc(msg{typ: tQueryReply, hash: h, found: true})},
		// pending now, the answer later, a dealloc if never confirmed
		{"alloc req -> pending, ok, dealloc", enc(msg{typ: tAllocReq, src: 1, hash: h, mtu: 1400}),
			2*enc(msg{typ: tAllocResp, dst: 1, src: 1, mtu: 1400}) + enc(msg{typ: tDealloc, dst: 1, src: 1})},
		{"stale ok -> dealloc", enc(msg{typ: tAllocResp, dst: 1, src: 1, mtu: 1400}), enc(msg{typ: tDealloc, dst: 1, src: 1})},
		{"repeated ok -> confirm", enc(msg{typ: tAllocResp, dst: 1, src: 1, mtu: 1400}), enc(msg{typ: tConfirm, dst: 1, src: 1})},
		{"dealloc -> ack", enc(msg{typ: tDealloc, dst: 1, src: 1}), enc(msg{typ: tDeallocAck, dst: 1, src: 1})},
	} {
		if c.ans > c.req {
			t.Errorf("%s: %d bytes in, %d out", c.what, c.req, c.ans)
		}
	}
}
