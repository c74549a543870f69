package enroll

import (
	"errors"
	"testing"

	"github.com/ouro-net/ouro/layer"
)

func TestRoundTripAndVersion(t *testing.T) {
	cfg := layer.Defaults("net")
	b, _ := Encode(Response{V: Version, Config: cfg, InUse: []uint64{1, 2},
		Dir: []layer.DirEntry{{Origin: 1, IPCP: "a", Seq: 3, Names: []string{"x"}}}})
	var r Response
	if err := Decode(b, &r); err != nil || r.Config != cfg || len(r.Dir) != 1 || r.Dir[0].Names[0] != "x" {
		t.Fatalf("round trip: %+v %v", r, err)
	}
	b, _ = Encode(Hello{V: 7, Addr: 1})
	var h Hello
	if err := Decode(b, &h); !errors.Is(err, ErrVersion) {
		t.Fatalf("wrong version: %v", err)
	}
	if err := Decode([]byte{0xc1}, &h); err == nil {
		t.Fatal("garbage accepted")
	}
}

func FuzzDecode(f *testing.F) {
	for _, m := range []any{Request{V: 1, IPCP: "a", Layer: "n"}, Hello{V: 1, Addr: 9}, Response{V: 1, InUse: []uint64{3}}} {
		b, _ := Encode(m)
		f.Add(b)
	}
	f.Add([]byte{0x93, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Request
		var s Response
		var h Hello
		_ = Decode(b, &r)
		_ = Decode(b, &s)
		_ = Decode(b, &h)
	})
}
