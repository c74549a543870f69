package seal

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// Pre-shared-key handshakes: authenticated layers.
//
// A unicast layer bootstrapped with a secret admits only members that
// hold it. Its adjacency and enrollment flows are sealed flows whose
// handshake is the one above with the layer secret in it, in the way
// WireGuard mixes its optional pre-shared key into Noise IK:
//
//	hello  KindHelloPSK | X25519 public | ML-KEM-768 encapsulation key
//	       | timestamp (8, Unix ns, big endian) | MAC (32)
//	reply  KindReplyPSK | X25519 public | ML-KEM-768 ciphertext | identity flag
//	       | [Ed25519 public | signature] | MAC (32)
//
// The hello's MAC is HMAC-SHA256 under a key derived from the secret
// over everything before it; the reply's MAC covers the whole hello and
// the reply before it. The server checks the hello's length, MAC,
// timestamp and replay cache -- cheap work -- before it does any
// public-key operation, and a hello that fails any of them gets no
// answer: a stranger spends one HMAC of the server's CPU per message
// and learns nothing. The client checks the reply's MAC before it
// decapsulates, so both ends prove possession of the secret in the one
// round trip. The direction keys are HKDF over the X25519 secret, the
// ML-KEM key and a key derived from the layer secret (so even a broken
// MAC check could not give a stranger the session keys), salted with
// the transcript hash as before.
//
// Replays: a captured hello re-sent on a new flow would pass the MAC,
// so the server keeps the MACs of the hellos it accepted during
// ±HelloWindow and refuses a hello whose timestamp is outside that
// window or whose MAC it has seen (the clocks of members must agree
// within HelloWindow). The cache is bounded (replayCacheMax, oldest
// forgotten first); only holders of the secret can add to it.

// SecretLen is the size of a layer secret.
const SecretLen = 32

// HelloWindow is how far a PSK hello's timestamp may be from the
// server's clock.
const HelloWindow = 2 * time.Minute

// replayCacheMax bounds the hellos a PSK remembers.
const replayCacheMax = 4096

// PSK handshake kinds and sizes.
const (
	KindHelloPSK byte = 0x54
	KindReplyPSK byte = 0x55
	macLen            = sha256.Size
	// HelloPSKLen is the size of a PSK hello.
	HelloPSKLen = HelloLen + 8 + macLen
	// ReplyPSKLen and ReplyPSKIDLen are the sizes of a PSK reply
	// without and with an identity.
	ReplyPSKLen   = ReplyLen + macLen
	ReplyPSKIDLen = ReplyIDLen + macLen
	// MaxHandshakeLen is the largest handshake message of any kind.
	MaxHandshakeLen = ReplyPSKIDLen
)

// Errors of PSK handshakes.
var (
	// ErrHandshakeAuth means a handshake message's MAC is wrong: the
	// sender does not hold the secret.
	ErrHandshakeAuth = errors.New("seal: handshake message failed authentication")
	// ErrHelloReplay means an authentic hello was seen before or its
	// timestamp is outside HelloWindow.
	ErrHelloReplay = errors.New("seal: hello replayed or out of time")
)

// PSK is a layer secret prepared for handshakes, with the replay cache
// of the hellos it accepted. One PSK serves every flow of a layer. It
// is safe for concurrent use.
type PSK struct {
	mac [32]byte // the MAC key
	mix [32]byte // the key mixed into the session keys
	now func() time.Time

	mu    sync.Mutex
	seen  map[[macLen]byte]int64 // accepted hellos' MACs, with their timestamps
	order [][macLen]byte         // the same, oldest first
}

// NewPSK prepares secret (SecretLen bytes) for handshakes. now is the
// clock for hello timestamps (nil: time.Now).
func NewPSK(secret []byte, now func() time.Time) (*PSK, error) {
	if len(secret) != SecretLen {
		return nil, fmt.Errorf("layer secret: %d bytes, want %d", len(secret), SecretLen)
	}
	if now == nil {
		now = time.Now
	}
	p := &PSK{now: now, seen: map[[macLen]byte]int64{}}
	for _, k := range []struct {
		dst  *[32]byte
		info string
	}{{&p.mac, "ouro layer psk mac v1"}, {&p.mix, "ouro layer psk mix v1"}} {
		b, err := hkdf.Key(sha256.New, secret, nil, k.info, 32)
		if err != nil {
			return nil, fmt.Errorf("layer secret: %w", err)
		}
		copy(k.dst[:], b)
		clear(b)
	}
	return p, nil
}

func (p *PSK) sum(parts ...[]byte) [macLen]byte {
	h := hmac.New(sha256.New, p.mac[:])
	for _, b := range parts {
		h.Write(b)
	}
	var out [macLen]byte
	h.Sum(out[:0])
	return out
}

// NewClientPSK starts a handshake proving possession of psk (see
// NewClient for pin and limit).
func NewClientPSK(psk *PSK, pin []byte, limit uint64) (*Client, error) {
	c, err := NewClient(pin, limit)
	if err != nil {
		return nil, err
	}
	h := make([]byte, 0, HelloPSKLen)
	h = append(h, KindHelloPSK)
	h = append(h, c.hello[1:]...)
	h = binary.BigEndian.AppendUint64(h, uint64(psk.now().UnixNano()))
	m := psk.sum([]byte("hello"), h)
	c.hello = append(h, m[:]...)
	c.psk = psk
	return c, nil
}

