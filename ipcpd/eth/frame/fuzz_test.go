package frame_test

import (
	"bytes"
	"testing"

	"github.com/ouro-net/ouro/ipcpd/eth/frame"
	"github.com/ouro-net/ouro/ipcpd/shim/wire"
	"github.com/ouro-net/ouro/lib/namehash"
	"github.com/ouro-net/ouro/lib/qos"
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
	for _, m := range []wire.Msg{
		{Type: wire.Query, Hash: namehash.Of("oping")},
		{Type: wire.AllocReq, Src: 9, Hash: namehash.Of("oping"), MTU: 1496, QoS: qos.Raw()},
		{Type: wire.Dealloc, Src: 3, Dst: 9},
	} {
		b := m.Append(nil)
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
