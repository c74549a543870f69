package seal

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
)

// Identity key files. A private key file holds the 32-byte Ed25519
// seed, raw, and must not be readable by group or others (mode 0600 or
// stricter); a public key file holds the 32-byte public key, raw.

// GenerateIdentity writes a fresh identity: the private key to priv
// (mode 0600) and the public key to pub (mode 0644). It refuses to
// overwrite either file.
func GenerateIdentity(priv, pub string) error {
	pk, sk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("generate identity: %w", err)
	}
	if err := writeNew(priv, sk.Seed(), 0o600); err != nil {
		return err
	}
	return writeNew(pub, pk, 0o644)
}

func writeNew(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("key file: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("key file %s: %w", path, err)
	}
	return f.Close()
}

// LoadIdentity reads a private identity key file.
func LoadIdentity(path string) (ed25519.PrivateKey, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("identity key: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("identity key %s: mode %04o lets group or others read it; chmod 600 it", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("identity key: %w", err)
	}
	if len(b) != ed25519.SeedSize {
		return nil, fmt.Errorf("identity key %s: %d bytes, want %d", path, len(b), ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(b), nil
}

// LoadPublic reads a public key file (a pin).
func LoadPublic(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	if len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("public key %s: %d bytes, want %d", path, len(b), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}