// checkHello verifies a PSK hello before any expensive work: length,
// MAC, time, and the replay cache (it records the hello).
func (p *PSK) checkHello(hello []byte) error {
	if len(hello) != HelloPSKLen || hello[0] != KindHelloPSK {
		return ErrMalformed
	}
	body, mac := hello[:HelloPSKLen-macLen], hello[HelloPSKLen-macLen:]
	want := p.sum([]byte("hello"), body)
	if !hmac.Equal(want[:], mac) {
		return ErrHandshakeAuth
	}
	ts := int64(binary.BigEndian.Uint64(body[len(body)-8:]))
	now := p.now().UnixNano()
	if d := now - ts; d > int64(HelloWindow) || d < -int64(HelloWindow) {
		return ErrHelloReplay
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.seen[want]; ok {
		return ErrHelloReplay
	}
	// Forget what can no longer be replayed (out of the window), and
	// the oldest beyond the bound.
	for len(p.order) > 0 {
		old := p.order[0]
		if len(p.order) < replayCacheMax && now-p.seen[old] <= int64(HelloWindow) {
			break
		}
		delete(p.seen, old)
		p.order = p.order[1:]
	}
	p.seen[want] = ts
	p.order = append(p.order, want)
	return nil
}

// RespondPSK answers a PSK hello: like Respond, but a hello that is not
// authentic, fresh and new gives ErrMalformed, ErrHandshakeAuth or
// ErrHelloReplay before any public-key operation, and the caller must
// answer nothing.
func RespondPSK(hello []byte, psk *PSK, id []byte, limit uint64) ([]byte, *Session, error) {
	if err := psk.checkHello(hello); err != nil {
		return nil, nil, err
	}
	plain := make([]byte, 0, HelloLen)
	plain = append(plain, KindHello)
	plain = append(plain, hello[1:HelloLen]...)
	r, ssX, ssK, tr, err := respond(plain, hello, id)
	if err != nil {
		return nil, nil, err
	}
	r[0] = KindReplyPSK
	m := psk.sum([]byte("reply"), hello, r)
	r = append(r, m[:]...)
	c2s, s2c := keysPSK(ssX, ssK, psk, tr)
	return r, NewSession(s2c, c2s, limit), nil
}

func keysPSK(ssX, ssK []byte, psk *PSK, tr [32]byte) (c2s, s2c []byte) {
	secret := append(append(append(make([]byte, 0, 96), ssX...), ssK...), psk.mix[:]...)
	k, err := hkdf.Key(sha256.New, secret, tr[:], "ouro flow keys psk v1", 2*KeyLen)
	clear(secret)
	if err != nil {
		panic(err)
	}
	return k[:KeyLen], k[KeyLen:]
}

// finishPSK checks a PSK reply's kind, length and MAC and returns the
// reply in its plain form for the common checks.
func (c *Client) finishPSK(reply []byte) ([]byte, error) {
	if (len(reply) != ReplyPSKLen && len(reply) != ReplyPSKIDLen) || reply[0] != KindReplyPSK {
		return nil, ErrMalformed
	}
	body, mac := reply[:len(reply)-macLen], reply[len(reply)-macLen:]
	want := c.psk.sum([]byte("reply"), c.hello, body)
	if !hmac.Equal(want[:], mac) {
		return nil, ErrHandshakeAuth
	}
	plain := make([]byte, len(body))
	copy(plain, body)
	plain[0] = KindReply
	return plain, nil
}

// Layer secret files: SecretLen random bytes, raw, mode 0600 or
// stricter.

// GenerateSecret writes a fresh layer secret to path (mode 0600). It
// refuses to overwrite a file.
func GenerateSecret(path string) error {
	b := make([]byte, SecretLen)
	if _, err := rand.Read(b); err != nil {
		return fmt.Errorf("generate secret: %w", err)
	}
	defer clear(b)
	if err := writeNew(path, b, 0o600); err != nil {
		return fmt.Errorf("layer secret: %w", err)
	}
	return nil
}

// LoadSecret reads a layer secret file, refusing one that group or
// others may read or that is not SecretLen bytes long. The error never
// contains the file's content.
func LoadSecret(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("layer secret: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("layer secret %s: not a regular file", path)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("layer secret %s: mode %04o lets group or others read it; chmod 600 it", path, st.Mode().Perm())
	}
	if st.Size() != SecretLen {
		return nil, fmt.Errorf("layer secret %s: %d bytes, want %d (make one with: irm key generate FILE)", path, st.Size(), SecretLen)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("layer secret: %w", err)
	}
	if len(b) != SecretLen {
		clear(b)
		return nil, fmt.Errorf("layer secret %s: %d bytes, want %d", path, len(b), SecretLen)
	}
	return b, nil
}

// LoadPSK is LoadSecret and NewPSK; the raw secret is erased.
func LoadPSK(path string, now func() time.Time) (*PSK, error) {
	b, err := LoadSecret(path)
	if err != nil {
		return nil, err
	}
	defer clear(b)
	return NewPSK(b, now)
}
