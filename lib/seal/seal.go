// Package seal is the cryptography of end-to-end flow encryption: the
// in-band key agreement two flow libraries run on a new flow
// (handshake.go), its variant that proves a layer secret for
// authenticated layers (psk.go, with the layer secret files), and the
// per-packet AEAD with counter nonces, a replay window and key rollover
// (this file).
//
// A sealed packet is
//
//	0   kind (1): KindData
//	1   counter (8, big endian): the packet's number in its direction
//	9   AES-256-GCM ciphertext of the plaintext, then the 16-byte tag
//
// The nonce is four zero bytes and the counter; the kind and counter
// bytes are the additional data, so a changed header fails like a
// changed payload. Each direction has its own key.
//
// Key epochs. The counter space of a direction is cut into epochs of
// RekeyAfter counters: epoch e = counter / RekeyAfter uses key k_e =
// HKDF(k_{e-1}, "rekey"), a one-way step, so no extra exchange is
// needed, both ends know which key a packet used from its counter
// alone, and a key once left behind is erased (a later compromise of
// the flow's state does not open earlier epochs). A sender moves to
// the next epoch when its key sealed RekeyAfter packets or is
// RekeyAfterTime (2 minutes, WireGuard's REKEY_AFTER_TIME) old,
// whichever comes first: on time it jumps its counter to the next
// epoch's first value. The key's age is kept by a timer on an injected
// clock (NewSessionClock), armed when the key takes over, that marks it
// old when RekeyAfterTime has passed: sealing and opening read no clock
// per packet (a clock read costs 0.1 to 0.5 microseconds on a virtual
// machine, as much as sealing a small packet; Close stops the timers).
// An idle sender does not step, so its first packet after a long pause
// moves one epoch, not one per 2 minutes of silence. The wire format
// is unchanged: a time step is only a counter jump. A receiver of the
// version before time steps follows a step of one epoch, but not a gap
// of several, and drops packets late across a jump; both ends of a
// flow normally run the same flow library.
//
// The receiver follows a packet of a later epoch up to MaxEpochSkip
// (64) epochs ahead: it derives the keys up to that epoch (each from
// the one before, kept in a look-ahead of at most 64 keys so each is
// derived once however many packets claim it), tries the packet, and
// only if it authenticates makes that epoch current, erasing the keys
// it passed. A sender steps into an epoch the receiver never saw only
// while its packets are lost, one epoch per 2 minutes of sealing into
// the outage (an adjacency keeps sealing keepalives through one). To
// keep that bounded whatever the outage's length, a sender whose
// session has opened nothing from the peer since its last time step
// takes at most MaxUnheardSteps (32) such steps in a row, then keeps
// its key (up to the packet limit) until it hears the peer again: an
// outage of both directions leaves the receiver at most 32 epochs
// behind, and 64 leave room for packets in flight around it. A
// session that never heard its peer (a one-way flow) keeps stepping:
// such a direction survives an outage of about two hours (64 epochs),
// not more; so does one direction of an asymmetric outage (the sender
// hears the peer, the peer hears nothing). The bound of 64 is also what
// a forger costs: a packet claiming a later epoch makes the receiver
// derive at most 64 keys (a few microseconds each, each once per epoch
// however many packets claim it) and one AES key schedule before it
// fails (about 1.5 us, BenchmarkOpenForgedAhead); a packet further
// ahead is dropped unopened and counted (as an authentication failure,
// and in Stats.Ahead; ErrAhead). Either
// way the session stays as it was: only an authentic packet moves the
// receiver on.
//
// Each epoch has its own replay window of WindowSize packets
// (WireGuard-style sliding window, RFC 6479): a packet older than its
// window, or seen before, is dropped and counted, as is one that fails
// authentication or is too short. After a rollover the previous
// epoch's key and window stay for PreviousGrace (10 s), for packets
// reordered across it, and no longer (dropped by a timer when the
// grace is over, or at the next rollover); a packet of any older
// epoch is dropped as too old. None of these ever reaches the
// application and none ends the flow. A sender stops at RejectAfter
// packets (ErrExhausted); the flow must then be allocated anew.
//
// Limits follow WireGuard's model, with the per-key limit set from
// AES-GCM's data bound (2^28 packets of up to 1400 bytes stay well
// under the 2^34.5 blocks per key of RFC 8446 section 5.5) instead of
// WireGuard's 2^60. Unlike WireGuard, a rollover is no new key
// exchange: the ratchet gives forward secrecy between epochs (a key
// captured now does not open earlier epochs' traffic), not healing (it
// does open the later epochs of the same flow, until the flow is
// allocated anew). Erasing covers the raw keys this package holds; the
// AES key schedules inside the standard library's AEAD values cannot
// be wiped and are left to the garbage collector.
//
// What it protects, and what not: see the threat model in
// docs/architecture.md. In short, the IPCPs, shims and sockets below a
// sealed flow see only kind, counter, length and timing; without a
// pinned server key (handshake.go) the exchange is unauthenticated and
// an active man in the middle at allocation time can read everything.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ouro-net/ouro/lib/clock"
)

