package pipe

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"testing"
)

// TestBatchRoundTrip writes records one by one and in batches and reads
// them in batches: order, kinds, sizes and truncation survive, and EOF
// ends the last batch.
func TestBatchRoundTrip(t *testing.T) {
	a, b, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var out [][]byte
	for i := range 100 {
		out = append(out, []byte(fmt.Sprintf("packet %03d", i)))
	}
	if n, err := a.WriteBatch(out); err != nil || n != len(out) {
		t.Fatalf("WriteBatch = %d, %v", n, err)
	}
	a.WriteKind(Down, nil)
	a.Write(make([]byte, 100)) // longer than the read buffers
	a.Close()

	bufs := make([][]byte, 16)
	for i := range bufs {
		bufs[i] = make([]byte, 32)
	}
	sizes, kinds := make([]int, 16), make([]Kind, 16)
	var got [][]byte
	var gotKinds []Kind
	truncated := 0
	for {
		n, err := b.ReadBatch(bufs, sizes, kinds)
		if errors.Is(err, ErrGone) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Fatal("ReadBatch returned no records and no error")
		}
		for i := 0; i < n; i++ {
			if sizes[i] < 0 {
				truncated++
				continue
			}
			gotKinds = append(gotKinds, kinds[i])
			if kinds[i] == Data {
				got = append(got, bytes.Clone(bufs[i][:sizes[i]]))
			}
		}
	}
	if len(got) != len(out) {
		t.Fatalf("read %d data records, want %d", len(got), len(out))
	}
	for i := range out {
		if !bytes.Equal(got[i], out[i]) {
			t.Fatalf("record %d = %q, want %q", i, got[i], out[i])
		}
	}
	if gotKinds[len(gotKinds)-1] != Down || truncated != 1 {
		t.Fatalf("last kind %v, %d truncated; want Down and 1", gotKinds[len(gotKinds)-1], truncated)
	}
}

func BenchmarkPipeBatch(b *testing.B) {
	w, r, err := Pair()
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	defer r.Close()
	const size = 1400
	out := make([][]byte, 32)
	bufs := make([][]byte, 32)
	for i := range out {
		out[i] = make([]byte, size)
		bufs[i] = make([]byte, 2048)
	}
	sizes, kinds := make([]int, 32), make([]Kind, 32)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for got := 0; got < b.N; {
			n, err := r.ReadBatch(bufs, sizes, kinds)
			if err != nil {
				return
			}
			got += n
		}
	}()
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for sent := 0; sent < b.N; {
		n, err := w.WriteBatch(out[:min(32, b.N-sent)])
		if err != nil {
			b.Fatal(err)
		}
		sent += n
	}
	<-done
}

func BenchmarkPipeStream(b *testing.B) {
	w, r, err := Pair()
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	defer r.Close()
	const size = 1400
	out, buf := make([]byte, size), make([]byte, 2048)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for got := 0; got < b.N; got++ {
			if _, _, err := r.Read(buf); err != nil {
				return
			}
		}
	}()
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := w.Write(out); err != nil {
			b.Fatal(err)
		}
	}
	<-done
}

// TestDirectRecordCarriesFile passes a descriptor with a Direct record,
// by Read and by ReadBatch: the reader takes it once; a descriptor on
// any other kind is closed, not kept.
func TestDirectRecordCarriesFile(t *testing.T) {
	a, b, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	for _, batched := range []bool{false, true} {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := a.WriteFile(Up, w); err != nil { // not Direct: dropped
			t.Fatal(err)
		}
		if err := a.WriteFile(Direct, w); err != nil {
			t.Fatal(err)
		}
		w.Close()
		var kinds []Kind
		if batched {
			bufs, sizes, ks := [][]byte{make([]byte, 8), make([]byte, 8)}, make([]int, 2), make([]Kind, 2)
			for len(kinds) < 2 {
				n, err := b.ReadBatch(bufs, sizes, ks)
				if err != nil {
					t.Fatal(err)
				}
				kinds = append(kinds, ks[:n]...)
			}
		} else {
			for range 2 {
				_, k, err := b.Read(make([]byte, 8))
				if err != nil {
					t.Fatal(err)
				}
				kinds = append(kinds, k)
			}
		}
		if kinds[0] != Up || kinds[1] != Direct {
			t.Fatalf("kinds %v", kinds)
		}
		f := b.TakeFile()
		if f == nil {
			t.Fatal("no file with the Direct record")
		}
		if b.TakeFile() != nil {
			t.Fatal("TakeFile gave the file twice")
		}
		f.Write([]byte("x"))
		f.Close()
		got := make([]byte, 1)
		if n, _ := r.Read(got); n != 1 || got[0] != 'x' {
			t.Fatal("the passed descriptor does not reach the pipe")
		}
		r.Close()
	}
}
