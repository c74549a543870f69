package ctrl

import (
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// TestRecvBufferFollowsMessages: a Conn holds no receive buffer until a
// message comes, then one the size of the messages seen (not of
// MaxMsgSize); a message larger than keepBuf arrives whole without
// being kept; one larger than MaxMsgSize is refused without a buffer
// its size and leaves the connection usable.
func TestRecvBufferFollowsMessages(t *testing.T) {
	a, b := pair(t)
	if b.rbuf != nil {
		t.Fatalf("a new Conn holds a %d-byte receive buffer", len(b.rbuf))
	}
	recv := func(wantOp string) {
		t.Helper()
		m, _, err := b.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if m.Op != wantOp {
			t.Fatalf("op %.20q (%d bytes), want %.20q (%d bytes)", m.Op, len(m.Op), wantOp, len(wantOp))
		}
	}
	if err := a.Send(&Msg{Kind: KindRequest, ID: 1, Op: "ping"}); err != nil {
		t.Fatal(err)
	}
	recv("ping")
	if len(b.rbuf) != minBuf {
		t.Fatalf("after a small message the receive buffer is %d bytes, want %d", len(b.rbuf), minBuf)
	}
	mid := strings.Repeat("m", 3000)
	a.Send(&Msg{Kind: KindRequest, ID: 2, Op: mid})
	recv(mid)
	if len(b.rbuf) != 4096 {
		t.Fatalf("after a 3000-byte message the receive buffer is %d bytes, want 4096", len(b.rbuf))
	}
	big := strings.Repeat("b", MaxMsgSize-200)
	if err := a.Send(&Msg{Kind: KindRequest, ID: 3, Op: big}); err != nil {
		t.Fatal(err)
	}
	recv(big)
	if len(b.rbuf) > keepBuf {
		t.Fatalf("after a %d-byte message the kept receive buffer is %d bytes, want at most %d", len(big), len(b.rbuf), keepBuf)
	}
	// Oversized: refused, counted as recoverable, nothing kept.
	if _, err := a.uc.Write(make([]byte, MaxMsgSize+100)); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, err := b.Recv()
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrTooBig) || !IsRecoverable(err) {
		t.Fatalf("oversized message: %v, want ErrTooBig", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > keepBuf {
		t.Fatalf("refusing an oversized message allocated %d bytes, want at most %d", n, keepBuf)
	}
	if len(b.rbuf) > keepBuf {
		t.Fatalf("after an oversized message the kept receive buffer is %d bytes", len(b.rbuf))
	}
	raw, _ := msgpack.Marshal(&Msg{V: Version, Kind: KindRequest, ID: 4, Op: "after"})
	a.uc.Write(raw)
	recv("after")
	// The peer closing ends it.
	a.Close()
	if _, _, err := b.Recv(); err == nil || IsRecoverable(err) {
		t.Fatalf("after the peer closed: %v, want a fatal error", err)
	}
}