// Packet kinds: the first byte of everything an encrypting flow sends.
const (
	KindHello byte = 0x51 // client's handshake message
	KindReply byte = 0x52 // server's handshake message
	KindData  byte = 0x53 // a sealed packet
)

const (
	// HeaderLen is the kind and counter in front of a sealed packet.
	HeaderLen = 1 + 8
	// TagLen is the AEAD tag after it.
	TagLen = 16
	// Overhead is what sealing adds to a packet.
	Overhead = HeaderLen + TagLen
	// KeyLen is the size of a direction's key (AES-256).
	KeyLen = 32
	// WindowSize is how many packets back the replay window reaches.
	WindowSize = 2048
	// RekeyAfter is how many packets each key seals before the next
	// epoch's key takes over.
	RekeyAfter = 1 << 28
	// RekeyAfterTime is how long a sender uses one key: the first
	// packet it seals after that starts the next epoch (WireGuard's
	// REKEY_AFTER_TIME).
	RekeyAfterTime = 120 * time.Second
	// MaxEpochSkip is how many epochs ahead of its own a receiver
	// follows a packet; a packet further ahead is dropped unopened and
	// counted (Stats.Ahead). See the package doc for why 64.
	MaxEpochSkip = 64
	// MaxUnheardSteps is how many time steps in a row a sender takes
	// while its session opens nothing from the peer (see the package
	// doc); then it waits for the peer, or for the packet limit.
	MaxUnheardSteps = MaxEpochSkip / 2
	// PreviousGrace is how long a receiver keeps the previous epoch's
	// key after it moved on, for packets reordered across the
	// rollover; then the key is dropped.
	PreviousGrace = 10 * time.Second
	// RejectAfter is the most packets one direction ever seals.
	RejectAfter = 1<<64 - 1<<13 - 1
)

// Errors of sealing and opening.
var (
	// ErrExhausted means a direction sealed RejectAfter packets.
	ErrExhausted = errors.New("seal: packet counter exhausted; allocate a new flow")
	// ErrShort means a packet is too short to be a sealed packet.
	ErrShort = errors.New("seal: packet too short")
	// ErrAuth means a packet failed authentication.
	ErrAuth = errors.New("seal: packet failed authentication")
	// ErrReplay means a packet was seen before or is older than the
	// window (or of an epoch whose key is gone).
	ErrReplay = errors.New("seal: packet replayed or too old")
	// ErrAhead means a packet claims an epoch more than MaxEpochSkip
	// ahead of the receiver's.
	ErrAhead = errors.New("seal: packet too many key epochs ahead")
)

