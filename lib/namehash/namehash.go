// Package namehash hashes application and layer names into the fixed
// identifiers that cross the wire, so a shim or a directory never sends
// a name in the clear and every name has the same size.
package namehash

import (
	"crypto/sha256"
	"encoding/hex"
)

// Size is the length of a name hash in bytes.
const Size = 16

// Hash is the wire identifier of a name.
type Hash [Size]byte

// Of returns the hash of name.
func Of(name string) Hash {
	sum := sha256.Sum256([]byte(name))
	var h Hash
	copy(h[:], sum[:Size])
	return h
}

// String returns the hash in hex, shortened for logs.
func (h Hash) String() string { return hex.EncodeToString(h[:6]) }
