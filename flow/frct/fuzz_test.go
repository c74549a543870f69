package frct

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/ouro-net/ouro/lib/clock"
)

func FuzzParseHeader(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{Version})
	f.Add(Header{Flags: FlagData | FlagAck | FlagFirst | FlagLast, Window: 7, Seq: 1, Ack: 2}.Append([]byte(nil)))
	f.Add(append(Header{Flags: FlagData | FlagAck | FlagSACK, Seq: 1 << 31, SACK: 0xdeadbeef}.Append(nil), "payload"...))
	f.Add(Header{Flags: FlagFIN | FlagAck, Seq: ^uint32(0)}.Append(nil))
	f.Add(Header{Flags: FlagKeepAlive | FlagAck, Window: 65535}.Append(nil))
	f.Add(append([]byte{2}, make([]byte, 20)...))
	f.Add(append([]byte{Version, 0xff}, make([]byte, 14)...))
	packedH := Header{Flags: FlagData | FlagAck | FlagFirst | FlagLast, Seq: 3, Packed: true}
	f.Add(append(packedH.Append(nil), appendRecord(appendRecord(nil, []byte("one")), []byte("two"))...))
	f.Add(append(packedH.Append(nil), 0xff, 0xff, 'x'))               // a lying record length
	f.Add(append(packedH.Append(nil), 0, 0, 0, 0))                    // empty records
	f.Add(append([]byte{Version | 0x30}, packedH.Append(nil)[1:]...)) // unknown form
	f.Fuzz(func(t *testing.T, b []byte) {
		h, payload, err := ParseHeader(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if again := append(h.Append(nil), payload...); !bytes.Equal(again, b) {
			t.Fatalf("round trip: %x became %x", b, again)
		}
		_ = h.Flags.String()
	})
}

// nullLower is a Lower for driving a Conn by hand: it never delivers and
// discards what is written.
type nullLower struct {
	mtu  int
	done chan struct{}
}

func (l *nullLower) ReadPacket([]byte) (int, error) { <-l.done; return 0, io.EOF }
func (l *nullLower) WritePacket([]byte) error       { return nil }
func (l *nullLower) MTU() int                       { return l.mtu }
func (l *nullLower) Close() error                   { return nil }

// packets frames fuzz input: each packet is a 1-byte length and its
// bytes; a zero length means "the application reads now".
func packets(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		n := int(b[0])
		b = b[1:]
		n = min(n, len(b))
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

func framePackets(ps ...[]byte) []byte {
	var b []byte
	for _, p := range ps {
		b = append(b, byte(len(p)))
		b = append(b, p...)
	}
	return b
}

func pkt(flags Flags, seq, ack uint32, payload string) []byte {
	return append(Header{Flags: flags | FlagAck, Seq: seq, Ack: ack, Window: 4}.Append(nil), payload...)
}

// FuzzConnInput feeds arbitrary packet sequences to a connection's
// receive path and checks that it never panics and keeps its bounds.
func FuzzConnInput(f *testing.F) {
	const d = FlagData
	f.Add(uint8(0), framePackets(pkt(d|FlagFirst|FlagLast, 0, 0, "hi"), nil, pkt(FlagFIN, 1, 0, "")))
	f.Add(uint8(1), framePackets(pkt(d|FlagFirst, 0, 0, "a"), pkt(d|FlagLast, 2, 0, "c"), pkt(d, 1, 0, "b"), nil))
	f.Add(uint8(2), framePackets(pkt(d|FlagFirst|FlagLast, 3, 0, "x"), pkt(d|FlagFirst|FlagLast, 1, 0, "y"), pkt(FlagFIN, 4, 0, "")))
	f.Add(uint8(3), framePackets(pkt(d, 0, 9, "forged"), pkt(FlagKeepAlive, 0, 0, ""), []byte{1, 2, 3}))
	f.Add(uint8(0), framePackets(pkt(d|FlagFirst, 0, 0, "aaaa"), pkt(d, 1, 0, "bbbb"), pkt(d, 2, 0, "cccc"), pkt(d, 3, 0, "dd")))
	pp := func(seq uint32, recs ...string) []byte {
		var p []byte
		for _, r := range recs {
			p = appendRecord(p, []byte(r))
		}
		return append(Header{Flags: d | FlagFirst | FlagLast | FlagAck, Seq: seq, Window: 4, Packed: true}.Append(nil), p...)
	}
	f.Add(uint8(0), framePackets(pp(0, "a", "bb", "ccc"), nil, nil, nil, pkt(FlagFIN, 1, 0, "")))
	f.Add(uint8(2), framePackets(pp(1, "x", "y"), pp(0, "u", "v", "w"), nil, nil))
	f.Add(uint8(1), framePackets(pp(2, "late", "r"), pp(0, "p", "q"), nil, pp(0, "p", "q")))
	f.Add(uint8(0), framePackets(pkt(d|FlagFirst, 0, 0, "cut"), pp(1, "after", "cut"), nil, nil, nil))
	f.Fuzz(func(t *testing.T, mode uint8, in []byte) {
		fc := clock.NewFake(time.Unix(0, 0))
		cfg := Config{Clock: fc, Reliable: mode&1 == 0, InOrder: mode&2 == 0, Window: 8, ReorderBuffer: 6, MaxMessage: 40}
		l := &nullLower{mtu: HeaderLen + 16, done: make(chan struct{})}
		c, err := newConn(l, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if mode&4 != 0 {
			c.setISN(^uint32(0) - 2) // exercise wrap-around
		}
		read := make([]byte, 1+int(mode>>3))
		var out outbox
		for _, p := range packets(in) {
			c.mu.Lock()
			if len(p) == 0 {
				if len(c.ready) > 0 {
					c.readReadyLocked(read, &out)
				}
			} else {
				buf := c.getBuf()
				*buf = append((*buf)[:0], p...)
				if !c.handlePacketLocked(buf, len(p), &out) {
					c.putBuf(buf)
				}
			}
			checkInvariants(t, c)
			c.mu.Unlock()
			c.flush(&out)
			fc.Advance(time.Millisecond)
		}
	})
}

func checkInvariants(t *testing.T, c *Conn) {
	t.Helper()
	held, unread := 0, 0
	for _, s := range c.ooo {
		if s.state == slotHeld {
			held++
		}
	}
	for _, m := range c.ready {
		unread += m.pkts
	}
	asm := 0
	if c.asm != nil {
		asm = c.asm.pkts
	}
	switch {
	case held != c.oooCount:
		t.Fatalf("oooCount %d, %d slots held", c.oooCount, held)
	case unread != c.unread:
		t.Fatalf("unread %d, ready messages hold %d packets", c.unread, unread)
	case held > c.cfg.ReorderBuffer:
		t.Fatalf("reorder buffer holds %d > %d", held, c.cfg.ReorderBuffer)
	case asm > c.maxMsgPkts:
		t.Fatalf("reassembly holds %d packets > %d", asm, c.maxMsgPkts)
	case unread > c.cfg.Window+c.maxMsgPkts+c.cfg.ReorderBuffer:
		t.Fatalf("%d unread packets exceed the bound", unread)
	}
}
