package rundir

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestPrepareRefusesPlanted plants run directories another user could
// have made: a symlink, a directory writable by others, one owned by
// another user (as root), and a /tmp-style private one that is not
// 0700. Each is refused with ErrUnsafe; a fresh one is created and
// accepted.
func TestPrepareRefusesPlanted(t *testing.T) {
	base := t.TempDir()
	fresh := filepath.Join(base, "fresh")
	if err := Prepare(fresh); err != nil {
		t.Fatalf("fresh directory: %v", err)
	}
	if err := Prepare(fresh); err != nil {
		t.Fatalf("existing own directory: %v", err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(fresh, link); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(base, "open")
	os.Mkdir(open, 0o777)
	os.Chmod(open, 0o777)
	wide := filepath.Join(base, "wide")
	os.Mkdir(wide, 0o755)
	cases := map[string]error{"symlink": Prepare(link), "world-writable": Prepare(open), "private 0755": Verify(wide, true)}
	if os.Geteuid() == 0 {
		other := filepath.Join(base, "other")
		os.Mkdir(other, 0o700)
		if err := os.Chown(other, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		cases["other owner"] = Prepare(other)
	} else {
		t.Log("not root: the other-owner case is skipped (needs chown)")
	}
	for name, err := range cases {
		if !errors.Is(err, ErrUnsafe) {
			t.Errorf("%s: got %v, want ErrUnsafe", name, err)
		}
	}
}
