package layer

import (
	"fmt"
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
	if v, _ := d.Apply(DirEntry{Origin: 2, IPCP: "b", Seq: 5, Names: []string{"x", "y"}}, now); v != DirFresh {
		t.Fatal("new entry not applied")
	}
	if v, cur := d.Apply(DirEntry{Origin: 2, Seq: 4, Names: []string{"z"}}, now); v != DirStale || cur.Seq != 5 {
		t.Fatalf("stale entry: %v %+v, want DirStale with the copy at 5", v, cur)
	}
	if got := d.Lookup("x"); len(got) != 2 {
		t.Fatalf("lookup x = %v", got)
	}
	// A copy of our own entry with a higher seq bumps ours past it.
	d.Apply(DirEntry{Origin: 1, Seq: own.Seq + 10}, now)
	if d.Own().Seq <= own.Seq+10 {
		t.Fatal("own seq not bumped past a stale copy")
	}
	if n := d.Expire(now.Add(time.Second), 0, time.Minute, nil); n != 1 || len(d.Lookup("y")) != 0 {
		t.Fatalf("expire dropped %d", n)
	}
}

// TestDirectorySeqNeverWraps is the forged directory entry at the
// maximum sequence number: the member withdraws its entry and restarts
// at 1 instead of wrapping, and a neighbour ends with its names.
func TestDirectorySeqNeverWraps(t *testing.T) {
	now := time.Unix(100, 0)
	a, b := NewDirectory(1, "a"), NewDirectory(2, "b")
	own := a.SetOwn([]string{"x"}, now)
	b.Apply(own, now)
	forged := DirEntry{Origin: 1, IPCP: "a", Seq: MaxDirSeq}
	if v, _ := b.Apply(forged, now); v != DirFresh {
		t.Fatalf("b refused the forged entry: %v", v)
	}
	if len(b.Lookup("x")) != 0 {
		t.Fatal("the forged entry did not hide x at b")
	}
	v, w := a.Apply(forged, now)
	if v != DirOwnFlush || !w.Gone || w.Seq != MaxDirSeq {
		t.Fatalf("a answered the forged copy with %v %+v, want the withdrawal at MaxDirSeq", v, w)
	}
	if got, _ := a.Apply(forged, now); got != DirIgnored {
		t.Fatalf("a forged copy during the flush: %v", got)
	}
	if len(a.Lookup("x")) != 1 {
		t.Fatal("a lost its own name locally during the flush")
	}
	if v, _ := b.Apply(w, now); v != DirFresh {
		t.Fatalf("b: withdrawal %v", v)
	}
	if v, _ := b.Apply(forged, now); v != DirIgnored {
		t.Fatalf("b: a late forged copy after the withdrawal: %v", v)
	}
	r := a.Restart(now)
	if r.Seq != 1 || r.Gone || len(r.Names) != 1 {
		t.Fatalf("restart %+v", r)
	}
	if v, _ := b.Apply(r, now); v != DirFresh || len(b.Lookup("x")) != 1 {
		t.Fatalf("b: restart %v, lookup %v", v, b.Lookup("x"))
	}
	if v, _ := b.Apply(w, now); v != DirIgnored || len(b.Lookup("x")) != 1 {
		t.Fatalf("b: a late withdrawal removed the restarted entry: %v", v)
	}
	// Reaching the maximum through its own changes flushes too.
	a.Apply(DirEntry{Origin: 1, Seq: MaxDirSeq - 1}, now)
	if e := a.SetOwn([]string{"x", "y"}, now); !e.Gone || !a.Flushing() {
		t.Fatalf("SetOwn at MaxDirSeq gave %+v", e)
	}
	if ownNewer, flushes, _ := a.Counters(); ownNewer != 2 || flushes != 2 {
		t.Fatalf("counters %d %d", ownNewer, flushes)
	}
}