// Stats counts a flow's sealed traffic.
type Stats struct {
	Sealed   uint64 // packets sealed and sent
	Opened   uint64 // packets opened and delivered
	Short    uint64 // packets dropped: too short or not a sealed packet
	Auth     uint64 // packets dropped: failed authentication (or could not be tried: Ahead)
	Replayed uint64 // packets dropped: replayed, older than the window, or of a forgotten epoch
	// Ahead counts the packets of Auth that were dropped unopened, more
	// than MaxEpochSkip epochs ahead of the receiver.
	Ahead  uint64
	Rekeys uint64 // key epochs stepped, both directions
	// Handshake counts handshake messages dropped on this flow:
	// malformed ones, and repeats after the handshake.
	Handshake uint64
}

// Dropped is the sum of the drop counters.
func (s Stats) Dropped() uint64 { return s.Short + s.Auth + s.Replayed + s.Handshake }

type counters struct {
	sealed, opened, short, auth, replayed, ahead, rekeys, handshake atomic.Uint64
}

// ratchet sets dst to the key of the epoch after src's: one HKDF step,
// one way.
func ratchet(dst, src *[KeyLen]byte) {
	k, err := hkdf.Key(sha256.New, src[:], nil, "ouro flow seal rekey", KeyLen)
	if err != nil {
		panic(err) // only for a key length HKDF cannot give
	}
	copy(dst[:], k)
	clear(k)
}

func newAEAD(key []byte) cipher.AEAD {
	b, err := aes.NewCipher(key)
	if err != nil {
		panic(err) // keys are always KeyLen
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		panic(err)
	}
	return g
}

// Sealer seals one direction's packets. It is safe for concurrent use.
type Sealer struct {
	mu    sync.Mutex
	clk   clock.Clock
	aead  cipher.AEAD
	key   [KeyLen]byte
	epoch uint64    // the epoch of key
	since time.Time // when key took over
	// old is set by the age timer once key is RekeyAfterTime old (or
	// older); a time step clears it and arms the timer again.
	old bool
	age clock.Timer // nil once the session is closed
	// Time steps taken since the session last opened a packet (heard:
	// the opened count at the last step).
	unheard int
	heard   uint64
	next    uint64 // counter of the next packet
	limit   uint64 // packets per key (RekeyAfter; smaller in tests)
	nonce   [12]byte
	c       *counters
}

// window is a replay window (RFC 6479): top is the highest counter
// accepted + 1. The bitmap holds twice the window, so the words the
// window spans never wrap onto each other.
type window struct {
	top  uint64
	bits [2 * WindowSize / 64]uint64
}

// Opener opens the other direction's packets, with a replay window.
// It is safe for concurrent use.
type Opener struct {
	mu    sync.Mutex
	clk   clock.Clock
	epoch uint64
	cur   cipher.AEAD
	key   [KeyLen]byte // the current epoch's key
	win   window       // the current epoch's counters
	// The previous epoch's AEAD and window, for packets late across a
	// rollover, until prevEnd, when the grace timer drops them.
	prev    cipher.AEAD
	pwin    window
	prevEnd time.Time
	grace   clock.Timer // nil until the first rollover, and once closed
	closed  bool
	// Look-ahead: ahead[i] is the key of epoch epoch+1+i, for i <
	// nAhead, derived when a packet first claimed a later epoch (so
	// forged claims cost each derivation once per epoch, not once per
	// packet), and cand the AEAD of epoch candE (0: none).
	ahead  [MaxEpochSkip][KeyLen]byte
	nAhead int
	cand   cipher.AEAD
	candE  uint64
	limit  uint64
	nonce  [12]byte
	c      *counters
}

// Session is the sealing state of one flow end: a Sealer for what it
// sends and an Opener for what it receives.
type Session struct {
	Sealer
	Opener
	c counters
}

// NewSession makes the session of one end from the two direction keys,
// on the real clock. limit is the packets per key (0: RekeyAfter);
// tests make it small.
func NewSession(sendKey, recvKey []byte, limit uint64) *Session {
	return NewSessionClock(sendKey, recvKey, limit, clock.Real())
}

