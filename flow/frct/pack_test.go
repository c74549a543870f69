package frct

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"math/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ouro-net/ouro/lib/memlink"
)

// packMsg is message i of a packing test: its number and a body whose
// length (1..maxLen) and bytes follow from i.
func packMsg(i, maxLen int) []byte {
	n := 4 + (i*7919)%(maxLen-3)
	m := make([]byte, n)
	binary.BigEndian.PutUint32(m, uint32(i))
	for j := 4; j < n; j++ {
		m[j] = byte(i + j)
	}
	return m
}

// TestPackWhenWindowClosed: messages written while the peer's window is
// closed wait in the send buffer (Write returns at once) and leave
// packed once it opens: fewer packets than messages, every message
// intact, in order, and delivered as a message of its own.
func TestPackWhenWindowClosed(t *testing.T) {
	leakCheck(t)
	cfg := fastCfg()
	cfg.Window = 4
	cfg.NoDelay = true // each message its own packet until the window closes
	a, b, _, _ := newPair(t, cfg, memlink.Config{QueueLen: 1024})
	const n = 300
	for i := 0; i < n; i++ {
		if k, err := a.Write(packMsg(i, 200)); err != nil || k != len(packMsg(i, 200)) {
			t.Fatalf("Write %d = %d, %v", i, k, err)
		}
	}
	// The receiver reads nothing yet: at most Window packets are out,
	// everything else waits in the send buffer.
	eventually(t, "a closed window", func() bool { return b.Stats().Buffered == cfg.Window })
	if st := a.Stats(); st.DataSent != uint64(cfg.Window) || st.SendBuffered != n-cfg.Window {
		t.Fatalf("window closed: %d DATA packets sent, %d messages buffered; want %d and %d", st.DataSent, st.SendBuffered, cfg.Window, n-cfg.Window)
	}
	buf := make([]byte, 1024)
	for i := 0; i < n; i++ {
		k, err := b.Read(buf)
		if err != nil || !bytes.Equal(buf[:k], packMsg(i, 200)) {
			t.Fatalf("message %d: %v, %d bytes %x", i, err, k, buf[:min(k, 8)])
		}
	}
	sa, sb := a.Stats(), b.Stats()
	if sa.DataSent >= n || sa.PackedSent == 0 || sb.PackedReceived == 0 {
		t.Fatalf("%d messages in %d DATA packets (%d packed, %d received packed): no packing", n, sa.DataSent, sa.PackedSent, sb.PackedReceived)
	}
	if sa.PackedMessages+(sa.DataSent-sa.PackedSent) != n {
		t.Fatalf("%d packed messages + %d plain packets != %d messages", sa.PackedMessages, sa.DataSent-sa.PackedSent, n)
	}
	t.Logf("%d messages in %d DATA packets, %d of them packed with %d messages", n, sa.DataSent, sa.PackedSent, sa.PackedMessages)
}

