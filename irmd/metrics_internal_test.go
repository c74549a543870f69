package irmd

import (
	"strings"
	"testing"
)

// TestExpositionFormat: one HELP and TYPE per family before its
// samples, label values escaped (backslash, quote, newline), HELP
// escaped (backslash, newline).
func TestExpositionFormat(t *testing.T) {
	e := newExposition()
	e.add("x_total", "counter", "help with \\ and\nnewline", "3", "name", `a"b\c`+"\nd", "k", "v")
	e.add("y", "gauge", "y help", "1")
	e.add("x_total", "counter", "ignored", "4", "name", "e")
	var b strings.Builder
	e.write(&b)
	want := "# HELP x_total help with \\\\ and\\nnewline\n# TYPE x_total counter\n" +
		"x_total{name=\"a\\\"b\\\\c\\nd\",k=\"v\"} 3\nx_total{name=\"e\"} 4\n" +
		"# HELP y y help\n# TYPE y gauge\ny 1\n"
	if b.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}