// NewSessionClock is NewSession with the clock that times key epochs
// (RekeyAfterTime) and the previous key's grace (PreviousGrace).
func NewSessionClock(sendKey, recvKey []byte, limit uint64, clk clock.Clock) *Session {
	if limit == 0 {
		limit = RekeyAfter
	}
	s := &Session{}
	s.Sealer = Sealer{clk: clk, aead: newAEAD(sendKey), limit: limit, c: &s.c}
	copy(s.Sealer.key[:], sendKey)
	s.Sealer.since = clk.Now()
	s.Sealer.age = clk.AfterFunc(RekeyAfterTime, s.Sealer.aged)
	s.Opener = Opener{clk: clk, cur: newAEAD(recvKey), limit: limit, c: &s.c}
	copy(s.Opener.key[:], recvKey)
	return s
}

// SetClock makes clk time the session's key epochs and the previous
// key's grace from now on; the current epoch's age starts again at
// clk.Now(). A flow library may call it at any time before Close.
func (s *Session) SetClock(clk clock.Clock) {
	s.Sealer.mu.Lock()
	if s.Sealer.age != nil {
		s.Sealer.age.Stop()
		s.Sealer.clk, s.Sealer.since, s.Sealer.old = clk, clk.Now(), false
		s.Sealer.age = clk.AfterFunc(RekeyAfterTime, s.Sealer.aged)
	}
	s.Sealer.mu.Unlock()
	o := &s.Opener
	o.mu.Lock()
	if !o.closed {
		if o.grace != nil {
			o.grace.Stop()
			o.grace = nil
		}
		o.clk = clk
		if o.prev != nil {
			o.prevEnd = clk.Now().Add(PreviousGrace)
			o.grace = clk.AfterFunc(PreviousGrace, o.graceOver)
		}
	}
	o.mu.Unlock()
}

// Close stops the session's timers (the key's age, the previous key's
// grace); a flow library calls it when the flow ends. A closed session
// still seals and opens, but no longer steps to a new key on time and
// keeps a previous key it holds.
func (s *Session) Close() {
	s.Sealer.mu.Lock()
	if s.Sealer.age != nil {
		s.Sealer.age.Stop()
		s.Sealer.age = nil
	}
	s.Sealer.mu.Unlock()
	s.Opener.mu.Lock()
	s.Opener.closed = true
	if s.Opener.grace != nil {
		s.Opener.grace.Stop()
		s.Opener.grace = nil
	}
	s.Opener.mu.Unlock()
}

// aged is the age timer's callback: it marks the key old if it is
// (a callback of an earlier arming, late, finds a younger key and
// leaves it).
func (s *Sealer) aged() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.age != nil && s.clk.Now().Sub(s.since) >= RekeyAfterTime {
		s.old = true
	}
}

// graceOver is the grace timer's callback: it drops the previous
// epoch's key once its grace is over.
func (o *Opener) graceOver() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.prev != nil && !o.clk.Now().Before(o.prevEnd) {
		o.prev, o.pwin = nil, window{}
	}
}

// Stats returns the session's counters.
func (s *Session) Stats() Stats {
	return Stats{
		Sealed: s.c.sealed.Load(), Opened: s.c.opened.Load(), Short: s.c.short.Load(),
		Auth: s.c.auth.Load(), Replayed: s.c.replayed.Load(), Ahead: s.c.ahead.Load(),
		Rekeys: s.c.rekeys.Load(), Handshake: s.c.handshake.Load(),
	}
}

// CountHandshake counts a handshake message dropped on the flow.
func (s *Session) CountHandshake() { s.c.handshake.Add(1) }

// CountShort counts a packet dropped because it is no sealed packet.
func (s *Session) CountShort() { s.c.short.Add(1) }

