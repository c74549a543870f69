package enroll

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/ouro-net/ouro/layer"
)

var partLim = ReassemblyLimits{MaxBytes: 1 << 16, MaxPending: 4, MaxTotal: 1 << 17, Timeout: 10 * time.Second}

// TestSplitJoin: a message cut at several part sizes comes back whole
// whatever the order of its parts, with duplicates ignored, and leaves
// nothing pending.
func TestSplitJoin(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	now := time.Unix(1000, 0)
	for _, size := range []int{0, 1, 100, 1490, 1491, 50000} {
		for _, room := range []int{MinPartRoom, 200, 1500} {
			msg := make([]byte, size)
			for i := range msg {
				msg[i] = byte(rng.IntN(256))
			}
			parts, err := Split(7, msg, room)
			if err != nil {
				if size/(room-PartHeader) >= MaxParts {
					continue
				}
				t.Fatalf("split %d in %d: %v", size, room, err)
			}
			for _, p := range parts {
				if len(p) > room || !IsPart(p) {
					t.Fatalf("part of %d bytes (room %d), marker %v", len(p), room, IsPart(p))
				}
			}
			r := NewReassembler(partLim)
			order := rng.Perm(len(parts))
			var got []byte
			for i, j := range order {
				m, err := r.Add(3, parts[j], now)
				if err != nil {
					t.Fatalf("size %d room %d part %d: %v", size, room, j, err)
				}
				if i < len(order)-1 {
					if m != nil {
						t.Fatalf("whole after %d of %d parts", i+1, len(parts))
					}
					if dup, err := r.Add(3, parts[j], now); dup != nil || err != nil {
						t.Fatalf("duplicate part: %v %v", dup, err)
					}
				}
				got = m
			}
			if !bytes.Equal(got, msg) && !(size == 0 && len(got) == 0 && got != nil) {
				t.Fatalf("size %d room %d: reassembled %d bytes, differ", size, room, len(got))
			}
			if n, b := r.Pending(); n != 0 || b != 0 {
				t.Fatalf("%d messages, %d bytes left pending", n, b)
			}
		}
	}
	if _, err := Split(1, []byte("x"), MinPartRoom-1); err == nil {
		t.Fatal("a room below MinPartRoom accepted")
	}
	if _, err := Split(1, make([]byte, MaxParts*(MinPartRoom-PartHeader)+1), MinPartRoom); err == nil {
		t.Fatal("a message of more than MaxParts parts accepted")
	}
}

// part builds a part by hand (for abuse: any header).
func part(id uint32, idx, n uint16, data []byte) []byte {
	p := []byte{PartMarker, byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id), byte(idx >> 8), byte(idx), byte(n >> 8), byte(n)}
	return append(p, data...)
}

