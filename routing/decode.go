package routing

import (
	"bytes"
	"fmt"
	"math"
	"time"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// Decode parses a routing message. It never panics; it returns an error
// wrapping ErrUnknownVersion, ErrTooLarge or ErrMalformed for anything
// Encode would not have produced (trailing bytes included). The links of
// every decoded LSU are sorted by neighbour.
func Decode(b []byte) (Message, error) {
	if len(b) > MaxMessageSize {
		return Message{}, fmt.Errorf("routing: decode: %d bytes: %w", len(b), ErrTooLarge)
	}
	r := bytes.NewReader(b)
	d := &decoder{r: r, d: msgpack.NewDecoder(r)}
	m, err := d.message()
	if err != nil {
		return Message{}, fmt.Errorf("routing: decode: %w", err)
	}
	if r.Len() != 0 {
		return Message{}, fmt.Errorf("routing: decode: %w: %d trailing bytes", ErrMalformed, r.Len())
	}
	return m, nil
}

type decoder struct {
	r *bytes.Reader
	d *msgpack.Decoder
}

func (d *decoder) message() (Message, error) {
	n, err := d.arrayLen(1, "message")
	if err != nil {
		return Message{}, err
	}
	v, err := d.uint("version")
	if err != nil {
		return Message{}, err
	}
	if v != Version {
		return Message{}, fmt.Errorf("%w: %d (this node speaks %d)", ErrUnknownVersion, v, Version)
	}
	if n != 3 {
		return Message{}, fmt.Errorf("%w: message has %d fields, want 3", ErrMalformed, n)
	}
	k, err := d.uint("kind")
	if err != nil {
		return Message{}, err
	}
	m := Message{Kind: Kind(k)}
	if k != uint64(KindUpdate) && k != uint64(KindSync) {
		return Message{}, fmt.Errorf("%w: unknown kind %d", ErrMalformed, k)
	}
	// Every LSU takes at least 5 bytes on the wire.
	count, err := d.arrayLen(5, "LSU list")
	if err != nil {
		return Message{}, err
	}
	if count > MaxLSUs {
		return Message{}, fmt.Errorf("%w: %d LSUs", ErrTooLarge, count)
	}
	if count > 0 {
		m.LSUs = make([]LSU, count)
	}
	for i := range m.LSUs {
		if err := d.lsu(&m.LSUs[i]); err != nil {
			return Message{}, fmt.Errorf("LSU %d: %w", i, err)
		}
	}
	return m, nil
}

func (d *decoder) lsu(l *LSU) error {
	n, err := d.arrayLen(1, "LSU")
	if err != nil {
		return err
	}
	if n != 4 {
		return fmt.Errorf("%w: LSU has %d fields, want 4", ErrMalformed, n)
	}
	if l.Origin, err = d.uint("origin"); err != nil {
		return err
	}
	if l.Origin == 0 {
		return fmt.Errorf("%w: zero origin", ErrMalformed)
	}
	if l.Seq, err = d.uint("seq"); err != nil {
		return err
	}
	age, err := d.uint("age")
	if err != nil {
		return err
	}
	if age > uint64(math.MaxInt64/int64(time.Millisecond)) {
		return fmt.Errorf("%w: age %d ms out of range", ErrMalformed, age)
	}
	l.Age = time.Duration(age) * time.Millisecond
	// Every link takes at least 3 bytes on the wire.
	count, err := d.arrayLen(3, "link list")
	if err != nil {
		return err
	}
	if count > MaxLinks {
		return fmt.Errorf("%w: %d links", ErrTooLarge, count)
	}
	if count > 0 {
		l.Links = make([]Link, count)
	}
	for i := range l.Links {
		if err := d.link(&l.Links[i]); err != nil {
			return fmt.Errorf("link %d: %w", i, err)
		}
	}
	if err := checkLinks(l.Origin, l.Links); err != nil {
		return err
	}
	sortLinks(l.Links)
	return nil
}

func (d *decoder) link(k *Link) error {
	n, err := d.arrayLen(1, "link")
	if err != nil {
		return err
	}
	if n != 2 {
		return fmt.Errorf("%w: link has %d fields, want 2", ErrMalformed, n)
	}
	if k.Neighbor, err = d.uint("neighbour"); err != nil {
		return err
	}
	c, err := d.uint("cost")
	if err != nil {
		return err
	}
	if c > math.MaxUint32 {
		return fmt.Errorf("%w: cost %d out of range", ErrMalformed, c)
	}
	k.Cost = uint32(c)
	return nil
}

// arrayLen reads an array header and checks that its elements, each at
// least minElem bytes long, fit in what is left of the input.
func (d *decoder) arrayLen(minElem int, what string) (int, error) {
	n, err := d.d.DecodeArrayLen()
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %v", ErrMalformed, what, err)
	}
	if n < 0 {
		return 0, fmt.Errorf("%w: %s is nil", ErrMalformed, what)
	}
	if n > d.r.Len()/minElem {
		return 0, fmt.Errorf("%w: %s claims %d elements in %d bytes", ErrMalformed, what, n, d.r.Len())
	}
	return n, nil
}

// uint reads a non-negative integer in any msgpack integer encoding.
func (d *decoder) uint(what string) (uint64, error) {
	c, err := d.d.PeekCode()
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %v", ErrMalformed, what, err)
	}
	switch {
	case msgpcode.IsFixedNum(c) && c <= msgpcode.PosFixedNumHigh,
		c == msgpcode.Uint8, c == msgpcode.Uint16, c == msgpcode.Uint32, c == msgpcode.Uint64:
		v, err := d.d.DecodeUint64()
		if err != nil {
			return 0, fmt.Errorf("%w: %s: %v", ErrMalformed, what, err)
		}
		return v, nil
	case c == msgpcode.Int8, c == msgpcode.Int16, c == msgpcode.Int32, c == msgpcode.Int64:
		v, err := d.d.DecodeInt64()
		if err != nil {
			return 0, fmt.Errorf("%w: %s: %v", ErrMalformed, what, err)
		}
		if v < 0 {
			return 0, fmt.Errorf("%w: %s is negative", ErrMalformed, what)
		}
		return uint64(v), nil
	}
	return 0, fmt.Errorf("%w: %s is not an unsigned integer (code 0x%02x)", ErrMalformed, what, c)
}
