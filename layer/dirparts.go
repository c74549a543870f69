package layer

import (
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// dirUpdateOverhead bounds what a DirUpdate adds to its entries: the
// map header, the two keys, the version and the array header.
const dirUpdateOverhead = 16

// SplitDir encodes entries as directory updates of at most max bytes
// each, packing whole entries in order: every update is
// self-contained, so a receiver applies each one as it comes (no
// reassembly). An entry whose update alone exceeds max is still
// returned as an update of its own, larger than max: the caller has to
// send that one in parts.
func SplitDir(entries []DirEntry, max int) ([][]byte, error) {
	var updates [][]byte
	var group []DirEntry
	size := dirUpdateOverhead
	flush := func() error {
		if len(group) == 0 {
			return nil
		}
		b, err := EncodeDir(group)
		if err != nil {
			return fmt.Errorf("encode directory update: %w", err)
		}
		updates = append(updates, b)
		group, size = nil, dirUpdateOverhead
		return nil
	}
	for i := range entries {
		e, err := msgpack.Marshal(&entries[i])
		if err != nil {
			return nil, fmt.Errorf("encode directory entry of %d: %w", entries[i].Origin, err)
		}
		if len(group) > 0 && size+len(e) > max {
			if err := flush(); err != nil {
				return nil, err
			}
		}
		group = append(group, entries[i])
		size += len(e)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return updates, nil
}