// TestReassemblyAbuse: what a peer sends cannot make the reassembler
// hold more than its bounds, and every refusal is an error, never a
// panic: malformed headers, too many parts, a message over MaxBytes,
// parts disagreeing on the count, messages never completed (dropped
// at the timeout, or evicted past MaxPending and MaxTotal).
func TestReassemblyAbuse(t *testing.T) {
	now := time.Unix(1000, 0)
	r := NewReassembler(partLim)
	chunk := make([]byte, 1000)
	for _, bad := range [][]byte{nil, {PartMarker}, {0x80, 0, 0, 0, 1, 0, 0, 0, 2, 1}, part(1, 0, 0, chunk), part(1, 2, 2, chunk), part(1, 0, 2, nil)} {
		if m, err := r.Add(1, bad, now); !errors.Is(err, ErrPart) || m != nil {
			t.Fatalf("malformed part %x: %v, %v", bad[:min(len(bad), 9)], m, err)
		}
	}
	if _, err := r.Add(1, part(1, 0, MaxParts+1, chunk), now); !errors.Is(err, ErrPartBounds) {
		t.Fatalf("too many parts: %v", err)
	}
	// Oversize: a message past MaxBytes is dropped at the part that
	// crosses it.
	big := make([]byte, 20000)
	var err error
	for i := 0; i < 10 && err == nil; i++ {
		_, err = r.Add(2, part(2, uint16(i), 10, big), now)
	}
	if !errors.Is(err, ErrPartBounds) || !strings.Contains(err.Error(), "65536") {
		t.Fatalf("oversize message: %v", err)
	}
	if n, b := r.Pending(); n != 0 || b != 0 {
		t.Fatalf("oversize message left %d messages, %d bytes", n, b)
	}
	// Single part over MaxBytes.
	if _, err := r.Add(2, part(9, 0, 1, make([]byte, partLim.MaxBytes+1)), now); !errors.Is(err, ErrPartBounds) {
		t.Fatalf("oversize single part: %v", err)
	}
	// Parts disagreeing on the count.
	r.Add(3, part(5, 0, 3, chunk), now)
	if _, err := r.Add(3, part(5, 1, 4, chunk), now); !errors.Is(err, ErrPart) {
		t.Fatalf("inconsistent count: %v", err)
	}
	if n, _ := r.Pending(); n != 0 {
		t.Fatalf("inconsistent message kept: %d pending", n)
	}
	// Never completed: many messages of which only a first part comes.
	for id := range uint32(100) {
		if _, err := r.Add(uint64(id%3), part(id, 0, 2, chunk), now); err != nil {
			t.Fatal(err)
		}
		if n, b := r.Pending(); n > partLim.MaxPending || b > partLim.MaxTotal {
			t.Fatalf("%d messages, %d bytes pending: over the bounds", n, b)
		}
	}
	if n, _ := r.Pending(); n != partLim.MaxPending {
		t.Fatalf("%d pending, want the last %d", n, partLim.MaxPending)
	}
	// The newest survive eviction: the last one completes.
	if m, err := r.Add(99%3, part(99, 1, 2, chunk), now); err != nil || len(m) != 2000 {
		t.Fatalf("newest message after evictions: %d bytes, %v", len(m), err)
	}
	// Timeout: the incomplete ones are dropped at the next part after it.
	r.Add(7, part(1, 0, 2, chunk), now.Add(partLim.Timeout+time.Second))
	if n, b := r.Pending(); n != 1 || b != len(chunk) {
		t.Fatalf("after the timeout %d messages, %d bytes pending, want only the new one", n, b)
	}
	// MaxTotal: big incomplete messages evict older ones to stay under it.
	r = NewReassembler(ReassemblyLimits{MaxBytes: 1 << 16, MaxPending: 100, MaxTotal: 50000, Timeout: time.Minute})
	for id := range uint32(20) {
		if _, err := r.Add(1, part(id, 0, 3, big), now); err != nil {
			t.Fatal(err)
		}
		if _, b := r.Pending(); b > 50000 {
			t.Fatalf("%d bytes pending, over MaxTotal", b)
		}
	}
	if r.Dropped == 0 {
		t.Fatal("no dropped message counted")
	}
}

func FuzzReassembler(f *testing.F) {
	parts, _ := Split(1, bytes.Repeat([]byte("abc"), 100), 64)
	for _, p := range parts {
		f.Add(p)
	}
	f.Add(part(2, 0, MaxParts, []byte{1}))
	f.Add([]byte{PartMarker})
	lim := ReassemblyLimits{MaxBytes: 4096, MaxPending: 3, MaxTotal: 8192, Timeout: time.Second}
	r := NewReassembler(lim)
	now := time.Unix(0, 0)
	f.Fuzz(func(t *testing.T, b []byte) {
		now = now.Add(10 * time.Millisecond)
		m, err := r.Add(uint64(len(b)%2), b, now)
		if err == nil && len(m) > lim.MaxBytes {
			t.Fatalf("%d bytes out, MaxBytes %d", len(m), lim.MaxBytes)
		}
		if n, held := r.Pending(); n > lim.MaxPending || held > lim.MaxTotal {
			t.Fatalf("%d messages, %d bytes pending: over the bounds", n, held)
		}
	})
}

// partsConn answers a request with a response in parts, losing the
// parts listed in lose the first time round; a repeated request gets
// every part again.
type partsConn struct {
	lossyConn
	frames [][]byte
	lose   map[int]bool
	rounds int
}

