package frame_test

import (
	"bytes"
	"testing"

	"github.com/ouro-net/ouro/ipcpd/eth/frame"
)

// FuzzDecode: any input decodes or fails without panicking, and what
// decodes re-encodes to the same bytes (up to the padding).
func FuzzDecode(f *testing.F) {
	h := frame.Header{Dst: macB, Src: macA, EtherType: frame.DefaultEtherType, EID: 7}
	f.Add(frame.Append(nil, h, []byte("hello")))
	f.Add(frame.Append(nil, h, nil))
	f.Add(append(frame.Append(nil, h, []byte{1}), make([]byte, 41)...))
	f.Add(make([]byte, 17))
	f.Add([]byte{})
	for _, m := range mgmtSamples() {
		b, _ := m.Append(nil)
		f.Add(frame.Append(nil, frame.Header{Dst: frame.Broadcast(), Src: macA, EtherType: frame.DefaultEtherType}, b))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, p, err := frame.Decode(b)
		if err != nil {
			return
		}
		re := frame.Append(nil, h, p)
		if !bytes.Equal(re, b[:len(re)]) {
			t.Fatalf("re-encoded %x, input %x", re, b)
		}
	})
}

// reservedAt is where an AllocReq's reserved QoS bytes start: version,
// code, seid (2), name hash (16), cube, flags.
const reservedAt = 2 + 2 + 16 + 2

// FuzzDecodeMgmt: any input decodes or fails without panicking, and
// what decodes re-encodes to exactly the input (but for an AllocReq's
// reserved bytes, which go out as zero).
func FuzzDecodeMgmt(f *testing.F) {
	for _, m := range mgmtSamples() {
		b, _ := m.Append(nil)
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{frame.Version})
	f.Add([]byte{2, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := frame.DecodeMgmt(b)
		if err != nil {
			return
		}
		re, err := m.Append(nil)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", m, err)
		}
		want := b
		if m.Code == frame.AllocReq {
			// The 4 reserved bytes of the QoS are ignored and sent
			// as zero: the one place where decoding forgets input.
			want = bytes.Clone(b)
			clear(want[reservedAt : reservedAt+4])
		}
		if !bytes.Equal(re, want) {
			t.Fatalf("re-encoded %x, input %x", re, b)
		}
	})
}
