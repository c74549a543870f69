package seal

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func pair(t testing.TB, id ed25519.PrivateKey, pin ed25519.PublicKey, limit uint64) (*Session, *Session) {
	t.Helper()
	c, err := NewClient(pin, limit)
	if err != nil {
		t.Fatal(err)
	}
	reply, srv, err := Respond(c.Hello(), id, limit)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := c.Finish(reply)
	if err != nil {
		t.Fatal(err)
	}
	return cli, srv
}

func TestRoundTripBothWays(t *testing.T) {
	cli, srv := pair(t, nil, nil, 0)
	for i, m := range [][]byte{[]byte("hello"), {}, bytes.Repeat([]byte{9}, 1400)} {
		p, err := cli.Seal(nil, m)
		if err != nil {
			t.Fatal(err)
		}
		if len(m) >= 5 && bytes.Contains(p, m) {
			t.Fatalf("packet %d carries its plaintext", i)
		}
		got, err := srv.Open(p)
		if err != nil || !bytes.Equal(got, m) {
			t.Fatalf("c->s %d: %v", i, err)
		}
		p, _ = srv.Seal(nil, m)
		if got, err := cli.Open(p); err != nil || !bytes.Equal(got, m) {
			t.Fatalf("s->c %d: %v", i, err)
		}
	}
	// A direction's packet does not open as the other's.
	p, _ := cli.Seal(nil, []byte("x"))
	if _, err := cli.Open(p); !errors.Is(err, ErrAuth) {
		t.Fatalf("own packet opened: %v", err)
	}
}

func TestTamperReplayTruncateDropped(t *testing.T) {
	cli, srv := pair(t, nil, nil, 0)
	p, _ := cli.Seal(nil, []byte("TOP-SECRET"))
	for i := range p {
		q := bytes.Clone(p)
		q[i] ^= 0x40
		if _, err := srv.Open(q); err == nil {
			t.Fatalf("flipped byte %d opened", i)
		}
	}
	for _, n := range []int{0, 1, HeaderLen, Overhead - 1, len(p) - 1} {
		if _, err := srv.Open(bytes.Clone(p[:n])); err == nil {
			t.Fatalf("truncated to %d opened", n)
		}
	}
	if _, err := srv.Open(bytes.Clone(p)); err != nil {
		t.Fatalf("genuine packet after the forgeries: %v", err)
	}
	if _, err := srv.Open(bytes.Clone(p)); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay: %v", err)
	}
	st := srv.Stats()
	if st.Opened != 1 || st.Replayed != 1 || st.Auth+st.Short != uint64(len(p)+5) || st.Ahead == 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestReplayWindow(t *testing.T) {
	cli, srv := pair(t, nil, nil, 0)
	var pkts [][]byte
	for i := 0; i < 3*WindowSize; i++ {
		p, _ := cli.Seal(nil, []byte{byte(i)})
		pkts = append(pkts, p)
	}
	// Out of order within the window: all open once.
	for i := WindowSize - 1; i >= 0; i-- {
		if _, err := srv.Open(bytes.Clone(pkts[i])); err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
	}
	if _, err := srv.Open(bytes.Clone(pkts[2*WindowSize+5])); err != nil {
		t.Fatal(err)
	}
	// Now 0..WindowSize+5 are older than the window.
	if _, err := srv.Open(bytes.Clone(pkts[WindowSize])); !errors.Is(err, ErrReplay) {
		t.Fatalf("too old: %v", err)
	}
	// Within the window and never seen: opens, then is a replay.
	i := WindowSize + 200
	if _, err := srv.Open(bytes.Clone(pkts[i])); err != nil {
		t.Fatalf("late packet in window: %v", err)
	}
	if _, err := srv.Open(bytes.Clone(pkts[i])); !errors.Is(err, ErrReplay) {
		t.Fatalf("late packet twice: %v", err)
	}
	for j := 2*WindowSize + 5; j < 3*WindowSize; j++ {
		if j == 2*WindowSize+5 {
			continue
		}
		if _, err := srv.Open(bytes.Clone(pkts[j])); err != nil {
			t.Fatalf("packet %d: %v", j, err)
		}
	}
}

