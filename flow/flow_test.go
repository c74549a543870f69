package flow_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/internal/testenv"
	"github.com/ouro-net/ouro/lib/qos"
)

func TestMain(m *testing.M) {
	testenv.MaybeRunIPCP()
	code := m.Run()
	testenv.CleanupBinaries()
	os.Exit(code)
}

// Compile-time checks that flows and listeners fit the net interfaces.
var _ net.Conn = (*flow.Flow)(nil)

func localPair(t *testing.T) (*flow.Flow, *flow.Flow) {
	t.Helper()
	return pairWith(t, "echo", qos.Raw())
}

// pairWith allocates a flow with q to name over a local layer of a new
// host and returns both ends; everything closes with the test.
func pairWith(t *testing.T, name string, q qos.Spec) (*flow.Flow, *flow.Flow) {
	t.Helper()
	h := testenv.StartHost(t)
	h.Bootstrap(t, "local", "lo", "lo", nil)
	h.Register(t, name, "lo")
	l, err := flow.Listen(name, h.Opt())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := flow.Alloc(ctx, name, q, h.Opt())
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func TestPacketsKeepBoundaries(t *testing.T) {
	a, b := localPair(t)
	if a.MTU() <= 0 || a.Layer() != "lo" || b.Name() != "echo" {
		t.Fatalf("flow info: mtu %d layer %q name %q", a.MTU(), a.Layer(), b.Name())
	}
	msgs := [][]byte{[]byte("one"), {}, bytes.Repeat([]byte{7}, 9000), []byte("last")}
	for _, m := range msgs {
		if _, err := a.Write(m); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 65536)
	for i, m := range msgs {
		n, err := b.Read(buf)
		if err != nil || !bytes.Equal(buf[:n], m) {
			t.Fatalf("packet %d: got %d bytes, err %v", i, n, err)
		}
	}
	if _, err := a.Write(make([]byte, a.MTU()+1)); !errors.Is(err, flow.ErrTooBig) {
		t.Fatalf("oversized write: %v", err)
	}
	// A short buffer returns the truncated packet and says so.
	a.Write([]byte("0123456789"))
	if n, err := b.Read(buf[:4]); n != 4 || !errors.Is(err, io.ErrShortBuffer) {
		t.Fatalf("short read: %d %v", n, err)
	}
}

func TestCloseGivesPeerEOF(t *testing.T) {
	a, b := localPair(t)
	a.Write([]byte("bye"))
	start := time.Now()
	a.Close()
	buf := make([]byte, 16)
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := b.Read(buf); err != nil || string(buf[:n]) != "bye" {
		t.Fatalf("data before close lost: %q %v", buf[:n], err)
	}
	if _, err := b.Read(buf); !errors.Is(err, io.EOF) {
		t.Fatalf("read after peer close: %v, want io.EOF", err)
	}
	t.Logf("EOF seen %v after Close", time.Since(start))
	if _, err := b.Read(buf); !errors.Is(err, io.EOF) {
		t.Fatalf("EOF is not sticky: %v", err)
	}
	if _, err := a.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after own close: %v", err)
	}
}

func TestDeadlines(t *testing.T) {
	a, _ := localPair(t)
	a.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := a.Read(make([]byte, 8))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("want deadline error, got %v", err)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("deadline error is not a net.Error timeout: %v", err)
	}
}

func TestNoDaemon(t *testing.T) {
	dir := testenv.ShortTempDir(t)
	_, err := flow.Alloc(context.Background(), "x", qos.Raw(), flow.WithRunDir(dir))
	if !errors.Is(err, flow.ErrNoDaemon) {
		t.Fatalf("alloc without daemon: %v", err)
	}
	if _, err := flow.Listen("x", flow.WithRunDir(dir)); !errors.Is(err, flow.ErrNoDaemon) {
		t.Fatalf("listen without daemon: %v", err)
	}
}

func TestListenerCloseUnblocksAccept(t *testing.T) {
	h := testenv.StartHost(t)
	l, err := flow.Listen("x", h.Opt())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := l.Accept(context.Background())
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	l.Close()
	select {
	case err := <-done:
		if !errors.Is(err, flow.ErrListenerClosed) {
			t.Fatalf("accept after close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept still blocked after Close")
	}
}
