package frct

import (
	"io"
	"math/rand"
	"testing"

	"github.com/ouro-net/ouro/lib/memlink"
)

// rawPeer is the test acting as a hostile peer directly on the lower.
type rawPeer struct {
	t *testing.T
	e *memlink.End
}

func (p rawPeer) send(h Header, payload string) {
	p.t.Helper()
	if err := p.e.WritePacket(append(h.Append(nil), payload...)); err != nil {
		p.t.Fatal(err)
	}
}

func (p rawPeer) raw(b []byte) {
	p.t.Helper()
	if err := p.e.WritePacket(b); err != nil {
		p.t.Fatal(err)
	}
}

func newHostile(t *testing.T, cfg Config) (*Conn, rawPeer) {
	t.Helper()
	return newHostileLink(t, cfg, memlink.Config{QueueLen: 1 << 16})
}

// newHostileLink is newHostile over a link configured by lc.
func newHostileLink(t *testing.T, cfg Config, lc memlink.Config) (*Conn, rawPeer) {
	t.Helper()
	la, lb := memlink.NewPair(lc)
	c, err := New(la, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		lb.Close()
		c.Close()
	})
	return c, rawPeer{t, lb}
}

func TestHostilePeerIsCountedNotObeyed(t *testing.T) {
	leakCheck(t)
	cfg := fastCfg()
	cfg.Linger = -1
	cfg.Window = 64
	c, p := newHostile(t, cfg)
	const data = FlagData | FlagFirst | FlagLast | FlagAck

	p.raw(nil)                                                      // empty
	p.raw([]byte{1, 2, 3})                                          // truncated header
	p.raw(Header{Flags: data}.Append(nil)[:HeaderLen-1])            // one byte short
	p.raw(append([]byte{9}, Header{}.Append(nil)[1:]...))           // unknown version
	p.raw(append([]byte{1, 0x80}, Header{}.Append(nil)[2:]...))     // reserved flag
	p.send(Header{Flags: FlagAck}, "payload without DATA")          // malformed
	p.send(Header{Flags: FlagAck, Ack: 1000, Window: 10}, "")       // forged ACK
	p.send(Header{Flags: data, Seq: 0, Ack: 7}, "forged with data") // forged ACK carrying data
	p.send(Header{Flags: data, Seq: 1_000_000}, "far ahead")
	p.send(Header{Flags: data, Seq: ^uint32(1_000_000)}, "far behind")
	p.send(Header{Flags: data, Seq: uint32(cfg.Window) + 5}, "beyond the window")
	p.send(Header{Flags: data, Seq: 0, Window: 10}, "hello")
	p.send(Header{Flags: data, Seq: 0, Window: 10}, "hello") // duplicate
	p.send(Header{Flags: data, Seq: 2, Window: 10}, "world") // out of order
	p.send(Header{Flags: data, Seq: 2, Window: 10}, "world") // duplicate in the reorder buffer
	p.send(Header{Flags: data, Seq: 1, Window: 10}, "again")

	want := Stats{MalformedDropped: 6, ForgedAcksDropped: 2, OutOfWindowDropped: 3, DupDropped: 2}
	eventually(t, "the counters", func() bool {
		s := c.Stats()
		return s.PacketsReceived == 8 && s.MalformedDropped == want.MalformedDropped && s.ForgedAcksDropped == want.ForgedAcksDropped &&
			s.OutOfWindowDropped == want.OutOfWindowDropped && s.DupDropped == want.DupDropped
	})
	buf := make([]byte, 100)
	for _, w := range []string{"hello", "again", "world"} {
		n, err := c.Read(buf)
		if err != nil || string(buf[:n]) != w {
			t.Fatalf("Read = %q, %v; want %q", buf[:n], err, w)
		}
	}

	// Garbage, some of it with a valid version byte: nothing panics and
	// nothing is delivered.
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 2000; i++ {
		b := make([]byte, rng.Intn(64))
		rng.Read(b)
		if len(b) > 0 && i%2 == 0 {
			b[0] = Version
		}
		p.raw(b)
	}
	p.send(Header{Flags: data, Seq: 3, Window: 10}, "still alive")
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "still alive" {
		t.Fatalf("Read after garbage = %q, %v", buf[:n], err)
	}
	if s := c.Stats(); s.Buffered != 0 {
		t.Fatalf("garbage left %d packets buffered", s.Buffered)
	}
}

func TestHostileFloodStaysBounded(t *testing.T) {
	leakCheck(t)
	cfg := fastCfg()
	cfg.Linger = -1
	cfg.Window = 16
	cfg.MaxMessage = 4096
	c, p := newHostile(t, cfg)
	// A flood of in-order fragments that never ends its message, far
	// beyond the window, plus out-of-order ones: nobody reads.
	payload := string(make([]byte, 1000))
	for s := uint32(0); s < 2000; s++ {
		p.send(Header{Flags: FlagData | FlagAck, Seq: s, Window: 10}, payload)
		p.send(Header{Flags: FlagData | FlagAck, Seq: s + 7, Window: 10}, payload)
	}
	eventually(t, "the flood to be processed", func() bool {
		s := c.Stats()
		return s.PacketsReceived+s.OutOfWindowDropped+s.DupDropped >= 4000
	})
	s := c.Stats()
	maxMsgPkts := (cfg.MaxMessage + c.maxPayload - 1) / c.maxPayload
	if bound := cfg.Window + maxMsgPkts + cfg.ReorderBuffer; s.Buffered > bound {
		t.Fatalf("hostile flood buffered %d packets, bound %d", s.Buffered, bound)
	}
	if s.OutOfWindowDropped == 0 {
		t.Fatal("no packet beyond the window was dropped")
	}
}

// shortLower reports one oversized packet, then behaves like its End.
type shortLower struct {
	*memlink.End
	once bool
}

func (l *shortLower) ReadPacket(b []byte) (int, error) {
	if !l.once {
		l.once = true
		return len(b), io.ErrShortBuffer
	}
	return l.End.ReadPacket(b)
}

func TestOversizedPacketIsDroppedNotFatal(t *testing.T) {
	leakCheck(t)
	la, lb := memlink.NewPair(memlink.Config{})
	c, err := New(&shortLower{End: la}, fastCfg())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	defer lb.Close()
	p := rawPeer{t, lb}
	p.send(Header{Flags: FlagData | FlagFirst | FlagLast | FlagAck, Seq: 0}, "ok")
	buf := make([]byte, 10)
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "ok" {
		t.Fatalf("Read = %q, %v", buf[:n], err)
	}
	if s := c.Stats(); s.MalformedDropped != 1 {
		t.Fatalf("MalformedDropped = %d", s.MalformedDropped)
	}
}