func TestRekeyWithSmallLimit(t *testing.T) {
	const limit = 8
	cli, srv := pair(t, nil, nil, limit)
	var late []byte
	for i := 0; i < 5*limit; i++ {
		m := []byte{byte(i), 'r'}
		p, err := cli.Seal(nil, m)
		if err != nil {
			t.Fatal(err)
		}
		if i == 2*limit-1 {
			late = p // the last packet of epoch 1 arrives after epoch 2 began
			continue
		}
		got, err := srv.Open(p)
		if err != nil || !bytes.Equal(got, m) {
			t.Fatalf("packet %d: %v", i, err)
		}
	}
	if got, err := srv.Open(late[:len(late):len(late)]); err == nil {
		t.Fatalf("a packet two epochs back opened: %q", got)
	}
	st := srv.Stats()
	if cs := cli.Stats(); cs.Rekeys != 4 || st.Rekeys != 4 {
		t.Fatalf("rekeys: sender %d receiver %d, want 4", cs.Rekeys, st.Rekeys)
	}
	// A packet just across a rollover, late by a little, still opens.
	cli2, srv2 := pair(t, nil, nil, limit)
	var ps [][]byte
	for i := 0; i < limit+2; i++ {
		p, _ := cli2.Seal(nil, []byte{byte(i)})
		ps = append(ps, p)
	}
	for _, i := range []int{limit, limit + 1, limit - 1} {
		if _, err := srv2.Open(ps[i]); err != nil {
			t.Fatalf("packet %d across the rollover: %v", i, err)
		}
	}
	// Keys really change: epoch 1 sealed with epoch 0's key fails.
	a := NewSession(make([]byte, 32), make([]byte, 32), limit)
	b := NewSession(make([]byte, 32), make([]byte, 32), limit)
	for i := 0; i < limit; i++ {
		a.Seal(nil, nil)
	}
	p, _ := a.Seal(nil, []byte("e1"))
	if _, err := b.Open(p); err != nil {
		t.Fatalf("epoch 1 packet: %v", err)
	}
	old := NewSession(make([]byte, 32), make([]byte, 32), 1<<40)
	for i := 0; i < limit; i++ {
		old.Seal(nil, nil)
	}
	q, _ := old.Seal(nil, []byte("e1"))
	if bytes.Equal(p, q) {
		t.Fatal("rekeyed packet equals the one sealed with the first key")
	}
}

