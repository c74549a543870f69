package layer

import (
	"testing"
	"time"
)

func TestParamsValidate(t *testing.T) {
	if _, _, err := FromParams("net", map[string]string{"addr": "9"}); err == nil {
		t.Error("addr 9 accepted")
	}
	if _, _, err := FromParams("net", map[string]string{"routing": "rip"}); err == nil {
		t.Error("routing rip accepted")
	}
	if _, _, err := FromParams("net", map[string]string{"colour": "red"}); err == nil {
		t.Error("unknown parameter accepted")
	}
	if _, _, err := FromParams("net", map[string]string{"addr": "1", "address": "300"}); err == nil {
		t.Error("address too wide accepted")
	}
	c, a, err := FromParams("net", map[string]string{"addr": "2", "hello": "20", "address": "0x10"})
	if err != nil || c.AddrSize != 2 || c.HelloInterval != 20*time.Millisecond || a != 16 {
		t.Fatalf("%+v %d %v", c, a, err)
	}
}

func TestAddressesStableAndDistinct(t *testing.T) {
	c := Defaults("net")
	a1 := c.DeriveAddress("a", 0)
	if a1 != c.DeriveAddress("a", 0) || a1 == 0 {
		t.Fatal("derivation not stable")
	}
	if a1 == c.DeriveAddress("b", 0) || a1 == c.DeriveAddress("a", 1) {
		t.Fatal("derivation collides trivially")
	}
	got, salt, err := c.PickAddress("a", map[uint64]bool{a1: true})
	if err != nil || got == a1 || salt != 1 {
		t.Fatalf("collision not re-salted: %d %d %v", got, salt, err)
	}
	one := Defaults("net")
	one.AddrSize = 1
	seen := map[uint64]bool{}
	for i := 0; i < 255; i++ {
		a, _, err := one.PickAddress("x", seen)
		if err != nil || a == 0 || a > 255 {
			t.Fatalf("pick %d: %d %v", i, a, err)
		}
		seen[a] = true
	}
}

func TestDirectory(t *testing.T) {
	now := time.Unix(100, 0)
	d := NewDirectory(1, "a")
	own := d.SetOwn([]string{"x"}, now)
	if !d.Apply(DirEntry{Origin: 2, IPCP: "b", Seq: 5, Names: []string{"x", "y"}}, now) {
		t.Fatal("new entry not applied")
	}
	if d.Apply(DirEntry{Origin: 2, Seq: 4, Names: []string{"z"}}, now) {
		t.Fatal("stale entry applied")
	}
	if got := d.Lookup("x"); len(got) != 2 {
		t.Fatalf("lookup x = %v", got)
	}
	// A copy of our own entry with a higher seq bumps ours past it.
	d.Apply(DirEntry{Origin: 1, Seq: own.Seq + 10}, now)
	if d.Own().Seq <= own.Seq+10 {
		t.Fatal("own seq not bumped past a stale copy")
	}
	if n := d.Expire(now.Add(time.Second), nil); n != 1 || len(d.Lookup("y")) != 0 {
		t.Fatalf("expire dropped %d", n)
	}
}

func FuzzDecodeFA(f *testing.F) {
	b, _ := EncodeFA(&FAMsg{Type: FARequest, SrcAddr: 1, SrcEID: 2, Name: "x"})
	f.Add(b)
	d, _ := EncodeDir([]DirEntry{{Origin: 1, Names: []string{"a"}}})
	f.Add(d)
	f.Fuzz(func(t *testing.T, b []byte) {
		DecodeFA(b)
		DecodeDir(b)
	})
}
