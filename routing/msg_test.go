package routing

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

func sampleMessages() []Message {
	return []Message{
		{Kind: KindUpdate, LSUs: []LSU{{Origin: 1, Seq: 1}}},
		{Kind: KindUpdate, LSUs: []LSU{{Origin: 0xffffffffffffffff, Seq: 1 << 40, Age: 1500 * time.Millisecond,
			Links: []Link{{Neighbor: 2, Cost: 1}, {Neighbor: 7, Cost: 0xffffffff}}}}},
		{Kind: KindSync},
		{Kind: KindSync, LSUs: []LSU{
			{Origin: 3, Seq: 9, Links: []Link{{Neighbor: 1, Cost: 3}}},
			{Origin: 1, Seq: 2, Age: time.Minute, Links: []Link{{Neighbor: 3, Cost: 2}, {Neighbor: 4, Cost: 1}}},
		}},
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for i, m := range sampleMessages() {
		b, err := Encode(m)
		if err != nil {
			t.Fatalf("message %d: encode: %v", i, err)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("message %d: decode: %v", i, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("message %d: got %+v, want %+v", i, got, m)
		}
	}
}

func TestDecodeSortsLinks(t *testing.T) {
	m := Message{Kind: KindUpdate, LSUs: []LSU{{Origin: 1, Seq: 1,
		Links: []Link{{Neighbor: 9, Cost: 1}, {Neighbor: 2, Cost: 5}}}}}
	b, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	want := []Link{{Neighbor: 2, Cost: 5}, {Neighbor: 9, Cost: 1}}
	if !reflect.DeepEqual(got.LSUs[0].Links, want) {
		t.Fatalf("links %v, want %v", got.LSUs[0].Links, want)
	}
}

func mp(t testing.TB, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// badMessages are hand-made inputs Decode must reject, with the error
// each must wrap.
func badMessages(t testing.TB) map[string]struct {
	b   []byte
	err error
} {
	lsu := func(fields ...any) []any { return fields }
	msg := func(lsus ...any) []byte { return mp(t, []any{1, 1, lsus}) }
	valid, _ := Encode(sampleMessages()[1])
	return map[string]struct {
		b   []byte
		err error
	}{
		"empty":            {nil, ErrMalformed},
		"not an array":     {mp(t, "hello"), ErrMalformed},
		"version 2":        {mp(t, []any{2, 1, []any{}}), ErrUnknownVersion},
		"version 2 other":  {mp(t, []any{2, "future", map[string]int{"x": 1}, 7}), ErrUnknownVersion},
		"version 0":        {mp(t, []any{0}), ErrUnknownVersion},
		"version string":   {mp(t, []any{"1", 1, []any{}}), ErrMalformed},
		"short message":    {mp(t, []any{1, 1}), ErrMalformed},
		"long message":     {mp(t, []any{1, 1, []any{}, 0}), ErrMalformed},
		"bad kind":         {mp(t, []any{1, 3, []any{}}), ErrMalformed},
		"nil lsus":         {mp(t, []any{1, 1, nil}), ErrMalformed},
		"zero origin":      {msg(lsu(0, 1, 0, []any{})), ErrMalformed},
		"negative seq":     {msg(lsu(1, -1, 0, []any{})), ErrMalformed},
		"float seq":        {msg(lsu(1, 1.5, 0, []any{})), ErrMalformed},
		"huge age":         {msg(lsu(1, 1, uint64(1)<<62, []any{})), ErrMalformed},
		"short lsu":        {msg(lsu(1, 1, 0)), ErrMalformed},
		"zero neighbour":   {msg(lsu(1, 1, 0, []any{[]any{0, 1}})), ErrMalformed},
		"self neighbour":   {msg(lsu(1, 1, 0, []any{[]any{1, 1}})), ErrMalformed},
		"zero cost":        {msg(lsu(1, 1, 0, []any{[]any{2, 0}})), ErrMalformed},
		"cost overflow":    {msg(lsu(1, 1, 0, []any{[]any{2, uint64(1) << 32}})), ErrMalformed},
		"dup neighbour":    {msg(lsu(1, 1, 0, []any{[]any{2, 1}, []any{3, 1}, []any{2, 4}})), ErrMalformed},
		"short link":       {msg(lsu(1, 1, 0, []any{[]any{2}})), ErrMalformed},
		"truncated":        {valid[:len(valid)-1], ErrMalformed},
		"trailing":         {append(append([]byte{}, valid...), 0), ErrMalformed},
		"lying array32":    {[]byte{0x93, 0x01, 0x01, 0xdd, 0xff, 0xff, 0xff, 0xff}, ErrMalformed},
		"lying link array": {[]byte{0x93, 0x01, 0x01, 0x91, 0x94, 0x01, 0x01, 0x00, 0xdd, 0x7f, 0xff, 0xff, 0xff}, ErrMalformed},
		"oversized":        {make([]byte, MaxMessageSize+1), ErrTooLarge},
	}
}

func TestDecodeRejects(t *testing.T) {
	for name, c := range badMessages(t) {
		_, err := Decode(c.b)
		if !errors.Is(err, c.err) {
			t.Errorf("%s: got %v, want %v", name, err, c.err)
		}
	}
}

func TestDecodeAcceptsSignedEncodings(t *testing.T) {
	// Other encoders may write small non-negative numbers as signed ints.
	b := []byte{0x93, 0xd0, 0x01, 0xd1, 0x00, 0x01, 0x91,
		0x94, 0xd3, 0, 0, 0, 0, 0, 0, 0, 5, 0xd2, 0, 0, 0, 9, 0x00, 0x91, 0x92, 0x06, 0xcc, 0x02}
	m, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	want := Message{Kind: KindUpdate, LSUs: []LSU{{Origin: 5, Seq: 9, Links: []Link{{Neighbor: 6, Cost: 2}}}}}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("got %+v, want %+v", m, want)
	}
}

func TestEncodeRejectsInvalid(t *testing.T) {
	bad := []Message{
		{Kind: 0},
		{Kind: KindUpdate, LSUs: []LSU{{Origin: 0}}},
		{Kind: KindUpdate, LSUs: []LSU{{Origin: 1, Age: -time.Second}}},
		{Kind: KindUpdate, LSUs: []LSU{{Origin: 1, Links: []Link{{Neighbor: 2}}}}},
		{Kind: KindUpdate, LSUs: []LSU{{Origin: 1, Links: []Link{{Neighbor: 2, Cost: 1}, {Neighbor: 2, Cost: 1}}}}},
	}
	for i, m := range bad {
		if _, err := Encode(m); !errors.Is(err, ErrMalformed) {
			t.Errorf("message %d: got %v, want ErrMalformed", i, err)
		}
	}
}