func TestSealOpenAllocateNothing(t *testing.T) {
	cli, srv := pair(t, nil, nil, 0)
	msg := make([]byte, 1000)
	buf := make([]byte, 0, len(msg)+Overhead)
	var err error
	allocs := testing.AllocsPerRun(1000, func() {
		var p []byte
		p, err = cli.Seal(buf[:0], msg)
		if err == nil {
			_, err = srv.Open(p)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if allocs != 0 {
		t.Fatalf("%v allocations per sealed and opened packet", allocs)
	}
}

func TestPinnedIdentity(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	pair(t, priv, pub, 0) // the right key
	pair(t, priv, nil, 0) // unpinned client takes any
	for name, tc := range map[string]struct {
		id  ed25519.PrivateKey
		pin ed25519.PublicKey
	}{"other key": {priv, other}, "no key": {nil, pub}} {
		c, _ := NewClient(tc.pin, 0)
		reply, _, err := Respond(c.Hello(), tc.id, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Finish(reply); !errors.Is(err, ErrIdentity) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	// A signature that does not match the transcript.
	c, _ := NewClient(pub, 0)
	reply, _, _ := Respond(c.Hello(), priv, 0)
	reply[len(reply)-1] ^= 1
	if _, err := c.Finish(reply); !errors.Is(err, ErrIdentity) {
		t.Fatalf("bad signature: %v", err)
	}
}

func TestHandshakeGarbage(t *testing.T) {
	c, _ := NewClient(nil, 0)
	h := c.Hello()
	for _, bad := range [][]byte{nil, {KindHello}, h[:len(h)-1], append(bytes.Clone(h), 0), append([]byte{KindReply}, h[1:]...)} {
		if _, _, err := Respond(bad, nil, 0); !errors.Is(err, ErrMalformed) {
			t.Fatalf("hello of %d bytes: %v", len(bad), err)
		}
	}
	reply, srv, _ := Respond(h, nil, 0)
	for _, bad := range [][]byte{nil, reply[:len(reply)-1], append(bytes.Clone(reply), 0), h} {
		if _, err := c.Finish(bad); !errors.Is(err, ErrMalformed) {
			t.Fatalf("reply of %d bytes: %v", len(bad), err)
		}
	}
	// A tampered reply gives other keys: nothing opens.
	t2 := bytes.Clone(reply)
	t2[40] ^= 1
	cli, err := c.Finish(t2)
	if err == nil {
		p, _ := srv.Seal(nil, []byte("x"))
		if _, err := cli.Open(p); err == nil {
			t.Fatal("tampered reply still agreed on keys")
		}
	}
	// A replayed hello gets a fresh server key: the old client's keys
	// differ from the new session's.
	reply2, srv2, _ := Respond(h, nil, 0)
	if bytes.Equal(reply, reply2) {
		t.Fatal("two replies to one hello are equal")
	}
	cli1, _ := c.Finish(reply)
	p, _ := srv2.Seal(nil, []byte("x"))
	if _, err := cli1.Open(p); err == nil {
		t.Fatal("a replayed hello's session opened for the first client")
	}
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	priv, pub := filepath.Join(dir, "id"), filepath.Join(dir, "id.pub")
	if err := GenerateIdentity(priv, pub); err != nil {
		t.Fatal(err)
	}
	if err := GenerateIdentity(priv, pub); err == nil {
		t.Fatal("overwrote an identity")
	}
	sk, err := LoadIdentity(priv)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := LoadPublic(pub)
	if err != nil || !bytes.Equal(pk, sk.Public().(ed25519.PublicKey)) {
		t.Fatalf("public key: %v", err)
	}
	os.Chmod(priv, 0o640)
	if _, err := LoadIdentity(priv); err == nil {
		t.Fatal("group-readable identity accepted")
	}
	os.WriteFile(filepath.Join(dir, "short"), make([]byte, 31), 0o600)
	if _, err := LoadIdentity(filepath.Join(dir, "short")); err == nil {
		t.Fatal("short identity accepted")
	}
	if _, err := LoadPublic(filepath.Join(dir, "short")); err == nil {
		t.Fatal("short public key accepted")
	}
}

func FuzzOpen(f *testing.F) {
	cli, _ := pair(f, nil, nil, 4)
	for i := 0; i < 6; i++ {
		p, _ := cli.Seal(nil, []byte("seed packet"))
		f.Add(p)
	}
	f.Add([]byte{KindData})
	f.Fuzz(func(t *testing.T, p []byte) {
		_, srv := pair(t, nil, nil, 4)
		if _, err := srv.Open(p); err == nil {
			t.Fatal("a packet under a fresh key opened")
		}
	})
}

func FuzzHandshake(f *testing.F) {
	c, _ := NewClient(nil, 0)
	reply, _, _ := Respond(c.Hello(), nil, 0)
	_, id, _ := ed25519.GenerateKey(rand.Reader)
	replyID, _, _ := Respond(c.Hello(), id, 0)
	f.Add(c.Hello())
	f.Add(reply)
	f.Add(replyID)
	f.Add([]byte{KindReply})
	pin, _, _ := ed25519.GenerateKey(rand.Reader)
	pc, _ := NewClient(pin, 0)
	f.Fuzz(func(t *testing.T, b []byte) {
		Respond(b, nil, 0)
		c.Finish(b)
		if _, err := pc.Finish(b); err == nil {
			t.Fatal("a fuzzed reply passed a pin nobody holds")
		}
	})
}

func BenchmarkSealOpen1400(b *testing.B) {
	cli, srv := pair(b, nil, nil, 0)
	msg := make([]byte, 1400)
	buf := make([]byte, 0, len(msg)+Overhead)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		p, _ := cli.Seal(buf[:0], msg)
		if _, err := srv.Open(p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSealOpenSizes is BenchmarkSealOpen1400 at a ping's sizes:
// what a round trip pays twice (a seal and an open at each end).
func BenchmarkSealOpenSizes(b *testing.B) {
	for _, n := range []int{64, 1000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			cli, srv := pair(b, nil, nil, 0)
			msg := make([]byte, n)
			buf := make([]byte, 0, len(msg)+Overhead)
			dst := make([]byte, n)
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				p, _ := cli.Seal(buf[:0], msg)
				if _, err := srv.OpenTo(dst, p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkHandshake(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		pair(b, nil, nil, 0)
	}
}

// TestOpenToNoAlloc: OpenTo decrypts into the caller's buffer, leaves
// the sealed packet as it was, refuses a short buffer without opening
// or counting the packet (Open takes it afterwards), and allocates
// nothing.
func TestOpenToNoAlloc(t *testing.T) {
	cli, srv := pair(t, nil, nil, 0)
	msg := bytes.Repeat([]byte{7}, 1000)
	p, _ := cli.Seal(nil, msg)
	orig := bytes.Clone(p)
	dst := make([]byte, len(msg))
	got, err := srv.OpenTo(dst, p)
	if err != nil || !bytes.Equal(got, msg) || &got[0] != &dst[0] || !bytes.Equal(p, orig) {
		t.Fatalf("OpenTo: %v; plaintext right %v, in dst %v, packet kept %v", err, bytes.Equal(got, msg),
			err == nil && &got[0] == &dst[0], bytes.Equal(p, orig))
	}
	if _, err := srv.OpenTo(dst, p); !errors.Is(err, ErrReplay) {
		t.Fatalf("replayed into dst: %v", err)
	}
	p2, _ := cli.Seal(nil, msg)
	if _, err := srv.OpenTo(dst[:len(msg)-1], p2); !errors.Is(err, io.ErrShortBuffer) {
		t.Fatalf("short dst: %v", err)
	}
	if got, err := srv.Open(p2); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("Open after a short OpenTo: %v", err)
	}
	p3, _ := cli.Seal(nil, msg)
	p3[HeaderLen] ^= 1
	if _, err := srv.OpenTo(dst, p3); !errors.Is(err, ErrAuth) {
		t.Fatalf("forged into dst: %v", err)
	}
	if st := srv.Stats(); st.Opened != 2 || st.Replayed != 1 || st.Auth != 1 || st.Short != 0 {
		t.Fatalf("stats %+v", st)
	}
	buf := make([]byte, 0, len(msg)+Overhead)
	allocs := testing.AllocsPerRun(1000, func() {
		var q []byte
		q, err = cli.Seal(buf[:0], msg)
		if err == nil {
			_, err = srv.OpenTo(dst, q)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if allocs != 0 {
		t.Fatalf("%v allocations per packet sealed and opened into dst", allocs)
	}
}
