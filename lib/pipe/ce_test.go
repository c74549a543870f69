package pipe

import (
	"testing"
)

// TestDataCEKinds: a batch written with per-record kinds arrives with
// those kinds, in order, in one ReadBatch and record by record; kinds
// shorter than the batch leave the rest Data; IsData accepts both data
// kinds and nothing else.
func TestDataCEKinds(t *testing.T) {
	a, b, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	bufs := [][]byte{[]byte("p0"), []byte("p1"), []byte("p2"), []byte("p3")}
	kinds := []Kind{Data, DataCE, DataCE}
	if n, err := a.WriteBatchKinds(bufs, kinds); err != nil || n != 4 {
		t.Fatalf("WriteBatchKinds = %d, %v", n, err)
	}
	if err := a.WriteKind(DataCE, []byte("p4")); err != nil {
		t.Fatal(err)
	}
	rb := make([][]byte, 8)
	for i := range rb {
		rb[i] = make([]byte, 16)
	}
	sizes, got := make([]int, 8), make([]Kind, 8)
	n, err := b.ReadBatch(rb, sizes, got)
	if err != nil {
		t.Fatal(err)
	}
	want := []Kind{Data, DataCE, DataCE, Data, DataCE}
	if n != len(want) {
		// The single record may come with a later read.
		if n != 4 {
			t.Fatalf("ReadBatch read %d records, want 5 (or 4)", n)
		}
		m, k, err := b.Read(rb[4])
		if err != nil || m != 2 {
			t.Fatalf("Read = %d, %v", m, err)
		}
		got[4], sizes[4] = k, m
	}
	for i, k := range want {
		if got[i] != k || string(rb[i][:sizes[i]]) != "p"+string(rune('0'+i)) {
			t.Fatalf("record %d: kind %v payload %q, want %v p%d", i, got[i], rb[i][:sizes[i]], k, i)
		}
	}
	for k := Kind(0); k < 8; k++ {
		if k.IsData() != (k == Data || k == DataCE) {
			t.Fatalf("%v.IsData() = %v", k, k.IsData())
		}
	}
}

// TestQueued: what one end wrote and the other has not read counts in
// Queued, and reading it empties the count; asking does not allocate.
func TestQueued(t *testing.T) {
	a, b, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	if q := a.Queued(); q != 0 {
		t.Fatalf("Queued on an idle pipe = %d", q)
	}
	pkt := make([]byte, 1400)
	for range 10 {
		if err := a.Write(pkt); err != nil {
			t.Fatal(err)
		}
	}
	if q := a.Queued(); q < 10*1400 {
		t.Fatalf("Queued = %d after 10 unread 1400-byte records", q)
	}
	buf := make([]byte, 2048)
	for range 10 {
		if _, _, err := b.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	if q := a.Queued(); q != 0 {
		t.Fatalf("Queued = %d once everything was read", q)
	}
	if allocs := testing.AllocsPerRun(100, func() { a.Queued() }); allocs != 0 {
		t.Fatalf("Queued allocates %v times", allocs)
	}
}
