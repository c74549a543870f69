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
// changed payload. Each direction has its own key. The key of a
// direction rolls over every RekeyAfter packets by a one-way step
// (HKDF of the previous key): epoch e = counter / RekeyAfter uses key
// k_e = HKDF(k_{e-1}, "rekey"), so no extra exchange is needed, both
// ends know which key a packet used from its counter alone, and a key
// once left behind is erased (a later compromise of the flow's state
// does not open earlier epochs). A sender stops at RejectAfter packets
// (ErrExhausted); the flow must then be allocated anew. Limits follow
// WireGuard's model, with the per-key limit set from AES-GCM's data
// bound (2^28 packets of up to 1400 bytes stay well under the 2^34.5
// blocks per key of RFC 8446 section 5.5) instead of WireGuard's 2^60.
// There is no time-based rekey: a flow's keys are its own and die with
// it. (A time-based step, WireGuard's 2 minutes, would be cheap to add
// by jumping the counter to the next epoch, but a sender that keeps
// stepping while its packets are lost -- an adjacency keeps sending
// keepalives through a long outage -- would leave the receiver more
// than one epoch behind for good; that needs a receiver that derives
// several epochs ahead at a bounded cost, not done yet.)
//
// The receiver keeps a WireGuard-style sliding window (RFC 6479) of
// WindowSize packets: a packet older than the window, or seen before,
// is dropped and counted, as is one that fails authentication or is
// too short. None of them ever reaches the application and none ends
// the flow.
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
	"sync"
	"sync/atomic"
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
	// ErrReplay means a packet was seen before or is older than the window.
	ErrReplay = errors.New("seal: packet replayed or too old")
)

// Stats counts a flow's sealed traffic.
type Stats struct {
	Sealed   uint64 // packets sealed and sent
	Opened   uint64 // packets opened and delivered
	Short    uint64 // packets dropped: too short or not a sealed packet
	Auth     uint64 // packets dropped: failed authentication
	Replayed uint64 // packets dropped: replayed or older than the window
	Rekeys   uint64 // key rollovers, both directions
	// Handshake counts handshake messages dropped on this flow:
	// malformed ones, and repeats after the handshake.
	Handshake uint64
}

// Dropped is the sum of the drop counters.
func (s Stats) Dropped() uint64 { return s.Short + s.Auth + s.Replayed + s.Handshake }

type counters struct {
	sealed, opened, short, auth, replayed, rekeys, handshake atomic.Uint64
}

// ratchet is the one-way step from an epoch's key to the next.
func ratchet(key []byte) []byte {
	k, err := hkdf.Key(sha256.New, key, nil, "ouro flow seal rekey", KeyLen)
	if err != nil {
		panic(err) // only for a key length HKDF cannot give
	}
	return k
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
	aead  cipher.AEAD
	key   []byte
	next  uint64 // counter of the next packet
	limit uint64 // packets per key (RekeyAfter; smaller in tests)
	nonce [12]byte
	c     *counters
}

// Opener opens the other direction's packets, with a replay window.
// It is safe for concurrent use.
type Opener struct {
	mu    sync.Mutex
	epoch uint64
	cur   cipher.AEAD
	key   []byte      // the current epoch's key
	prev  cipher.AEAD // the previous epoch's, for packets late across a rollover
	nxt   cipher.AEAD // the next epoch's, derived when first needed
	nkey  []byte
	limit uint64
	nonce [12]byte
	// Replay window (RFC 6479): top is the highest counter accepted + 1.
	top  uint64
	bits [2 * WindowSize / 64]uint64
	c    *counters
}

// Session is the sealing state of one flow end: a Sealer for what it
// sends and an Opener for what it receives.
type Session struct {
	Sealer
	Opener
	c counters
}

// NewSession makes the session of one end from the two direction keys.
// limit is the packets per key (0: RekeyAfter); tests make it small.
func NewSession(sendKey, recvKey []byte, limit uint64) *Session {
	if limit == 0 {
		limit = RekeyAfter
	}
	s := &Session{}
	s.Sealer = Sealer{aead: newAEAD(sendKey), key: append([]byte(nil), sendKey...), limit: limit, c: &s.c}
	s.Opener = Opener{cur: newAEAD(recvKey), key: append([]byte(nil), recvKey...), limit: limit, c: &s.c}
	return s
}

// Stats returns the session's counters.
func (s *Session) Stats() Stats {
	return Stats{
		Sealed: s.c.sealed.Load(), Opened: s.c.opened.Load(), Short: s.c.short.Load(),
		Auth: s.c.auth.Load(), Replayed: s.c.replayed.Load(), Rekeys: s.c.rekeys.Load(),
		Handshake: s.c.handshake.Load(),
	}
}