// Seal appends the sealed form of plain to dst and returns it. With
// cap(dst)-len(dst) >= len(plain)+Overhead it does not allocate
// (except at a key rollover).
func (s *Sealer) Seal(dst, plain []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ctr := s.next
	if ctr/s.limit == s.epoch && s.old && s.mayStep() {
		// The key is old: jump the counter to the next epoch's first.
		e := s.epoch + 1
		if e > RejectAfter/s.limit {
			return dst, ErrExhausted
		}
		ctr = e * s.limit
	}
	if ctr >= RejectAfter {
		return dst, ErrExhausted
	}
	if e := ctr / s.limit; e != s.epoch {
		// e is always s.epoch+1: counters only grow, one at a time or
		// to the next epoch's first.
		ratchet(&s.key, &s.key)
		s.aead = newAEAD(s.key[:])
		s.epoch = e
		s.since, s.old = s.clk.Now(), false
		if s.age != nil {
			s.age.Reset(RekeyAfterTime)
		}
		s.c.rekeys.Add(1)
	}
	s.next = ctr + 1
	hdr := len(dst)
	dst = append(dst, KindData)
	dst = binary.BigEndian.AppendUint64(dst, ctr)
	binary.BigEndian.PutUint64(s.nonce[4:], ctr)
	dst = s.aead.Seal(dst, s.nonce[:], plain, dst[hdr:hdr+HeaderLen])
	s.c.sealed.Add(1)
	return dst, nil
}

// mayStep reports whether the sender may take a time step now: unless
// the session has heard from the peer since its last step (or never
// heard anything: a one-way flow), it takes at most MaxUnheardSteps in
// a row, so an outage of both directions leaves the peer's receiver at
// most that many epochs behind, well inside MaxEpochSkip.
func (s *Sealer) mayStep() bool {
	if op := s.c.opened.Load(); op != s.heard || op == 0 {
		s.heard, s.unheard = op, 0
	}
	if s.unheard >= MaxUnheardSteps {
		return false
	}
	s.unheard++
	return true
}

// Open authenticates the sealed packet p and decrypts it in place,
// returning the plaintext (a prefix of p[HeaderLen:]). A packet that is
// short, forged, replayed, too old or too far ahead gives an error and
// is counted; nothing of it may be used. It does not allocate (except
// when a packet claims a later key epoch).
func (o *Opener) Open(p []byte) ([]byte, error) { return o.open(nil, p) }

// OpenTo is Open that decrypts into dst instead of in place, leaving p
// as it was: the plaintext is dst[:n], written in the same pass that
// authenticates it, so a reader with its own buffer saves a copy. dst
// must not overlap p. A dst shorter than the plaintext
// (len(p)-Overhead) gives io.ErrShortBuffer, and the packet is neither
// opened nor counted: open it with Open instead. On any other error
// dst's first len(p)-Overhead bytes may have been overwritten (with
// zeros, by the standard library's AES-GCM) and must not be used.
func (o *Opener) OpenTo(dst, p []byte) ([]byte, error) {
	if len(p) >= Overhead && len(dst) < len(p)-Overhead {
		return nil, io.ErrShortBuffer
	}
	return o.open(dst[:0], p)
}

// open is Open (into nil: in place) and OpenTo (into dst, empty with
// room for the plaintext).
func (o *Opener) open(into, p []byte) ([]byte, error) {
	if len(p) < Overhead || p[0] != KindData {
		o.c.short.Add(1)
		return nil, ErrShort
	}
	ctr := binary.BigEndian.Uint64(p[1:HeaderLen])
	o.mu.Lock()
	defer o.mu.Unlock()
	if ctr >= RejectAfter {
		o.c.replayed.Add(1)
		return nil, ErrReplay
	}
	e := ctr / o.limit
	var a cipher.AEAD
	var w *window
	switch {
	case e == o.epoch:
		a, w = o.cur, &o.win
	case e+1 == o.epoch && o.prev != nil:
		a, w = o.prev, &o.pwin
	case e < o.epoch:
		// Its key is gone: older than the previous epoch, or the
		// previous epoch's grace is over.
		o.c.replayed.Add(1)
		return nil, ErrReplay
	case e-o.epoch > MaxEpochSkip:
		// Dropped unopened: no honest sender gets that far ahead
		// (package doc), and trying would cost unbounded work.
		o.c.auth.Add(1)
		o.c.ahead.Add(1)
		return nil, ErrAhead
	default:
		a = o.candidate(e - o.epoch)
	}
	if w != nil && !w.fresh(ctr) {
		o.c.replayed.Add(1)
		return nil, ErrReplay
	}
	binary.BigEndian.PutUint64(o.nonce[4:], ctr)
	if into == nil {
		into = p[HeaderLen:HeaderLen]
	}
	out, err := a.Open(into, o.nonce[:], p[HeaderLen:], p[:HeaderLen])
	if err != nil {
		o.c.auth.Add(1)
		return nil, ErrAuth
	}
	if w == nil {
		// The first authentic packet of a later epoch moves us on.
		o.advance(e - o.epoch)
		w = &o.win
	}
	w.accept(ctr)
	o.c.opened.Add(1)
	return out, nil
}

