package main

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/ouro-net/ouro/lib/seal"
)

// cmdKey is `irm key generate FILE`: a fresh layer secret.
func cmdKey(args []string, out io.Writer) error {
	if len(args) != 2 || args[0] != "generate" {
		return usagef("key: want generate FILE")
	}
	if err := seal.GenerateSecret(args[1]); err != nil {
		return err
	}
	fmt.Fprintf(out, "wrote a layer secret to %s (mode 0600): give it to every member with secret FILE\n", args[1])
	return nil
}

// secretPath checks a layer secret file here, so a bad one is refused
// before the IPCP is asked, and makes its path absolute for the IPCP,
// which reads it (the secret itself never travels to the IRMd).
func secretPath(f string) (string, error) {
	abs, err := filepath.Abs(f)
	if err != nil {
		return "", fmt.Errorf("layer secret: %w", err)
	}
	b, err := seal.LoadSecret(abs)
	if err != nil {
		return "", err
	}
	clear(b)
	return abs, nil
}
