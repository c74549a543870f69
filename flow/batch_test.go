package flow_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/ouro-net/ouro/flow"
)

// TestBatchKeepsPacketsAndEOF sends packets with WriteBatch and reads
// them with ReadBatch: every packet arrives whole and in order, one too
// large for the MTU is refused with ErrTooBig, and Close ends the batch
// reader with io.EOF.
func TestBatchKeepsPacketsAndEOF(t *testing.T) {
	a, b := localPair(t)
	var out [][]byte
	for i := range 200 {
		out = append(out, []byte(fmt.Sprintf("packet %d", i)))
	}
	if n, err := a.WriteBatch(out); err != nil || n != len(out) {
		t.Fatalf("WriteBatch = %d, %v", n, err)
	}
	if n, err := a.WriteBatch([][]byte{{1}, make([]byte, a.MTU()+1)}); !errors.Is(err, flow.ErrTooBig) || n != 1 {
		t.Fatalf("oversized batch: %d, %v", n, err)
	}
	a.Close()
	bufs := make([][]byte, 16)
	for i := range bufs {
		bufs[i] = make([]byte, 64)
	}
	sizes := make([]int, 16)
	var got [][]byte
	for {
		n, err := b.ReadBatch(bufs, sizes)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			got = append(got, bytes.Clone(bufs[i][:sizes[i]]))
		}
	}
	if len(got) != len(out)+1 {
		t.Fatalf("got %d packets, want %d", len(got), len(out)+1)
	}
	for i := range out {
		if !bytes.Equal(got[i], out[i]) {
			t.Fatalf("packet %d = %q, want %q", i, got[i], out[i])
		}
	}
}
