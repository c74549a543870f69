package frct

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/ouro-net/ouro/lib/clock"
)

// FuzzCongestion drives a sending connection with congestion control
// from arbitrary input: each op sends new data (as far as the windows
// and pacer allow), advances the clock, or delivers a packet whose ACK,
// SACK, window and ECE come from the input (lies included), marked CE
// or not. It checks that nothing panics and the sender's state keeps
// its bounds.
func FuzzCongestion(f *testing.F) {
	f.Add(uint8(0), []byte{0, 0, 1, 5, 2, 0, 0, 0, 2, 0xff, 0, 0, 0, 0, 0, 0, 0, 3, 0, 200})
	f.Add(uint8(1), []byte{0, 2, 0, 0, 0, 5, 0x80, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 1, 50, 0, 2, 0, 0, 0, 9, 0x80, 1})
	f.Add(uint8(2), []byte{0, 1, 250, 1, 250, 1, 250, 0, 1, 250})
	f.Fuzz(func(t *testing.T, mode uint8, in []byte) {
		fc := clock.NewFake(time.Unix(0, 0))
		cfg := Config{Clock: fc, Reliable: mode&1 == 0, InOrder: true, Congestion: CongestionOn, Window: 16, CCQueue: 4,
			PeerTimeout: -1, KeepAlive: -1, Linger: -1}
		l := &nullLower{mtu: HeaderLen + 16, done: make(chan struct{})}
		c, err := newConn(l, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if mode&2 != 0 {
			c.setISN(^uint32(0) - 3)
		}
		var out outbox
		for len(in) > 0 {
			op := in[0]
			in = in[1:]
			switch op % 3 {
			case 0: // send
				c.mu.Lock()
				for i := 0; i < 20; i++ {
					open, pace := c.sendGateLocked(fc.Now())
					if !open || pace > 0 {
						break
					}
					c.sendDataLocked(fc.Now(), FlagData|FlagFirst|FlagLast, false, []byte("payload"), &out)
				}
				c.mu.Unlock()
			case 1: // time passes
				if len(in) == 0 {
					break
				}
				fc.Advance(time.Duration(in[0]) * 100 * time.Microsecond)
				in = in[1:]
			case 2: // an ACK (or anything) from the peer
				if len(in) < 9 {
					in = nil
					break
				}
				h := Header{Flags: FlagAck | Flags(in[4]&byte(FlagSACK|FlagECE)), Window: uint16(in[5]),
					Ack: c.sndUna + binary.BigEndian.Uint32(in[0:4])%24, SACK: uint32(in[6]) | uint32(in[7])<<24}
				ce := in[8]&1 != 0
				in = in[9:]
				b := c.getBuf()
				*b = h.Append((*b)[:0])
				c.mu.Lock()
				if c.err == nil {
					c.handlePacketCELocked(b, HeaderLen, ce, &out)
				}
				c.mu.Unlock()
				c.putBuf(b)
			}
			c.mu.Lock()
			checkCC(t, c)
			c.mu.Unlock()
			c.flush(&out)
		}
		c.mu.Lock()
		c.stopTimersLocked()
		c.mu.Unlock()
	})
}

func checkCC(t *testing.T, c *Conn) {
	t.Helper()
	flight := int(c.sndNxt - c.sndUna)
	cc := c.cc
	switch {
	case cc == nil:
		t.Fatal("no controller")
	case cc.cwnd < ccMinWindow || cc.cwnd > cc.maxWnd || cc.cwnd != cc.cwnd:
		t.Fatalf("cwnd %v outside [%d, %v]", cc.cwnd, ccMinWindow, cc.maxWnd)
	case flight < 0 || flight > len(c.ring):
		t.Fatalf("flight %d outside the ring of %d", flight, len(c.ring))
	case c.sacked < 0 || c.sacked > flight:
		t.Fatalf("%d SACKed of %d in flight", c.sacked, flight)
	case cc.alpha < 0 || cc.alpha > 1:
		t.Fatalf("alpha %v", cc.alpha)
	case cc.rate < 0 || cc.tokens > max(cc.burst(), ccInitialWindow)+1:
		t.Fatalf("rate %v tokens %v", cc.rate, cc.tokens)
	}
}
