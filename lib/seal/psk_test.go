package seal

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func newPSK(t testing.TB, secret byte, now func() time.Time) *PSK {
	t.Helper()
	p, err := NewPSK(bytes.Repeat([]byte{secret}, SecretLen), now)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPSKHandshake(t *testing.T) {
	cp, sp := newPSK(t, 7, nil), newPSK(t, 7, nil)
	c, err := NewClientPSK(cp, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Hello()) != HelloPSKLen || c.Hello()[0] != KindHelloPSK {
		t.Fatalf("hello: %d bytes kind %#x", len(c.Hello()), c.Hello()[0])
	}
	reply, srv, err := RespondPSK(c.Hello(), sp, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(reply) != ReplyPSKLen {
		t.Fatalf("reply: %d bytes", len(reply))
	}
	cli, err := c.Finish(reply)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := cli.Seal(nil, []byte("member"))
	if got, err := srv.Open(p); err != nil || string(got) != "member" {
		t.Fatalf("open: %q %v", got, err)
	}

	// With an identity too.
	_, id, _ := ed25519.GenerateKey(rand.Reader)
	c2, _ := NewClientPSK(cp, id.Public().(ed25519.PublicKey), 0)
	reply, _, err = RespondPSK(c2.Hello(), sp, id, 0)
	if err != nil || len(reply) != ReplyPSKIDLen {
		t.Fatalf("identity reply: %d bytes %v", len(reply), err)
	}
	if _, err := c2.Finish(reply); err != nil {
		t.Fatal(err)
	}
}

func TestPSKWrongSecretAndPlain(t *testing.T) {
	good, bad := newPSK(t, 1, nil), newPSK(t, 2, nil)
	// A client with the wrong secret: refused before any public-key work.
	c, _ := NewClientPSK(bad, nil, 0)
	if _, _, err := RespondPSK(c.Hello(), good, nil, 0); !errors.Is(err, ErrHandshakeAuth) {
		t.Fatalf("wrong secret: %v", err)
	}
	// A plain hello to a PSK server, a PSK hello to a plain server.
	pc, _ := NewClient(nil, 0)
	if _, _, err := RespondPSK(pc.Hello(), good, nil, 0); !errors.Is(err, ErrMalformed) {
		t.Fatalf("plain hello: %v", err)
	}
	gc, _ := NewClientPSK(good, nil, 0)
	if _, _, err := Respond(gc.Hello(), nil, 0); !errors.Is(err, ErrMalformed) {
		t.Fatalf("psk hello to plain server: %v", err)
	}
	// A server with the wrong secret cannot forge a reply the client takes.
	reply, _, err := RespondPSK(c.Hello(), bad, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gc.Finish(reply); !errors.Is(err, ErrHandshakeAuth) {
		t.Fatalf("reply for another hello: %v", err)
	}
	gc2, _ := NewClientPSK(good, nil, 0)
	reply, _, _ = RespondPSK(gc2.Hello(), good, nil, 0)
	for _, i := range []int{0, 1, 40, len(reply) - 1} {
		q := bytes.Clone(reply)
		q[i] ^= 1
		if _, err := gc2.Finish(q); err == nil {
			t.Fatalf("flipped reply byte %d accepted", i)
		}
	}
	if _, err := gc2.Finish(reply[:len(reply)-1]); !errors.Is(err, ErrMalformed) {
		t.Fatalf("truncated reply: %v", err)
	}
	if _, err := gc2.Finish(reply); err != nil {
		t.Fatalf("the real reply after the forgeries: %v", err)
	}
}

func TestPSKHelloTamperReplayTime(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	clk := func() time.Time { return now }
	cp, sp := newPSK(t, 3, clk), newPSK(t, 3, clk)
	c, _ := NewClientPSK(cp, nil, 0)
	h := c.Hello()
	for _, i := range []int{0, 1, 33, HelloLen, HelloPSKLen - 33, HelloPSKLen - 1} {
		q := bytes.Clone(h)
		q[i] ^= 0x80
		if _, _, err := RespondPSK(q, sp, nil, 0); err == nil {
			t.Fatalf("flipped hello byte %d accepted", i)
		}
	}
	for _, n := range []int{0, 1, HelloLen, HelloPSKLen - 1} {
		if _, _, err := RespondPSK(h[:n], sp, nil, 0); !errors.Is(err, ErrMalformed) {
			t.Fatalf("truncated to %d: %v", n, err)
		}
	}
	if _, _, err := RespondPSK(h, sp, nil, 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := RespondPSK(h, sp, nil, 0); !errors.Is(err, ErrHelloReplay) {
		t.Fatalf("replayed hello: %v", err)
	}
	// Out of the window either way.
	now = now.Add(HelloWindow + time.Second)
	old, _ := NewClientPSK(newPSK(t, 3, func() time.Time { return now.Add(-2*HelloWindow - time.Second) }), nil, 0)
	if _, _, err := RespondPSK(old.Hello(), sp, nil, 0); !errors.Is(err, ErrHelloReplay) {
		t.Fatalf("old hello: %v", err)
	}
	future, _ := NewClientPSK(newPSK(t, 3, func() time.Time { return now.Add(HelloWindow + time.Second) }), nil, 0)
	if _, _, err := RespondPSK(future.Hello(), sp, nil, 0); !errors.Is(err, ErrHelloReplay) {
		t.Fatalf("future hello: %v", err)
	}
	// The cache forgets hellos once they are out of the window.
	fresh, _ := NewClientPSK(cp, nil, 0)
	if _, _, err := RespondPSK(fresh.Hello(), sp, nil, 0); err != nil {
		t.Fatal(err)
	}
	if n := len(sp.seen); n != 1 {
		t.Fatalf("replay cache holds %d hellos, want 1 (the old one aged out)", n)
	}
}

func TestPSKReplayCacheBounded(t *testing.T) {
	sp := newPSK(t, 4, nil)
	c, _ := NewClientPSK(sp, nil, 0)
	for i := 0; i < replayCacheMax+10; i++ {
		h := bytes.Clone(c.Hello())
		h[5] = byte(i)
		h[6] = byte(i >> 8)
		body := h[:HelloPSKLen-macLen]
		m := sp.sum([]byte("hello"), body)
		copy(h[HelloPSKLen-macLen:], m[:])
		if err := sp.checkHello(h); err != nil {
			t.Fatal(i, err)
		}
	}
	if len(sp.seen) > replayCacheMax || len(sp.order) != len(sp.seen) {
		t.Fatalf("cache: %d entries, order %d", len(sp.seen), len(sp.order))
	}
}

func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "layer.key")
	if err := GenerateSecret(p); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o600 || st.Size() != SecretLen {
		t.Fatalf("mode %v size %d", st.Mode(), st.Size())
	}
	if err := GenerateSecret(p); err == nil {
		t.Fatal("overwrote a secret")
	}
	b, err := LoadSecret(p)
	if err != nil || len(b) != SecretLen {
		t.Fatal(err)
	}
	os.Chmod(p, 0o640)
	if _, err := LoadSecret(p); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("group-readable secret: %v", err)
	}
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("hunter2"), 0o600)
	_, err = LoadSecret(short)
	if err == nil || !strings.Contains(err.Error(), "7 bytes, want 32") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("short secret: %v", err)
	}
	if _, err := LoadPSK(filepath.Join(dir, "none"), nil); err == nil {
		t.Fatal("missing file loaded")
	}
	if _, err := NewPSK(make([]byte, 31), nil); err == nil {
		t.Fatal("31-byte secret taken")
	}
}

