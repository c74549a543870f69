package main

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ouro-net/ouro/internal/testenv"
)

func TestMain(m *testing.M) {
	testenv.MaybeRunIPCP()
	code := m.Run()
	testenv.CleanupBinaries()
	os.Exit(code)
}

// TestServeAndFetch serves a directory over a reliable flow and fetches
// a file from it, both through this program's run function.
func TestServeAndFetch(t *testing.T) {
	h := testenv.StartHost(t)
	h.Bootstrap(t, "local", "lo", "lo", nil)
	h.Register(t, "web", "lo")
	dir := t.TempDir()
	content := make([]byte, 3<<20)
	rand.Read(content)
	os.WriteFile(filepath.Join(dir, "blob"), content, 0o644)
	go run([]string{"-l", "-n", "web", "-dir", dir, "-rundir", h.Dir}, &bytes.Buffer{}, &bytes.Buffer{})
	var out, errb bytes.Buffer
	deadline := time.Now().Add(10 * time.Second)
	for {
		out.Reset()
		errb.Reset()
		if run([]string{"-n", "web", "-rundir", h.Dir, "blob"}, &out, &errb) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !bytes.Equal(out.Bytes(), content) {
		t.Fatalf("fetched %d bytes, want %d; stderr: %s", out.Len(), len(content), errb.String())
	}
}
