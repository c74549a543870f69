package frct

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"

	"github.com/ouro-net/ouro/lib/memlink"
)

var _ net.Conn = (*Conn)(nil)

func TestRoundTripAndEOF(t *testing.T) {
	leakCheck(t)
	a, b, _, _ := newPair(t, fastCfg(), memlink.Config{})
	msgs := [][]byte{[]byte("hello"), bytes.Repeat([]byte("x"), 5000), []byte("!")}
	go func() {
		for _, m := range msgs {
			if _, err := a.Write(m); err != nil {
				t.Errorf("Write: %v", err)
			}
		}
		a.Close()
	}()
	buf := make([]byte, 1<<16)
	for _, want := range msgs {
		n, err := b.Read(buf)
		if err != nil || !bytes.Equal(buf[:n], want) {
			t.Fatalf("Read = %d, %v; want %d bytes", n, err, len(want))
		}
	}
	if n, err := b.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("after FIN: %d, %v", n, err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := b.Read(buf); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
	if _, err := b.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
}
