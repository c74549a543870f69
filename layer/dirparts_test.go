package layer

import (
	"fmt"
	"testing"
)

// TestSplitDir: a directory of many entries, a few of them with many
// names, is packed into self-contained updates of at most max bytes,
// in order; an entry too large alone is an update of its own.
func TestSplitDir(t *testing.T) {
	var entries []DirEntry
	for i := range 400 {
		e := DirEntry{Origin: uint64(i + 1), IPCP: fmt.Sprintf("member-%d", i), Seq: uint64(i), Names: []string{fmt.Sprintf("service-%d", i)}}
		if i%97 == 0 {
			for j := range 300 {
				e.Names = append(e.Names, fmt.Sprintf("many-names-%d-%d", i, j))
			}
		}
		entries = append(entries, e)
	}
	const max = 1400
	updates, err := SplitDir(entries, max)
	if err != nil {
		t.Fatal(err)
	}
	var got []DirEntry
	big := 0
	for _, u := range updates {
		es, err := DecodeDir(u)
		if err != nil {
			t.Fatal(err)
		}
		if len(u) > max {
			if len(es) != 1 || len(es[0].Names) < 300 {
				t.Fatalf("an update of %d bytes with %d entries", len(u), len(es))
			}
			big++
		}
		got = append(got, es...)
	}
	if big != 5 {
		t.Fatalf("%d oversize updates, want the 5 entries with many names", big)
	}
	if len(got) != len(entries) {
		t.Fatalf("%d entries back, want %d", len(got), len(entries))
	}
	for i := range got {
		if got[i].Origin != entries[i].Origin || len(got[i].Names) != len(entries[i].Names) {
			t.Fatalf("entry %d: %+v", i, got[i])
		}
	}
	if n := len(updates); n < 20 || n > 40 {
		t.Fatalf("%d updates: packing is off", n)
	}
	if u, err := SplitDir(nil, max); err != nil || len(u) != 0 {
		t.Fatalf("no entries: %d updates, %v", len(u), err)
	}
}