func (c *partsConn) Write(b []byte) (int, error) {
	c.rounds++
	for i, f := range c.frames {
		if c.rounds == 1 && c.lose[i] {
			continue
		}
		c.replies <- f
	}
	return len(b), nil
}

// TestExchangeParts: a response of many frames, some lost the first
// time, is reassembled after the request is repeated; a response whose
// parts never all come is an error that says so.
func TestExchangeParts(t *testing.T) {
	resp := Response{V: Version, Config: layer.Defaults("net"), Addr: 42}
	for i := range 300 {
		resp.InUse = append(resp.InUse, uint64(i+1))
		resp.Dir = append(resp.Dir, layer.DirEntry{Origin: uint64(i + 1), IPCP: "member", Seq: 1, Names: []string{"service-name"}})
	}
	frames, err := Frames(4, 9, resp, 1500)
	if err != nil || len(frames) < 10 {
		t.Fatalf("%d frames, %v", len(frames), err)
	}
	for _, f := range frames {
		if len(f) > 1500 {
			t.Fatalf("frame of %d bytes", len(f))
		}
	}
	c := &partsConn{lossyConn: lossyConn{replies: make(chan []byte, 4*len(frames))}, frames: frames, lose: map[int]bool{0: true, 5: true}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var got Response
	if err := Exchange(ctx, c, 4, Request{V: Version, IPCP: "b", Layer: "net"}, &got); err != nil {
		t.Fatal(err)
	}
	if got.Addr != 42 || len(got.Dir) != 300 || len(got.InUse) != 300 || c.rounds != 2 {
		t.Fatalf("got addr %d, %d entries, %d in use after %d requests", got.Addr, len(got.Dir), len(got.InUse), c.rounds)
	}

	c = &partsConn{lossyConn: lossyConn{replies: make(chan []byte, 64*len(frames))}, frames: frames[1:]}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel2()
	if err := Exchange(ctx2, c, 4, Request{V: Version}, &got); err == nil || !strings.Contains(err.Error(), "incomplete") {
		t.Fatalf("a response missing a part: %v, want an error saying it stayed incomplete", err)
	}
}

// TestVersion3Refused: a version-3 response (one whole frame) is
// refused with an error that says why.
func TestVersion3Refused(t *testing.T) {
	b, _ := Encode(Response{V: 3})
	if err := Decode(b, &Response{}); !errors.Is(err, ErrVersion) || !strings.Contains(err.Error(), "one frame") {
		t.Fatalf("version 3: %v", err)
	}
}

// TestReassemblyFairness: a source flooding incomplete messages (many,
// or big) evicts its own, not another source's message in progress;
// a part sent again after its message completed opens nothing.
func TestReassemblyFairness(t *testing.T) {
	now := time.Unix(1000, 0)
	chunk := make([]byte, 1000)
	r := NewReassembler(ReassemblyLimits{MaxBytes: 1 << 16, MaxPending: 8, MaxPerSource: 3, MaxTotal: 20000, Timeout: time.Minute})
	if _, err := r.Add(1, part(1, 0, 2, chunk), now); err != nil {
		t.Fatal(err)
	}
	for id := range uint32(200) {
		// Many messages from source 2, some big enough to press on
		// MaxTotal.
		data := chunk
		if id%10 == 0 {
			data = make([]byte, 15000)
		}
		if _, err := r.Add(2, part(id, 0, 2, data), now.Add(time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		if n := r.fromSource(2); n > 3 {
			t.Fatalf("source 2 holds %d incomplete messages, bound 3", n)
		}
	}
	if m, err := r.Add(1, part(1, 1, 2, chunk), now); err != nil || len(m) != 2000 {
		t.Fatalf("source 1's message after source 2's flood: %d bytes, %v", len(m), err)
	}
	if m, err := r.Add(1, part(1, 0, 2, chunk), now); m != nil || err != nil {
		t.Fatalf("a part of a delivered message: %v, %v", m, err)
	}
	if r.fromSource(1) != 0 {
		t.Fatal("a part of a delivered message opened a new one")
	}
}
