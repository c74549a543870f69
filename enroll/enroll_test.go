package enroll

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

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

// lossyConn answers every enrollment request after the first `lose`
// copies, which it drops, as a lossy lower flow would.
type lossyConn struct {
	lose     int
	writes   int
	replies  chan []byte
	deadline time.Time
}

func (c *lossyConn) Write(b []byte) (int, error) {
	c.writes++
	if c.writes > c.lose {
		r, _ := Encode(Response{V: Version, Addr: 42})
		c.replies <- append([]byte{b[0]}, r...)
	}
	return len(b), nil
}

func (c *lossyConn) Read(b []byte) (int, error) {
	t := time.NewTimer(time.Until(c.deadline))
	defer t.Stop()
	select {
	case r := <-c.replies:
		return copy(b, r), nil
	case <-t.C:
		return 0, os.ErrDeadlineExceeded
	}
}

func (c *lossyConn) SetReadDeadline(d time.Time) error {
	if d.IsZero() {
		d = time.Now().Add(time.Hour)
	}
	c.deadline = d
	return nil
}

// TestExchangeRepeats loses the first two requests: Exchange must send
// a third and return its answer, and give up with an error when every
// copy is lost.
func TestExchangeRepeats(t *testing.T) {
	c := &lossyConn{lose: 2, replies: make(chan []byte, 8)}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var resp Response
	if err := Exchange(ctx, c, 4, Request{V: Version, IPCP: "b", Layer: "net"}, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Addr != 42 || c.writes != 3 {
		t.Fatalf("got addr %d after %d writes, want 42 after 3", resp.Addr, c.writes)
	}

	c = &lossyConn{lose: 1 << 30, replies: make(chan []byte, 8)}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel2()
	if err := Exchange(ctx2, c, 4, Request{V: Version}, &resp); err == nil {
		t.Fatal("no error when every copy was lost")
	}
	if c.writes < 2 {
		t.Fatalf("only %d copies sent in 700 ms", c.writes)
	}
}

// TestOldVersionRefused: a member of the layer protocol before the path
// label (version 1) is refused, at enrollment and at the hello, with an
// error that says why.
func TestOldVersionRefused(t *testing.T) {
	for _, m := range []any{Request{V: 1, IPCP: "old", Layer: "net"}, Hello{V: 1, Addr: 9}, Response{V: 1}} {
		b, _ := Encode(m)
		var err error
		switch m.(type) {
		case Request:
			err = Decode(b, &Request{})
		case Hello:
			err = Decode(b, &Hello{})
		case Response:
			err = Decode(b, &Response{})
		}
		if !errors.Is(err, ErrVersion) {
			t.Fatalf("%T version 1: %v, want ErrVersion", m, err)
		}
		if !strings.Contains(err.Error(), fmt.Sprintf("got 1, want %d", Version)) || !strings.Contains(err.Error(), "path label") {
			t.Fatalf("%T version 1: error %q does not say why", m, err)
		}
	}
	b, _ := Encode(Hello{V: 2, Addr: 9})
	if err := Decode(b, &Hello{}); !errors.Is(err, ErrVersion) || !strings.Contains(err.Error(), "keepalive") {
		t.Fatalf("version 2 hello: %v, want ErrVersion saying why", err)
	}
}
