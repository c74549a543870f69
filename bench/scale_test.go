package main

import (
	"io"
	"os"
	"strings"
	"testing"
)

func TestScaleSmall(t *testing.T) {
	var out strings.Builder
	r, err := scaleRun([]int{20, 30}, "random", 4, 40, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Rows) != 2 || len(r.Errors) != 0 {
		t.Fatalf("%d rows, errors %v", len(r.Rows), r.Errors)
	}
	if r.TolerableN <= 0 {
		t.Errorf("tolerable N %d", r.TolerableN)
	}
	for _, want := range []string{"idle, per member per second", "events", "enrollment response"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	for _, bad := range []string{"", "5", "100,x", "30000"} {
		if _, err := parseScaleNs(bad); err == nil {
			t.Errorf("-scale-n %q accepted", bad)
		}
	}
	if _, err := scaleRun([]int{20}, "torus", 4, 40, io.Discard, io.Discard); err == nil {
		t.Error("unknown topology: no error")
	}
}

func TestReadMemSelf(t *testing.T) {
	p, err := readMem(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if p.RSS <= 0 || p.Anon <= 0 || p.PSS <= 0 || p.Anon+p.File > p.RSS+64 {
		t.Errorf("implausible figures %+v", p)
	}
	if _, err := readMem(-1); err == nil {
		t.Error("pid -1: no error")
	}
}