// TestLoneMessageGoesAtOnce: a message written when the sender can send
// goes out alone, as a plain packet, before Write returns; a
// ping-pong never packs.
func TestLoneMessageGoesAtOnce(t *testing.T) {
	leakCheck(t)
	la, lb := memlink.NewPair(memlink.Config{})
	cfg := fastCfg()
	cfg.Linger = -1
	c, err := New(la, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Close()
	defer c.Close()
	if _, err := c.Write([]byte("alone")); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.DataSent != 1 || st.SendBuffered != 0 {
		t.Fatalf("after Write: %d DATA packets sent, %d buffered", st.DataSent, st.SendBuffered)
	}
	buf := make([]byte, 2048)
	k, err := lb.ReadPacket(buf)
	if err != nil {
		t.Fatal(err)
	}
	h, payload, err := ParseHeader(buf[:k])
	if err != nil || h.Packed || h.Flags&(FlagData|FlagFirst|FlagLast) != FlagData|FlagFirst|FlagLast || string(payload) != "alone" {
		t.Fatalf("the packet: %+v %q %v", h, payload, err)
	}

	// Ping-pong between two Conns: one message at a time, never packed.
	a, b, _, _ := newPair(t, fastCfg(), memlink.Config{})
	for i := 0; i < 50; i++ {
		if _, err := a.Write(packMsg(i, 100)); err != nil {
			t.Fatal(err)
		}
		k, err := b.Read(buf)
		if err != nil || !bytes.Equal(buf[:k], packMsg(i, 100)) {
			t.Fatalf("ping %d: %v", i, err)
		}
		if _, err := b.Write(buf[:k]); err != nil {
			t.Fatal(err)
		}
		if k, err = a.Read(buf); err != nil || !bytes.Equal(buf[:k], packMsg(i, 100)) {
			t.Fatalf("pong %d: %v", i, err)
		}
	}
	if sa, sb := a.Stats(), b.Stats(); sa.PackedSent != 0 || sb.PackedSent != 0 || sa.DataSent != 50 || sb.DataSent != 50 {
		t.Fatalf("ping-pong: %d/%d DATA packets, %d/%d packed; want 50 each, none packed", sa.DataSent, sb.DataSent, sa.PackedSent, sb.PackedSent)
	}
}

// TestPackedTransferLossy: a burst of small messages of many sizes over
// a link that loses, reorders and duplicates packets, then Close: every
// message arrives once, intact and in order (compared by SHA-256 over
// the length-framed stream), the reader sees io.EOF after the last, and
// packed packets were retransmitted as units.
func TestPackedTransferLossy(t *testing.T) {
	leakCheck(t)
	for _, batch := range []bool{false, true} {
		name := "Lower"
		if batch {
			name = "BatchLower"
		}
		t.Run(name, func(t *testing.T) { testPackedLossy(t, batch) })
	}
}

func testPackedLossy(t *testing.T, batch bool) {
	la, lb := memlink.NewPair(memlink.Config{Loss: 0.05, Reorder: 0.03, Dup: 0.02, Seed: 11, QueueLen: 1024, MTU: 9000})
	var lowA, lowB Lower = la, lb
	if batch {
		lowA, lowB = &batchEnd{End: la}, &batchEnd{End: lb}
	}
	cfg := fastCfg()
	cfg.Window = 32
	cfg.InOrder = false // unordered delivery of whole packets must split them too
	a, err := New(lowA, cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.InOrder = true
	b, err := New(lowB, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const n = 6000
	want := sha256.New()
	for i := 0; i < n; i++ {
		m := packMsg(i, 1500)
		want.Write(binary.BigEndian.AppendUint32(nil, uint32(len(m))))
		want.Write(m)
	}
	got := make(chan []byte, 1)
	go func() {
		h := sha256.New()
		buf := make([]byte, 4096)
		for {
			k, err := b.Read(buf)
			if err != nil {
				if errors.Is(err, io.EOF) {
					got <- h.Sum(nil)
				} else {
					got <- []byte(err.Error())
				}
				return
			}
			h.Write(binary.BigEndian.AppendUint32(nil, uint32(k)))
			h.Write(buf[:k])
		}
	}()
	for i := 0; i < n; i++ {
		if _, err := a.Write(packMsg(i, 1500)); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case sum := <-got:
		if !bytes.Equal(sum, want.Sum(nil)) {
			t.Fatalf("the messages differ: sha %x, want %x", sum, want.Sum(nil))
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the reader never saw the end")
	}
	sa := a.Stats()
	if sa.PackedSent == 0 || sa.Retransmitted == 0 {
		t.Fatalf("%d packed packets, %d retransmitted: the test did not exercise packing under loss", sa.PackedSent, sa.Retransmitted)
	}
	t.Logf("%d messages in %d DATA packets (%d packed with %d messages), %d retransmitted; receiver %d dup dropped",
		n, sa.DataSent, sa.PackedSent, sa.PackedMessages, sa.Retransmitted, b.Stats().DupDropped)
}

// TestPackedThenFIN: messages waiting in the send buffer when
// CloseWrite is called all go before the FIN: the reader gets every
// one, then io.EOF, and Writes after it fail.
func TestPackedThenFIN(t *testing.T) {
	leakCheck(t)
	cfg := fastCfg()
	cfg.Window = 2
	a, b, _, _ := newPair(t, cfg, memlink.Config{})
	const n = 100
	for i := 0; i < n; i++ {
		if _, err := a.Write(packMsg(i, 50)); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write([]byte("late")); err == nil {
		t.Fatal("Write after CloseWrite succeeded")
	}
	if st := a.Stats(); st.SendBuffered == 0 {
		t.Fatalf("nothing was buffered (%d DATA packets): the test did not exercise the FIN after buffered messages", st.DataSent)
	}
	buf := make([]byte, 100)
	for i := 0; i < n; i++ {
		k, err := b.Read(buf)
		if err != nil || !bytes.Equal(buf[:k], packMsg(i, 50)) {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	if k, err := b.Read(buf); err != io.EOF {
		t.Fatalf("after the last message: %d, %v; want io.EOF", k, err)
	}
	if st := a.Stats(); st.PackedSent == 0 {
		t.Fatalf("no packed packet among %d DATA packets", st.DataSent)
	}
}

// TestSendBufferBoundsWrite: a full send buffer blocks Write until its
// deadline, and nothing is lost or duplicated by the timeout.
func TestSendBufferBoundsWrite(t *testing.T) {
	leakCheck(t)
	cfg := fastCfg()
	cfg.Window = 2
	cfg.SendBuffer = 1000
	a, b, _, _ := newPair(t, cfg, memlink.Config{})
	msg := bytes.Repeat([]byte{7}, 98) // a record of 100 bytes
	sent := 0
	if err := a.SetWriteDeadline(time.Now().Add(100 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	var err error
	for ; sent < 100; sent++ {
		if _, err = a.Write(msg); err != nil {
			break
		}
	}
	var ne interface{ Timeout() bool }
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Write %d: %v, want a timeout", sent, err)
	}
	if st := a.Stats(); st.SendBufBytes > cfg.SendBuffer || sent > cfg.Window+cfg.SendBuffer/100 {
		t.Fatalf("%d messages accepted, %d bytes buffered: over the bound of %d", sent, st.SendBufBytes, cfg.SendBuffer)
	}
	buf := make([]byte, 200)
	for i := 0; i < sent; i++ {
		if k, err := b.Read(buf); err != nil || k != len(msg) {
			t.Fatalf("message %d: %d, %v", i, k, err)
		}
	}
	if err := b.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if k, err := b.Read(buf); err == nil {
		t.Fatalf("a message more than the %d accepted arrived (%d bytes)", sent, k)
	}
}

// TestHostilePacked: packed packets that lie (a record longer than the
// packet, an empty record, thousands of records, a packed packet that
// is no whole DATA message, an unknown form) are dropped whole and
// counted, with work bounded by the packet's length; the connection
// still takes a good packed packet afterwards.
func TestHostilePacked(t *testing.T) {
	leakCheck(t)
	cfg := fastCfg()
	cfg.Linger = -1
	c, p := newHostileLink(t, cfg, memlink.Config{QueueLen: 1 << 12, MTU: 1 << 16})
	whole := FlagData | FlagFirst | FlagLast | FlagAck
	packed := func(flags Flags, seq uint32, payload []byte) []byte {
		return append(Header{Flags: flags, Seq: seq, Window: 8, Packed: true}.Append(nil), payload...)
	}
	var zeros, ones []byte
	for i := 0; i < 20000; i++ {
		zeros = append(zeros, 0, 0) // 20000 empty records
	}
	for i := 0; i < 20000; i++ {
		ones = appendRecord(ones, []byte{byte(i)}) // 20000 one-byte records, over MaxPacked
	}
	lying := appendRecord(nil, []byte("ok"))
	lying = append(lying, 0xff, 0xff, 'x') // claims 65535 bytes, has 1
	short := appendRecord(nil, []byte("ok"))
	short = append(short, 0x00) // half a length
	past := appendRecord(nil, []byte("ok"))
	past = append(past, 0, 2, 'x') // claims one byte more than is left
	bad := [][]byte{
		packed(whole, 0, zeros),
		packed(whole, 0, ones),
		packed(whole, 0, lying),
		packed(whole, 0, short),
		packed(whole, 0, past),
		packed(whole, 0, []byte{0, 0, 0, 0, 0, 0}),                     // three empty records
		packed(whole, 0, append(appendRecord(nil, []byte("a")), 0, 0)), // a record, then an empty one
		packed(whole, 0, nil),                                          // no record at all
		packed(FlagData|FlagFirst|FlagAck, 0, appendRecord(nil, []byte("x"))), // not a whole message
		packed(FlagAck, 0, nil), // packed without DATA
		append([]byte{Version | 0x20}, Header{Flags: whole}.Append(nil)[1:]...), // unknown form
	}
	for _, b := range bad {
		p.raw(b)
	}
	var good []byte
	for i := 0; i < MaxPacked; i++ {
		good = appendRecord(good, packMsg(i, 30))
	}
	p.raw(packed(whole, 0, good))
	buf := make([]byte, 64)
	for i := 0; i < MaxPacked; i++ {
		k, err := c.Read(buf)
		if err != nil || !bytes.Equal(buf[:k], packMsg(i, 30)) {
			t.Fatalf("good packed packet, message %d: %v %x", i, err, buf[:k])
		}
	}
	st := c.Stats()
	if st.MalformedDropped != uint64(len(bad)) || st.PackedReceived != 1 || st.PacketsReceived != 1 {
		t.Fatalf("malformed %d (want %d), packed received %d, packets received %d", st.MalformedDropped, len(bad), st.PackedReceived, st.PacketsReceived)
	}
}

// TestCongestionWindowCountsBytes: the congestion window counts a
// packet by its bytes in 1500-byte segments, at least one: a 64 KiB
// packet fills a 10-segment window alone, its ACK opens the window in
// slow start by its 43 segments, and the pacer charges it as many
// tokens; a 100-byte packet counts as one.
func TestCongestionWindowCountsBytes(t *testing.T) {
	l := &nullLower{mtu: 1 << 16, done: make(chan struct{})}
	defer close(l.done)
	c, err := newConn(l, Config{Reliable: true, PeerTimeout: -1, KeepAlive: -1, Linger: -1})
	if err != nil {
		t.Fatal(err)
	}
	close(c.readerDone)
	defer c.Close()
	now := c.clk.Now()
	var out outbox
	c.mu.Lock()
	defer c.mu.Unlock()
	if w := c.cc.window(); w != ccInitialWindow {
		t.Fatalf("initial window %d", w)
	}
	big := make([]byte, 64000)
	c.cc.setRate(time.Millisecond) // paced from here
	c.cc.refill(now)
	tokens := c.cc.tokens
	c.sendDataLocked(now, FlagData|FlagFirst|FlagLast, false, big, &out)
	units := float64(HeaderLen+len(big)) / ccSegment
	if got := c.inflightLocked(); got != units {
		t.Fatalf("one %d-byte packet in flight counts %.2f segments, want %.2f", HeaderLen+len(big), got, units)
	}
	if c.canSendLocked() {
		t.Fatal("a 43-segment packet in flight left room in a 10-segment window")
	}
	if d := tokens - c.cc.tokens; d < units-1e-9 || d > units+1e-9 {
		t.Fatalf("the pacer charged %.2f tokens for %.2f segments", d, units)
	}
	c.cc.cwndLimited = true
	c.ackNewLocked(now.Add(time.Millisecond), c.sndNxt, false)
	if want := ccInitialWindow + units; c.cc.cwnd < want-1e-9 || c.cc.cwnd > want+1e-9 {
		t.Fatalf("slow start after acknowledging %.2f segments: window %.2f, want %.2f", units, c.cc.cwnd, want)
	}
	if c.overBytes != 0 || c.inflightLocked() != 0 {
		t.Fatalf("after the ACK: %d bytes over, %.2f in flight", c.overBytes, c.inflightLocked())
	}
	c.sendDataLocked(now, FlagData|FlagFirst|FlagLast, false, big[:100], &out)
	if got := c.inflightLocked(); got != 1 {
		t.Fatalf("a 116-byte packet counts %.2f segments, want 1", got)
	}
	for _, p := range out.pkts {
		c.putBuf(p)
	}
}

// FuzzPacked checks the packed payload decoder: it never panics, accepts
// only 1..MaxPacked non-empty records that fill the payload exactly,
// and what it accepts re-encodes to the same bytes.
func FuzzPacked(f *testing.F) {
	f.Add([]byte{})
	f.Add(appendRecord(nil, []byte("one")))
	f.Add(appendRecord(appendRecord(nil, []byte("one")), []byte("two")))
	f.Add([]byte{0, 0})
	f.Add([]byte{0xff, 0xff, 1})
	f.Add([]byte{0, 5, 1, 2})
	f.Add([]byte{0, 2, 'x'})
	f.Add([]byte{0, 1})
	var many []byte
	for i := 0; i <= MaxPacked; i++ {
		many = appendRecord(many, []byte{byte(i)})
	}
	f.Add(many)
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := checkPacked(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			// The whole packet fails the same way.
			pkt := append(Header{Flags: FlagData | FlagFirst | FlagLast | FlagAck, Packed: true}.Append(nil), b...)
			if _, _, err := ParseHeader(pkt); err == nil {
				t.Fatal("ParseHeader accepted what checkPacked refused")
			}
			return
		}
		if n < 1 || n > MaxPacked {
			t.Fatalf("%d records accepted", n)
		}
		var again []byte
		for p, k := b, 0; len(p) > 0; k++ {
			var rec []byte
			rec, p = nextRecord(p)
			if len(rec) == 0 || k >= n {
				t.Fatalf("record %d of %d: %d bytes", k, n, len(rec))
			}
			again = appendRecord(again, rec)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("round trip: %x became %x", b, again)
		}
	})
}

// TestPackedRandomSizes: a bulk writer of messages of random sizes,
// some packed, some plain, some fragmented, over a 64 KiB MTU link: the
// receiver gets each whole, in order.
func TestPackedRandomSizes(t *testing.T) {
	leakCheck(t)
	a, b, _, _ := newPair(t, fastCfg(), memlink.Config{QueueLen: 4096, MTU: 1 << 16})
	rng := rand.New(rand.NewSource(3))
	sizes := make([]int, 3000)
	for i := range sizes {
		sizes[i] = 1 + rng.Intn(5000)
	}
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 1<<16)
		for i, n := range sizes {
			k, err := b.Read(buf)
			if err != nil || k != n || k >= 4 && binary.BigEndian.Uint32(buf) != uint32(i) {
				done <- errors.New("message out of order, cut or merged")
				return
			}
		}
		done <- nil
	}()
	go func() { // a reader that stops closes the window: the writer must not hold the test
		for i, n := range sizes {
			m := make([]byte, n)
			if n >= 4 {
				binary.BigEndian.PutUint32(m, uint32(i))
			}
			if _, err := a.Write(m); err != nil {
				return // the test failed and closed the Conns
			}
		}
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestCCLargePacketsKeepQueueShort: in the simulator, a bulk flow of
// 9000-byte packets (six segments each, as packed packets are) over the
// 100 Mbit/s bottleneck fills it and keeps the queue as short, in time,
// as 1400-byte packets do: the window counts their bytes. Counted as one
// packet each, CCQueue packets queued would be six times as long.
func TestCCLargePacketsKeepQueueShort(t *testing.T) {
	const mtu = 9016
	n := newSimNet(simRate, simRTT, simLimit, 0)
	f := n.addFlowMTU(t, simCfg(n.sim), nil, mtu)
	n.run(2 * time.Second)
	n.fwd.ResetStats()
	r := n.rates(3 * time.Second)
	st := n.fwd.Stats()
	t.Logf("goodput %.2f Mbit/s; queue mean %v max %v; drops %d; cwnd %d segments", mbps(r[0]), st.MeanQueueDelay(), st.QueueDelayMax, st.Dropped, f.snd.Stats().Cwnd)
	if r[0] < 0.9*simRate*float64(mtu-HeaderLen)/mtu {
		t.Errorf("goodput %.2f Mbit/s, want >= 90%% of %d Mbit/s", mbps(r[0]), simRate/mbit)
	}
	// DefaultCCQueue segments of 1500 bytes are 0.96 ms at 100 Mbit/s.
	if st.MeanQueueDelay() > 2*time.Millisecond {
		t.Errorf("mean queueing delay %v: the window counts packets, not bytes", st.MeanQueueDelay())
	}
}

// blockingLower holds every DATA packet written while blocked, until
// released: a lower flow whose channel is full.
type blockingLower struct {
	*memlink.End
	mu      sync.Mutex
	blocked bool
	release chan struct{}
	held    atomic.Int64 // writes waiting
}

func (l *blockingLower) WritePacket(b []byte) error {
	l.mu.Lock()
	block, ch := l.blocked, l.release
	l.mu.Unlock()
	if h, _, err := ParseHeader(b); block && err == nil && h.Flags&FlagData != 0 {
		l.held.Add(1)
		<-ch
		l.held.Add(-1)
	}
	return l.End.WritePacket(b)
}

// TestWaitingWriterSendsItself: with a writer waiting for room in the
// send buffer, the ACK that opens the window wakes the writer, which
// sends the buffered packets itself; the reader goes on reading even
// when the lower blocks those writes (a full channel), so ACKs and the
// peer's data keep coming in. Sending from the reader there stalled ACK
// processing behind the lower (two flows on two shaped paths lost a
// third of their rate to timeouts).
func TestWaitingWriterSendsItself(t *testing.T) {
	leakCheck(t)
	la, lb := memlink.NewPair(memlink.Config{QueueLen: 1024})
	low := &blockingLower{End: la, release: make(chan struct{})}
	cfg := fastCfg()
	cfg.Window = 4
	cfg.SendBuffer = 200
	cfg.NoDelay = true // four packets fill the window
	cfg.Linger = -1
	cfg.Congestion = CongestionOff
	c, err := New(low, cfg)
	if err != nil {
		t.Fatal(err)
	}
	released := false
	release := func() {
		if !released {
			released = true
			close(low.release)
		}
	}
	t.Cleanup(func() {
		release()
		lb.Close()
		c.Close()
	})
	p := rawPeer{t, lb}
	wrote := make(chan error, 1)
	go func() {
		for i := 0; i < 20; i++ {
			if _, err := c.Write(packMsg(i, 40)); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- nil
	}()
	eventually(t, "a writer waiting for room", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.writerWaiting && c.sndNxt-c.sndUna == 4
	})
	low.mu.Lock()
	low.blocked = true
	low.mu.Unlock()
	// The peer acknowledges the four packets and sends a message; then
	// another. Both must be read while the sender's writes are held.
	p.send(Header{Flags: FlagData | FlagFirst | FlagLast | FlagAck, Seq: 0, Ack: 4, Window: 4}, "one")
	eventually(t, "the woken writer held in the lower", func() bool { return low.held.Load() > 0 })
	p.send(Header{Flags: FlagData | FlagFirst | FlagLast | FlagAck, Seq: 1, Ack: 4, Window: 4}, "two")
	buf := make([]byte, 16)
	for _, want := range []string{"one", "two"} {
		if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		k, err := c.Read(buf)
		if err != nil || string(buf[:k]) != want {
			t.Fatalf("Read while the sender's writes are held = %q, %v; want %q (the reader is stuck sending)", buf[:k], err, want)
		}
	}
	release()
}

// holdPeer is a Conn with the test as its peer on a memlink of the given
// MTU, and a reader of the DATA packets the Conn sends.
func holdPeer(t *testing.T, cfg Config, mtu int) (*Conn, rawPeer, func() (Header, []byte)) {
	t.Helper()
	leakCheck(t)
	cfg.Reliable, cfg.InOrder = true, true
	cfg.Linger, cfg.PeerTimeout = -1, time.Hour
	c, peer := newHostileLink(t, cfg, memlink.Config{QueueLen: 1 << 12, MTU: mtu})
	buf := make([]byte, 1<<16)
	next := func() (Header, []byte) {
		t.Helper()
		for {
			n, err := peer.e.ReadPacket(buf)
			if err != nil {
				t.Fatal(err)
			}
			h, p, err := ParseHeader(buf[:n])
			if err != nil {
				t.Fatal(err)
			}
			if h.Flags&FlagData != 0 {
				return h, append([]byte(nil), p...)
			}
		}
	}
	return c, peer, next
}

// TestHoldWhileTwoInFlight: with two packets in flight, small messages
// wait in the send buffer instead of leaving one by one, and the next
// ACK sends them as one packed packet; with NoDelay each goes at once.
func TestHoldWhileTwoInFlight(t *testing.T) {
	msgs := make([][]byte, 10)
	for i := range msgs {
		msgs[i] = packMsg(i, 100)
	}
	t.Run("hold", func(t *testing.T) {
		c, peer, next := holdPeer(t, Config{}, 1500)
		for _, m := range msgs {
			if _, err := c.Write(m); err != nil {
				t.Fatal(err)
			}
		}
		h0, p0 := next()
		h1, p1 := next()
		if h0.Packed || h1.Packed || !bytes.Equal(p0, msgs[0]) || !bytes.Equal(p1, msgs[1]) {
			t.Fatalf("the first two messages did not go alone: %+v %+v", h0, h1)
		}
		if st := c.Stats(); st.DataSent != 2 || st.SendBuffered != 8 {
			t.Fatalf("two packets in flight: %d DATA packets sent, %d messages buffered; want 2 and 8", st.DataSent, st.SendBuffered)
		}
		peer.send(Header{Flags: FlagAck, Window: 64, Ack: h1.Seq + 1}, "")
		h, p := next()
		if !h.Packed || h.Seq != h1.Seq+1 {
			t.Fatalf("after the ACK: %+v, want the packed packet %d", h, h1.Seq+1)
		}
		for i := 2; i < len(msgs); i++ {
			rec, rest := nextRecord(p)
			if !bytes.Equal(rec, msgs[i]) {
				t.Fatalf("record %d of the packed packet: %d bytes, want message %d", i-2, len(rec), i)
			}
			p = rest
		}
		if len(p) != 0 {
			t.Fatalf("%d bytes after the eight records", len(p))
		}
	})
	t.Run("SetNoDelay", func(t *testing.T) {
		c, _, next := holdPeer(t, Config{}, 1500)
		for _, m := range msgs {
			if _, err := c.Write(m); err != nil {
				t.Fatal(err)
			}
		}
		next()
		next()
		c.SetNoDelay(true) // sends what the hold kept, without an ACK
		if h, _ := next(); !h.Packed {
			t.Fatalf("after SetNoDelay: %+v, want the eight held messages packed", h)
		}
		if st := c.Stats(); st.SendBuffered != 0 || st.PackedMessages != 8 {
			t.Fatalf("after SetNoDelay: %d messages buffered, %d sent packed; want 0 and 8", st.SendBuffered, st.PackedMessages)
		}
	})
	t.Run("NoDelay", func(t *testing.T) {
		c, _, next := holdPeer(t, Config{NoDelay: true}, 1500)
		for _, m := range msgs {
			if _, err := c.Write(m); err != nil {
				t.Fatal(err)
			}
		}
		for i, m := range msgs {
			if h, p := next(); h.Packed || !bytes.Equal(p, m) {
				t.Fatalf("packet %d: %+v, %d bytes; want message %d alone", i, h, len(p), i)
			}
		}
		if st := c.Stats(); st.SendBuffered != 0 {
			t.Fatalf("NoDelay: %d messages buffered", st.SendBuffered)
		}
	})
}

// TestHoldSendsFullPackets: a message that fills a packet (two would
// not fit in the MTU) is never held for a fuller one.
func TestHoldSendsFullPackets(t *testing.T) {
	c, _, next := holdPeer(t, Config{Congestion: CongestionOff}, 1500)
	m := bytes.Repeat([]byte{7}, 1000)
	for range 5 {
		if _, err := c.Write(m); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		if h, p := next(); h.Packed || !bytes.Equal(p, m) {
			t.Fatalf("packet %d: %+v, %d bytes; want the 1000-byte message alone", i, h, len(p))
		}
	}
	if st := c.Stats(); st.SendBuffered != 0 || st.DataSent != 5 {
		t.Fatalf("%d DATA packets, %d messages buffered; want 5 and 0", st.DataSent, st.SendBuffered)
	}
}

// TestHoldSilentPeer: a peer that never acknowledges cannot make the
// hold keep messages without bound: what waits stays within the send
// buffer, Write fails at its deadline, and a full buffer went out as far
// as the window let it, though no packet was full (the buffer is
// smaller than one).
func TestHoldSilentPeer(t *testing.T) {
	c, _, _ := holdPeer(t, Config{SendBuffer: 1000}, 1500) // less than a packet: never full
	c.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
	var err error
	for i := 0; err == nil && i < 10000; i++ {
		_, err = c.Write(packMsg(i, 100))
	}
	var ne interface{ Timeout() bool }
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("writing to a silent peer: %v, want a timeout", err)
	}
	st := c.Stats()
	if st.SendBufBytes > 1000 {
		t.Fatalf("%d bytes held for a silent peer, over the 1000-byte send buffer", st.SendBufBytes)
	}
	if st.DataSent <= 2 || st.PackedSent == 0 {
		t.Fatalf("%d DATA packets (%d packed): a full buffer was held", st.DataSent, st.PackedSent)
	}
}