// candidate returns the AEAD of epoch o.epoch+k (1 <= k <=
// MaxEpochSkip), deriving the keys up to it that are not derived yet.
func (o *Opener) candidate(k uint64) cipher.AEAD {
	for uint64(o.nAhead) < k {
		src := &o.key
		if o.nAhead > 0 {
			src = &o.ahead[o.nAhead-1]
		}
		ratchet(&o.ahead[o.nAhead], src)
		o.nAhead++
	}
	if o.cand == nil || o.candE != o.epoch+k {
		o.cand, o.candE = newAEAD(o.ahead[k-1][:]), o.epoch+k
	}
	return o.cand
}

// advance makes epoch o.epoch+k current (its AEAD is o.cand), keeps
// the one before it for PreviousGrace, and erases the keys left behind.
func (o *Opener) advance(k uint64) {
	if k == 1 {
		o.prev, o.pwin = o.cur, o.win
	} else {
		// The epochs in between were never seen: their packets were
		// lost. Only the one just before the new epoch stays open,
		// with an empty window, for packets reordered across the
		// rollover.
		o.prev, o.pwin = newAEAD(o.ahead[k-2][:]), window{}
	}
	if !o.closed {
		o.prevEnd = o.clk.Now().Add(PreviousGrace)
		if o.grace == nil {
			o.grace = o.clk.AfterFunc(PreviousGrace, o.graceOver)
		} else {
			o.grace.Reset(PreviousGrace)
		}
	}
	o.cur, o.cand, o.candE = o.cand, nil, 0
	o.key = o.ahead[k-1]
	n := o.nAhead
	copy(o.ahead[:], o.ahead[k:n])
	clear(o.ahead[n-int(k) : n])
	o.nAhead = n - int(k)
	o.win = window{}
	o.epoch += k
	o.c.rekeys.Add(k)
}

// fresh reports whether ctr is inside the window and not yet seen.
func (w *window) fresh(ctr uint64) bool {
	if ctr >= w.top {
		return true
	}
	if w.top-ctr > WindowSize {
		return false
	}
	i := (ctr / 64) % uint64(len(w.bits))
	return w.bits[i]&(1<<(ctr%64)) == 0
}

// accept marks ctr seen, sliding the window forward if needed.
func (w *window) accept(ctr uint64) {
	n := uint64(len(w.bits))
	if ctr >= w.top {
		if w.top > 0 {
			last, to := (w.top-1)/64, ctr/64
			if to-last >= n {
				clear(w.bits[:])
			} else {
				for i := last + 1; i <= to; i++ {
					w.bits[i%n] = 0
				}
			}
		}
		w.top = ctr + 1
	}
	w.bits[(ctr/64)%n] |= 1 << (ctr % 64)
}

// String describes the stats for tools.
func (s Stats) String() string {
	return fmt.Sprintf("sealed %d opened %d dropped %d (short %d auth %d (ahead %d) replay %d handshake %d) rekeys %d",
		s.Sealed, s.Opened, s.Dropped(), s.Short, s.Auth, s.Ahead, s.Replayed, s.Handshake, s.Rekeys)
}
