package frct

import (
	"bytes"
	"crypto/sha256"
	"io"
	"math"
	"math/rand"
	"slices"
	"testing"

	"github.com/ouro-net/ouro/lib/memlink"
)

const maxWrite = 1 << 20

// workload is a seeded sequence of messages with log-uniform sizes from
// 1 B to 1 MiB (both ends included), totalling at least total bytes.
type workload struct {
	msgs [][]byte
	sum  [32]byte
}

func newWorkload(seed int64, total int) workload {
	rng := rand.New(rand.NewSource(seed))
	sizes := []int{1, maxWrite}
	n := 1 + maxWrite
	for n < total {
		s := int(math.Exp(rng.Float64() * math.Log(maxWrite)))
		s = min(max(s, 1), maxWrite)
		sizes = append(sizes, s)
		n += s
	}
	rng.Shuffle(len(sizes), func(i, j int) { sizes[i], sizes[j] = sizes[j], sizes[i] })
	var w workload
	h := sha256.New()
	for _, s := range sizes {
		m := make([]byte, s)
		rng.Read(m)
		h.Write(m)
		w.msgs = append(w.msgs, m)
	}
	copy(w.sum[:], h.Sum(nil))
	return w
}

func (w workload) sizes() []int {
	s := make([]int, len(w.msgs))
	for i, m := range w.msgs {
		s[i] = len(m)
	}
	return s
}

// send writes every message; with half it only shuts the write side.
func (w workload) send(t *testing.T, c *Conn, half bool) {
	for _, m := range w.msgs {
		if n, err := c.Write(m); err != nil || n != len(m) {
			t.Errorf("Write(%d bytes) = %d, %v", len(m), n, err)
			return
		}
	}
	var err error
	if half {
		err = c.CloseWrite()
	} else {
		err = c.Close()
	}
	if err != nil {
		t.Errorf("close: %v", err)
	}
}

// readMessages reads until EOF with a buffer larger than any message and
// returns the message sizes and the SHA-256 of the stream.
func readMessages(t *testing.T, c *Conn) ([]int, [32]byte, [][32]byte) {
	var sizes []int
	var each [][32]byte
	h := sha256.New()
	buf := make([]byte, maxWrite+1)
	for {
		n, err := c.Read(buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Errorf("Read: %v", err)
			break
		}
		sizes = append(sizes, n)
		each = append(each, sha256.Sum256(buf[:n]))
		h.Write(buf[:n])
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sizes, sum, each
}

func lossy(seed int64) memlink.Config {
	return memlink.Config{Loss: 0.05, Dup: 0.05, Reorder: 0.05, Seed: seed}
}

func TestPropertyLossyMessages(t *testing.T) {
	leakCheck(t)
	w := newWorkload(1, 4<<20)
	a, b, la, _ := newPair(t, fastCfg(), lossy(11))
	go w.send(t, a, false)
	sizes, sum, _ := readMessages(t, b)
	if !slices.Equal(sizes, w.sizes()) {
		t.Fatalf("message boundaries differ: got %d messages, want %d", len(sizes), len(w.msgs))
	}
	if sum != w.sum {
		t.Fatal("SHA-256 of the stream differs")
	}
	st := a.Stats()
	t.Logf("sender %+v; link %+v", st, la.Stats())
	if st.Retransmitted == 0 || b.Stats().DupDropped == 0 {
		t.Fatalf("a 5%% lossy, duplicating link caused no retransmission or duplicate: %+v / %+v", st, b.Stats())
	}
}

func TestPropertyLossyCopySmallBuffer(t *testing.T) {
	leakCheck(t)
	w := newWorkload(2, 3<<20)
	a, b, _, _ := newPair(t, fastCfg(), lossy(22))
	go w.send(t, a, false)
	h := sha256.New()
	n, err := io.CopyBuffer(h, struct{ io.Reader }{b}, make([]byte, 777))
	if err != nil {
		t.Fatalf("io.Copy: %v", err)
	}
	total := 0
	for _, s := range w.sizes() {
		total += s
	}
	if n != int64(total) || !bytes.Equal(h.Sum(nil), w.sum[:]) {
		t.Fatalf("copied %d bytes, want %d; hash match %v", n, total, bytes.Equal(h.Sum(nil), w.sum[:]))
	}
}

func TestPropertyLossyBidirectional(t *testing.T) {
	leakCheck(t)
	wa, wb := newWorkload(3, 2<<20), newWorkload(4, 2<<20)
	a, b, _, _ := newPair(t, fastCfg(), lossy(33))
	type result struct {
		sizes []int
		sum   [32]byte
	}
	got := make(chan result, 1)
	go wa.send(t, a, true)
	go wb.send(t, b, true)
	go func() {
		s, sum, _ := readMessages(t, a)
		got <- result{s, sum}
	}()
	sb, sumb, _ := readMessages(t, b)
	ra := <-got
	if !slices.Equal(sb, wa.sizes()) || sumb != wa.sum {
		t.Fatal("a to b stream differs")
	}
	if !slices.Equal(ra.sizes, wb.sizes()) || ra.sum != wb.sum {
		t.Fatal("b to a stream differs")
	}
}

func TestPropertyLossyUnordered(t *testing.T) {
	leakCheck(t)
	w := newWorkload(5, 2<<20)
	cfg := fastCfg()
	cfg.InOrder = false
	a, b, _, _ := newPair(t, cfg, lossy(55))
	go w.send(t, a, false)
	_, _, each := readMessages(t, b)
	var want [][32]byte
	for _, m := range w.msgs {
		want = append(want, sha256.Sum256(m))
	}
	cmp := func(x, y [32]byte) int { return bytes.Compare(x[:], y[:]) }
	slices.SortFunc(each, cmp)
	slices.SortFunc(want, cmp)
	if !slices.Equal(each, want) {
		t.Fatalf("got %d messages, want the %d written, each exactly once", len(each), len(want))
	}
}