// TestDirectoryBounded: entries past the bounds are refused and
// counted, the names held are accounted through replacement, withdrawal
// and expiry.
func TestDirectoryBounded(t *testing.T) {
	now := time.Unix(100, 0)
	d := NewDirectory(1, "a")
	big := make([]string, MaxDirNamesPerEntry+1)
	for i := range big {
		big[i] = fmt.Sprint("n", i)
	}
	if v, _ := d.Apply(DirEntry{Origin: 2, Seq: 1, Names: big}, now); v != DirIgnored {
		t.Fatalf("an entry with %d names: %v", len(big), v)
	}
	// Fill the names budget with entries of MaxDirNamesPerEntry names.
	per := big[:MaxDirNamesPerEntry]
	o := uint64(10)
	for ; d.names+len(per) <= MaxDirNames; o++ {
		if v, _ := d.Apply(DirEntry{Origin: o, Seq: 1, Names: per}, now); v != DirFresh {
			t.Fatalf("origin %d: %v at %d names", o, v, d.names)
		}
	}
	if v, _ := d.Apply(DirEntry{Origin: o, Seq: 1, Names: per}, now); v != DirIgnored {
		t.Fatalf("past the names bound: %v", v)
	}
	// A replacement with fewer names, a withdrawal: both free names.
	d.Apply(DirEntry{Origin: 10, Seq: 2, Names: []string{"x"}}, now)
	d.Apply(DirEntry{Origin: 11, Seq: 1, Gone: true}, now)
	if want := MaxDirNames/MaxDirNamesPerEntry*MaxDirNamesPerEntry - 2*MaxDirNamesPerEntry + 1; d.names != want {
		t.Fatalf("names held %d, want %d", d.names, want)
	}
	if v, _ := d.Apply(DirEntry{Origin: o, Seq: 1, Names: per}, now); v != DirFresh {
		t.Fatalf("after names were freed: %v", v)
	}
	if _, _, refused := d.Counters(); refused != 2 {
		t.Fatalf("refused %d, want 2", refused)
	}
	d.Expire(now.Add(time.Second), 0, time.Minute, nil)
	if d.names != 0 || len(d.entries) != 1 {
		t.Fatalf("after expiry: %d names, %d entries", d.names, len(d.entries))
	}
}

// FuzzDirectoryApply offers arbitrary entries, sequence numbers near
// the maximum among them: the own entry never wraps to a lower number
// except through Restart, and Apply never panics.
func FuzzDirectoryApply(f *testing.F) {
	f.Add(uint64(1), uint64(MaxDirSeq), false, uint64(2), uint64(5), true)
	f.Add(uint64(2), uint64(MaxDirSeq-1), false, uint64(1), uint64(MaxDirSeq), false)
	f.Add(uint64(1), uint64(MaxDirSeq), true, uint64(2), uint64(MaxDirSeq), true)
	f.Fuzz(func(t *testing.T, o1, s1 uint64, g1 bool, o2, s2 uint64, g2 bool) {
		now := time.Unix(100, 0)
		d := NewDirectory(1, "a")
		d.SetOwn([]string{"x"}, now)
		for _, e := range []DirEntry{{Origin: o1, Seq: s1, Gone: g1}, {Origin: o2, Seq: s2, Gone: g2}} {
			before := d.Own().Seq
			d.Apply(e, now)
			d.SetOwn([]string{"x"}, now)
			if after := d.Own().Seq; after < before {
				t.Fatalf("own seq went from %d to %d", before, after)
			}
		}
		if d.Flushing() {
			if e := d.Restart(now); e.Seq != 1 {
				t.Fatalf("restart at %d", e.Seq)
			}
		}
		if len(d.Lookup("x")) != 1 {
			t.Fatal("own name lost")
		}
	})
}

func FuzzDecodeFA(f *testing.F) {
	b, _ := EncodeFA(&FAMsg{Type: FARequest, SrcAddr: 1, SrcEID: 2, Name: "x"})
	f.Add(b)
	d, _ := EncodeDir([]DirEntry{{Origin: 1, Names: []string{"a"}}})
	f.Add(d)
	// Sequence numbers and endpoint ids near the maximum.
	d, _ = EncodeDir([]DirEntry{{Origin: 1, Seq: MaxDirSeq, Gone: true}, {Origin: MaxDirSeq, Seq: MaxDirSeq - 1, Names: []string{"a"}}})
	f.Add(d)
	b, _ = EncodeFA(&FAMsg{Type: FADealloc, SrcAddr: MaxDirSeq, SrcEID: MaxDirSeq, DstEID: MaxDirSeq - 1})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		DecodeFA(b)
		entries, err := DecodeDir(b)
		if err != nil {
			return
		}
		// Whatever decodes, applied to a directory, never wraps its own
		// sequence number.
		now := time.Unix(100, 0)
		dir := NewDirectory(1, "a")
		for _, e := range entries {
			before := dir.Own().Seq
			dir.Apply(e, now)
			if after := dir.Own().Seq; after < before {
				t.Fatalf("own seq %d -> %d", before, after)
			}
		}
	})
}
