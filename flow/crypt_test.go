package flow_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/internal/testenv"
	"github.com/ouro-net/ouro/lib/qos"
	"github.com/ouro-net/ouro/lib/seal"
)

func encrypted(q qos.Spec) qos.Spec { q.Encrypt = true; return q }

// pairOpts is pairWith with options for the listener and the allocator.
func pairOpts(t *testing.T, src, dst *testenv.Host, name string, q qos.Spec, lopts, aopts []flow.Option) (*flow.Flow, *flow.Flow, error) {
	t.Helper()
	l, err := flow.Listen(name, append([]flow.Option{dst.Opt()}, lopts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := flow.Alloc(ctx, name, q, append([]flow.Option{src.Opt()}, aopts...)...)
	if err != nil {
		return nil, nil, err
	}
	b, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b, nil
}

func localHost(t *testing.T, names ...string) *testenv.Host {
	h := testenv.StartHost(t)
	h.Bootstrap(t, "local", "lo", "lo", nil)
	for _, n := range names {
		h.Register(t, n, "lo")
	}
	return h
}

// TestEncryptedRawFlow: an encrypted raw flow carries packets both ways
// sealed, keeps boundaries, gives up seal.Overhead of its MTU, counts
// what it sealed and opened, and rolls keys over (small limit) without
// losing a packet.
func TestEncryptedRawFlow(t *testing.T) {
	h := localHost(t, "sec")
	a, b, err := pairOpts(t, h, h, "sec", encrypted(qos.Raw()),
		[]flow.Option{flow.WithRekeyAfter(16)}, []flow.Option{flow.WithRekeyAfter(16)})
	if err != nil {
		t.Fatal(err)
	}
	if a.Crypto() == nil || b.Crypto() == nil {
		t.Fatal("encrypted flow has no sealing state")
	}
	plain, _ := pairWith(t, "plain", qos.Raw())
	if a.MTU() != plain.MTU()-seal.Overhead {
		t.Fatalf("MTU %d, plain %d", a.MTU(), plain.MTU())
	}
	buf := make([]byte, 65536)
	a.SetDeadline(time.Now().Add(10 * time.Second))
	b.SetDeadline(time.Now().Add(10 * time.Second))
	for i := 0; i < 100; i++ {
		m := []byte(fmt.Sprintf("message %d", i))
		if i == 50 {
			m = bytes.Repeat([]byte{byte(i)}, a.MTU())
		}
		if _, err := a.Write(m); err != nil {
			t.Fatal(err)
		}
		n, err := b.Read(buf)
		if err != nil || !bytes.Equal(buf[:n], m) {
			t.Fatalf("packet %d: %q, %v", i, buf[:n], err)
		}
		if _, err := b.Write(m); err != nil {
			t.Fatal(err)
		}
		if n, err := a.Read(buf); err != nil || !bytes.Equal(buf[:n], m) {
			t.Fatalf("answer %d: %v", i, err)
		}
	}
	if _, err := a.Write(make([]byte, a.MTU()+1)); !errors.Is(err, flow.ErrTooBig) {
		t.Fatalf("oversized write: %v", err)
	}
	st := b.Crypto()
	if st.Opened != 100 || st.Sealed != 100 || st.Dropped() != 0 || st.Rekeys < 10 {
		t.Fatalf("server stats: %v", st)
	}
	a.Close()
	if _, err := b.Read(buf); err != io.EOF {
		t.Fatalf("after close: %v", err)
	}
}

// TestEncryptedReliableFlow: FRCT runs over sealed packets: a large
// message and a stream arrive intact.
func TestEncryptedReliableFlow(t *testing.T) {
	h := localHost(t, "srel")
	a, b, err := pairOpts(t, h, h, "srel", encrypted(qos.Reliable()), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.Reliability() == nil || a.Crypto() == nil {
		t.Fatal("reliable encrypted flow lacks FRCT or sealing")
	}
	big := make([]byte, 1<<20)
	rand.Read(big)
	go a.Write(big)
	got := make([]byte, len(big))
	if _, err := io.ReadFull(b, got); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("1 MiB: %v", err)
	}
	if st := b.Crypto(); st.Opened == 0 || st.Dropped() != 0 {
		t.Fatalf("stats %v", st)
	}
}

// TestPinnedServer: a pinned key that the server holds allocates; any
// other key, or a server without one, fails the allocation with
// seal.ErrIdentity and hands the listener no flow.
func TestPinnedServer(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	h := localHost(t, "id", "noid")
	if _, _, err := pairOpts(t, h, h, "id", encrypted(qos.Raw()),
		[]flow.Option{flow.WithIdentity(priv)}, []flow.Option{flow.WithPin(pub)}); err != nil {
		t.Fatalf("right pin: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := flow.Alloc(ctx, "id", encrypted(qos.Raw()), h.Opt(), flow.WithPin(other))
	if !errors.Is(err, seal.ErrIdentity) {
		t.Fatalf("wrong pin: %v", err)
	}
	t.Logf("wrong pin: %v", err)
	l, err := flow.Listen("noid", h.Opt())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := flow.Alloc(ctx, "noid", encrypted(qos.Raw()), h.Opt(), flow.WithPin(pub)); !errors.Is(err, seal.ErrIdentity) {
		t.Fatalf("pin against a server without identity: %v", err)
	}
}

// TestEncryptedBatch: WriteBatch and ReadBatch on an encrypted raw flow
// move every packet whole and in order; a packet longer than its
// buffer comes back truncated with size -1.
func TestEncryptedBatch(t *testing.T) {
	h := localHost(t, "sbat")
	a, b, err := pairOpts(t, h, h, "sbat", encrypted(qos.Raw()), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for i := range 200 {
		out = append(out, []byte(fmt.Sprintf("packet %d", i)))
	}
	out = append(out, bytes.Repeat([]byte{'L'}, 100))
	if n, err := a.WriteBatch(out); err != nil || n != len(out) {
		t.Fatalf("WriteBatch = %d, %v", n, err)
	}
	bufs := make([][]byte, 16)
	for i := range bufs {
		bufs[i] = make([]byte, 64)
	}
	sizes := make([]int, 16)
	got := 0
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	for got < len(out) {
		n, err := b.ReadBatch(bufs, sizes)
		if err != nil {
			t.Fatalf("after %d packets: %v", got, err)
		}
		for i := 0; i < n; i++ {
			if got == len(out)-1 {
				if sizes[i] != -1 || !bytes.Equal(bufs[i], out[got][:64]) {
					t.Fatalf("long packet: size %d", sizes[i])
				}
			} else if sizes[i] < 0 || !bytes.Equal(bufs[i][:sizes[i]], out[got]) {
				t.Fatalf("packet %d: %q", got, bufs[i][:max(sizes[i], 0)])
			}
			got++
		}
	}
	if st := b.Crypto(); st.Opened != uint64(len(out)) || st.Dropped() != 0 {
		t.Fatalf("stats %v", st)
	}
	// A packet above the MTU in a batch: those before it are sent, the
	// call says which one, nothing after it goes.
	if mtu := a.MTU(); mtu > 0 {
		big := [][]byte{[]byte("before"), make([]byte, mtu+1), []byte("after")}
		if n, err := a.WriteBatch(big); n != 1 || !errors.Is(err, flow.ErrTooBig) {
			t.Fatalf("WriteBatch with a packet above the MTU = %d, %v; want 1, ErrTooBig", n, err)
		}
		n, err := b.ReadBatch(bufs, sizes)
		if err != nil || n != 1 || string(bufs[0][:sizes[0]]) != "before" {
			t.Fatalf("after the refused batch: %d packets, %v", n, err)
		}
	}
}
