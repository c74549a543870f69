package perfcli

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/ouro-net/ouro/tools/operf/perf"
)

func tool() (*Tool, *bytes.Buffer, *bytes.Buffer) {
	var out, errb bytes.Buffer
	return &Tool{Prog: "t", Common: &perf.Common{Name: "srv", Duration: time.Second, Interval: time.Second, Size: 100},
		Stdout: &out, Stderr: &errb}, &out, &errb
}

// TestParse: the shared flags, the tool's own and both checks; every
// refusal is a usage error explained on stderr with the tool's name.
func TestParse(t *testing.T) {
	tl, _, _ := tool()
	both := false
	own := func(fs *flag.FlagSet) { fs.BoolVar(&both, "both", false, "") }
	if err := tl.Parse([]string{"-n", "x", "-s", "200", "-both"}, "rate", own, nil); err != nil || tl.Name != "x" || tl.Size != 200 || !both {
		t.Fatalf("parse: %v %+v both=%v", err, tl.Common, both)
	}
	for _, c := range []struct {
		args  []string
		check func() error
		want  string
	}{
		{[]string{"-nosuch"}, nil, "flag provided but not defined"},
		{[]string{"extra"}, nil, `t: unexpected argument "extra"`},
		{nil, func() error { return errors.New("too slow") }, "t: too slow"},
	} {
		tl, _, errb := tool()
		if err := tl.Parse(c.args, "rate", own, c.check); err != ErrUsage || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%v: %v, stderr %q, want usage error saying %q", c.args, err, errb, c.want)
		}
	}
}

// TestFail: a client's failure goes to stderr and, with --json, to
// stdout as one object naming the name and the error.
func TestFail(t *testing.T) {
	tl, out, errb := tool()
	tl.JSON = true
	if code := tl.Fail(errors.New("no way")); code != 1 {
		t.Fatalf("exit %d", code)
	}
	var m map[string]string
	if err := json.Unmarshal(out.Bytes(), &m); err != nil || m["name"] != "srv" || m["error"] != "no way" {
		t.Fatalf("JSON %q: %v", out, err)
	}
	if errb.String() != "t: no way\n" {
		t.Fatalf("stderr %q", errb)
	}
}