// CountHandshake counts a handshake message dropped on the flow.
func (s *Session) CountHandshake() { s.c.handshake.Add(1) }

// CountShort counts a packet dropped because it is no sealed packet.
func (s *Session) CountShort() { s.c.short.Add(1) }

// Seal appends the sealed form of plain to dst and returns it. With
// cap(dst)-len(dst) >= len(plain)+Overhead it does not allocate.
func (s *Sealer) Seal(dst, plain []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ctr := s.next
	if ctr >= RejectAfter {
		return dst, ErrExhausted
	}
	if ctr != 0 && ctr%s.limit == 0 {
		k := ratchet(s.key)
		clear(s.key)
		s.key = k
		s.aead = newAEAD(k)
		s.c.rekeys.Add(1)
	}
	s.next++
	hdr := len(dst)
	dst = append(dst, KindData)
	dst = binary.BigEndian.AppendUint64(dst, ctr)
	binary.BigEndian.PutUint64(s.nonce[4:], ctr)
	dst = s.aead.Seal(dst, s.nonce[:], plain, dst[hdr:hdr+HeaderLen])
	s.c.sealed.Add(1)
	return dst, nil
}

// Open authenticates the sealed packet p and decrypts it in place,
// returning the plaintext (a prefix of p[HeaderLen:]). A packet that is
// short, forged, or replayed gives an error and is counted; nothing of
// it may be used. It does not allocate (except at a key rollover).
func (o *Opener) Open(p []byte) ([]byte, error) {
	if len(p) < Overhead || p[0] != KindData {
		o.c.short.Add(1)
		return nil, ErrShort
	}
	ctr := binary.BigEndian.Uint64(p[1:HeaderLen])
	o.mu.Lock()
	defer o.mu.Unlock()
	if ctr >= RejectAfter || !o.fresh(ctr) {
		o.c.replayed.Add(1)
		return nil, ErrReplay
	}
	e := ctr / o.limit
	var a cipher.AEAD
	switch {
	case e == o.epoch:
		a = o.cur
	case e+1 == o.epoch && o.prev != nil:
		a = o.prev
	case e == o.epoch+1:
		if o.nxt == nil {
			o.nkey = ratchet(o.key)
			o.nxt = newAEAD(o.nkey)
		}
		a = o.nxt
	default:
		// Older than the previous epoch (its key is gone) or more than
		// one epoch ahead (no honest sender skips 2^28 packets).
		o.c.auth.Add(1)
		return nil, ErrAuth
	}
	binary.BigEndian.PutUint64(o.nonce[4:], ctr)
	out, err := a.Open(p[HeaderLen:HeaderLen], o.nonce[:], p[HeaderLen:], p[:HeaderLen])
	if err != nil {
		o.c.auth.Add(1)
		return nil, ErrAuth
	}
	if e == o.epoch+1 {
		// The first authentic packet of the next epoch moves us on.
		clear(o.key)
		o.prev, o.cur, o.key = o.cur, o.nxt, o.nkey
		o.nxt, o.nkey = nil, nil
		o.epoch = e
		o.c.rekeys.Add(1)
	}
	o.accept(ctr)
	o.c.opened.Add(1)
	return out, nil
}

// fresh reports whether ctr is inside the window and not yet seen.
func (o *Opener) fresh(ctr uint64) bool {
	if ctr >= o.top {
		return true
	}
	if o.top-ctr > WindowSize {
		return false
	}
	i := (ctr / 64) % uint64(len(o.bits))
	return o.bits[i]&(1<<(ctr%64)) == 0
}

// accept marks ctr seen, sliding the window forward if needed. The
// bitmap holds twice the window, so the words the window spans never
// wrap onto each other.
func (o *Opener) accept(ctr uint64) {
	n := uint64(len(o.bits))
	if ctr >= o.top {
		if o.top > 0 {
			last, to := (o.top-1)/64, ctr/64
			if to-last >= n {
				clear(o.bits[:])
			} else {
				for w := last + 1; w <= to; w++ {
					o.bits[w%n] = 0
				}
			}
		}
		o.top = ctr + 1
	}
	o.bits[(ctr/64)%n] |= 1 << (ctr % 64)
}

// String describes the stats for tools.
func (s Stats) String() string {
	return fmt.Sprintf("sealed %d opened %d dropped %d (short %d auth %d replay %d handshake %d) rekeys %d",
		s.Sealed, s.Opened, s.Dropped(), s.Short, s.Auth, s.Replayed, s.Handshake, s.Rekeys)
}
