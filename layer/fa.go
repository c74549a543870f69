package layer

import (
	"errors"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/ouro-net/ouro/lib/qos"
)

// FAVersion is the flow-allocation protocol version.
const FAVersion = 1

// Flow-allocation message types.
const (
	FARequest  = 1
	FAResponse = 2
	FADealloc  = 3
)

// FAMsg is a flow-allocation message. It travels in a data packet to
// endpoint id 0 of the destination member. Data packets carry no source
// address, so the request names the requester's address and endpoint.
type FAMsg struct {
	V       uint8    `msgpack:"v"`
	Type    uint8    `msgpack:"t"`
	SrcAddr uint64   `msgpack:"sa"`
	SrcEID  uint64   `msgpack:"se"`
	DstEID  uint64   `msgpack:"de"`
	Name    string   `msgpack:"n,omitempty"`
	QoS     qos.Spec `msgpack:"q"`
	Err     string   `msgpack:"err,omitempty"`
}

// EncodeFA serialises a flow-allocation message.
func EncodeFA(m *FAMsg) ([]byte, error) {
	m.V = FAVersion
	return msgpack.Marshal(m)
}

// ErrFAVersion marks a flow-allocation message of another version.
var ErrFAVersion = errors.New("unsupported flow-allocation version")

// DecodeFA parses a flow-allocation message; it never panics.
func DecodeFA(b []byte) (FAMsg, error) {
	var m FAMsg
	if err := msgpack.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("malformed flow-allocation message: %w", err)
	}
	if m.V != FAVersion {
		return m, fmt.Errorf("%w: %d", ErrFAVersion, m.V)
	}
	if m.Type < FARequest || m.Type > FADealloc {
		return m, fmt.Errorf("malformed flow-allocation message: type %d", m.Type)
	}
	return m, nil
}

// DirUpdate floods directory entries between neighbours.
type DirUpdate struct {
	V       uint8      `msgpack:"v"`
	Entries []DirEntry `msgpack:"e"`
}

// EncodeDir serialises a directory update.
func EncodeDir(entries []DirEntry) ([]byte, error) {
	return msgpack.Marshal(&DirUpdate{V: FAVersion, Entries: entries})
}

// DecodeDir parses a directory update; it never panics.
func DecodeDir(b []byte) ([]DirEntry, error) {
	var u DirUpdate
	if err := msgpack.Unmarshal(b, &u); err != nil {
		return nil, fmt.Errorf("malformed directory update: %w", err)
	}
	if u.V != FAVersion {
		return nil, fmt.Errorf("directory update version %d unsupported", u.V)
	}
	return u.Entries, nil
}
