package perf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// Packet types: the first byte of every perf packet. They differ from
// the oping types, so talking to the wrong server fails clearly.
const (
	TypeData   byte = 0x50
	TypeHello  byte = 0x51
	TypeAck    byte = 0x52
	TypeReport byte = 0x53
	TypeEnd    byte = 0x54
)

// Version is the control message version.
const Version = 1

// HeaderSize is the size of a data packet header and so the smallest
// packet.
const HeaderSize = 17

// Sizes of the control messages.
const (
	helloSize  = 2 + 1 + 4 + 4 + 8 + 8 + 8
	ackSize    = 2 + 4
	endSize    = 2 + 4 + 8
	countsSize = 7 * 8
	reportSize = 2 + 1 + 4 + 4 + countsSize + 8
)

// Errors from decoding.
var (
	ErrShort   = errors.New("perf: packet too short")
	ErrType    = errors.New("perf: unexpected packet type")
	ErrVersion = errors.New("perf: unsupported version")
)

// PutData writes a data header into b (at least HeaderSize bytes).
func PutData(b []byte, seq uint64, sent time.Time) {
	b[0] = TypeData
	binary.BigEndian.PutUint64(b[1:9], seq)
	binary.BigEndian.PutUint64(b[9:17], uint64(sent.UnixNano()))
}

// ParseData reads a data header.
func ParseData(b []byte) (seq uint64, sent time.Time, err error) {
	if len(b) < HeaderSize {
		return 0, time.Time{}, ErrShort
	}
	if b[0] != TypeData {
		return 0, time.Time{}, ErrType
	}
	return binary.BigEndian.Uint64(b[1:9]), time.Unix(0, int64(binary.BigEndian.Uint64(b[9:17]))), nil
}

// Hello opens a run.
type Hello struct {
	Run      uint32
	Both     bool          // the server sends too
	Size     int           // packet size, both ways
	Rate     float64       // packets/s; 0: as fast as the flow takes them
	Duration time.Duration // how long the client sends
	Interval time.Duration // report interval
}

// Ack answers a hello.
type Ack struct{ Run uint32 }

// End closes a run.
type End struct {
	Run  uint32
	Sent uint64 // data packets the client sent
}

// Counts is what a receiver counted over some time.
type Counts struct {
	Elapsed  time.Duration
	Packets  uint64
	Bytes    uint64
	Lost     uint64
	Late     uint64
	DelaySum time.Duration // sum of one-way delays
	DelayMax time.Duration
}

// Report is the server's account of a run: running totals, so that a
// lost report only merges two intervals at the client.
type Report struct {
	Run   uint32
	Final bool
	Index uint32 // interval number from 1; 0 in a final report
	Total Counts // since the hello
	Sent  uint64 // final, both ways: data packets the server sent
}

func header(typ byte, size int) []byte {
	b := make([]byte, size)
	b[0], b[1] = typ, Version
	return b
}

func check(b []byte, typ byte, size int) error {
	if len(b) < 2 {
		return ErrShort
	}
	if b[0] != typ {
		return fmt.Errorf("%w 0x%02x, want 0x%02x", ErrType, b[0], typ)
	}
	if b[1] != Version {
		return fmt.Errorf("%w %d (this end speaks %d)", ErrVersion, b[1], Version)
	}
	if len(b) < size {
		return fmt.Errorf("%w: %d bytes, want %d", ErrShort, len(b), size)
	}
	return nil
}

// Marshal encodes h.
func (h Hello) Marshal() []byte {
	b := header(TypeHello, helloSize)
	if h.Both {
		b[2] = 1
	}
	binary.BigEndian.PutUint32(b[3:], h.Run)
	binary.BigEndian.PutUint32(b[7:], uint32(h.Size))
	binary.BigEndian.PutUint64(b[11:], math.Float64bits(h.Rate))
	binary.BigEndian.PutUint64(b[19:], uint64(h.Duration))
	binary.BigEndian.PutUint64(b[27:], uint64(h.Interval))
	return b
}

// ParseHello decodes a hello.
func ParseHello(b []byte) (Hello, error) {
	if err := check(b, TypeHello, helloSize); err != nil {
		return Hello{}, err
	}
	h := Hello{
		Both:     b[2]&1 != 0,
		Run:      binary.BigEndian.Uint32(b[3:]),
		Size:     int(binary.BigEndian.Uint32(b[7:])),
		Rate:     math.Float64frombits(binary.BigEndian.Uint64(b[11:])),
		Duration: time.Duration(binary.BigEndian.Uint64(b[19:])),
		Interval: time.Duration(binary.BigEndian.Uint64(b[27:])),
	}
	if math.IsNaN(h.Rate) || math.IsInf(h.Rate, 0) || h.Rate < 0 || h.Duration < 0 || h.Interval < 0 {
		return Hello{}, errors.New("perf: hello with a negative or invalid rate, duration or interval")
	}
	return h, nil
}

// Marshal encodes a.
func (a Ack) Marshal() []byte {
	b := header(TypeAck, ackSize)
	binary.BigEndian.PutUint32(b[2:], a.Run)
	return b
}

// ParseAck decodes an ack.
func ParseAck(b []byte) (Ack, error) {
	if err := check(b, TypeAck, ackSize); err != nil {
		return Ack{}, err
	}
	return Ack{Run: binary.BigEndian.Uint32(b[2:])}, nil
}

// Marshal encodes e.
func (e End) Marshal() []byte {
	b := header(TypeEnd, endSize)
	binary.BigEndian.PutUint32(b[2:], e.Run)
	binary.BigEndian.PutUint64(b[6:], e.Sent)
	return b
}

// ParseEnd decodes an end.
func ParseEnd(b []byte) (End, error) {
	if err := check(b, TypeEnd, endSize); err != nil {
		return End{}, err
	}
	return End{Run: binary.BigEndian.Uint32(b[2:]), Sent: binary.BigEndian.Uint64(b[6:])}, nil
}

func (c Counts) put(b []byte) {
	for i, v := range []uint64{uint64(c.Elapsed), c.Packets, c.Bytes, c.Lost, c.Late, uint64(c.DelaySum), uint64(c.DelayMax)} {
		binary.BigEndian.PutUint64(b[8*i:], v)
	}
}

func getCounts(b []byte) Counts {
	u := func(i int) uint64 { return binary.BigEndian.Uint64(b[8*i:]) }
	return Counts{Elapsed: time.Duration(u(0)), Packets: u(1), Bytes: u(2), Lost: u(3), Late: u(4),
		DelaySum: time.Duration(u(5)), DelayMax: time.Duration(u(6))}
}

// Marshal encodes r.
func (r Report) Marshal() []byte {
	b := header(TypeReport, reportSize)
	if r.Final {
		b[2] = 1
	}
	binary.BigEndian.PutUint32(b[3:], r.Run)
	binary.BigEndian.PutUint32(b[7:], r.Index)
	r.Total.put(b[11:])
	binary.BigEndian.PutUint64(b[11+countsSize:], r.Sent)
	return b
}

// ParseReport decodes a report.
func ParseReport(b []byte) (Report, error) {
	if err := check(b, TypeReport, reportSize); err != nil {
		return Report{}, err
	}
	return Report{
		Final: b[2]&1 != 0,
		Run:   binary.BigEndian.Uint32(b[3:]),
		Index: binary.BigEndian.Uint32(b[7:]),
		Total: getCounts(b[11:]),
		Sent:  binary.BigEndian.Uint64(b[11+countsSize:]),
	}, nil
}
