package pipe

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"
	"time"
)

func TestPipeKindsAndEOF(t *testing.T) {
	a, b, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	msg := []byte("hello ouro")
	if err := a.Write(msg); err != nil {
		t.Fatal(err)
	}
	if err := a.WriteKind(Down, nil); err != nil {
		t.Fatal(err)
	}
	if err := a.Write(nil); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, k, err := b.Read(buf)
	if err != nil || k != Data || !bytes.Equal(buf[:n], msg) {
		t.Fatalf("read = %q %v %v", buf[:n], k, err)
	}
	if _, k, err = b.Read(buf); err != nil || k != Down {
		t.Fatalf("want down, got %v %v", k, err)
	}
	if n, k, err = b.Read(buf); err != nil || k != Data || n != 0 {
		t.Fatalf("want empty data, got %d %v %v", n, k, err)
	}
	if err := a.Write(make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	if n, _, err = b.Read(buf); !errors.Is(err, io.ErrShortBuffer) || n != 64 {
		t.Fatalf("short buffer: n=%d err=%v", n, err)
	}
	a.Dealloc()
	if _, k, err = b.Read(buf); err != nil || k != Dealloc {
		t.Fatalf("want dealloc, got %v %v", k, err)
	}
	if _, _, err = b.Read(buf); !errors.Is(err, ErrGone) {
		t.Fatalf("after close want ErrGone, got %v", err)
	}
	if err := b.Write(msg); !errors.Is(err, ErrGone) {
		t.Fatalf("write to closed peer: %v", err)
	}
	b.Close()
}

func TestPipeDeadline(t *testing.T) {
	a, b, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	b.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	if _, _, err := b.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("want deadline error, got %v", err)
	}
}

func BenchmarkPipeRoundTrip(b *testing.B) {
	x, y, err := Pair()
	if err != nil {
		b.Fatal(err)
	}
	defer x.Close()
	defer y.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, _, err := y.Read(buf)
			if err != nil {
				return
			}
			if y.Write(buf[:n]) != nil {
				return
			}
		}
	}()
	msg := make([]byte, 64)
	buf := make([]byte, 2048)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		x.Write(msg)
		x.Read(buf)
	}
}

func TestPending(t *testing.T) {
	a, b, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	if b.Pending() != 0 {
		t.Fatal("pending on an empty pipe")
	}
	a.Write([]byte("12345"))
	if b.Pending() == 0 {
		t.Fatal("no pending bytes after a write")
	}
}