func FuzzPSKHello(f *testing.F) {
	sp := newPSK(f, 5, nil)
	c, _ := NewClientPSK(sp, nil, 0)
	f.Add(c.Hello())
	f.Add(c.Hello()[:100])
	f.Add([]byte{KindHelloPSK})
	f.Fuzz(func(t *testing.T, b []byte) {
		// Only a fresh authentic hello reaches the public-key work;
		// anything else must fail cheaply without a panic.
		r, s, err := RespondPSK(b, sp, nil, 0)
		if err == nil && (r == nil || s == nil) {
			t.Fatal("accepted without a reply")
		}
	})
}

func FuzzPSKReply(f *testing.F) {
	sp := newPSK(f, 6, nil)
	c, _ := NewClientPSK(sp, nil, 0)
	reply, _, _ := RespondPSK(c.Hello(), sp, nil, 0)
	f.Add(reply)
	f.Add(reply[:10])
	f.Fuzz(func(t *testing.T, b []byte) {
		if s, err := c.Finish(b); err == nil && s == nil {
			t.Fatal("no session")
		}
	})
}

func BenchmarkPSKRefuseStranger(b *testing.B) {
	sp := newPSK(b, 8, nil)
	c, _ := NewClientPSK(newPSK(b, 9, nil), nil, 0)
	h := c.Hello()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := RespondPSK(h, sp, nil, 0); !errors.Is(err, ErrHandshakeAuth) {
			b.Fatal(err)
		}
	}
}
