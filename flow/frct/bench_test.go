package frct

import (
	"io"
	"testing"

	"github.com/ouro-net/ouro/lib/memlink"
)

// BenchmarkThroughput measures a reliable Conn over a lossless memlink
// with 1 KiB writes; go test reports MB/s.
func BenchmarkThroughput(b *testing.B) {
	la, lb := memlink.NewPair(memlink.Config{QueueLen: 4096})
	w, err := New(la, fastCfg())
	if err != nil {
		b.Fatal(err)
	}
	r, err := New(lb, fastCfg())
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan int64, 1)
	go func() {
		n, _ := io.Copy(io.Discard, r)
		done <- n
	}()
	msg := make([]byte, 1024)
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := w.Write(msg); err != nil {
			b.Fatal(err)
		}
	}
	w.Close()
	n := <-done
	b.StopTimer()
	r.Close()
	if n != int64(b.N*len(msg)) {
		b.Fatalf("read %d bytes, want %d", n, b.N*len(msg))
	}
	s := w.Stats()
	b.ReportMetric(float64(s.Retransmitted)/float64(b.N), "rtx/op")
	b.Logf("%+v", s)
}

// BenchmarkPingPong measures one 64-byte message at a time over a
// reliable Conn pair on a lossless memlink, echoed back: the lone
// message path, which packing must leave as it was.
func BenchmarkPingPong(b *testing.B) {
	la, lb := memlink.NewPair(memlink.Config{QueueLen: 64})
	c, err := New(la, fastCfg())
	if err != nil {
		b.Fatal(err)
	}
	s, err := New(lb, fastCfg())
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		buf := make([]byte, 256)
		for {
			n, err := s.Read(buf)
			if err != nil {
				return
			}
			if _, err := s.Write(buf[:n]); err != nil {
				return
			}
		}
	}()
	msg, buf := make([]byte, 64), make([]byte, 256)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Read(buf); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	c.Close()
	s.Close()
}
