package seal

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/mlkem"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// The handshake is one round trip, in band on the new flow, before any
// data:
//
//	hello  (client)  kind KindHello (1) | X25519 public (32) | ML-KEM-768 encapsulation key (1184)
//	reply  (server)  kind KindReply (1) | X25519 public (32) | ML-KEM-768 ciphertext (1088)
//	                 | identity flag (1) | [Ed25519 public (32) | signature (64)]
//
// Both ends then hold the X25519 shared secret and the ML-KEM shared
// key; the direction keys are HKDF-SHA256 over both (hybrid: an
// attacker must break X25519 and ML-KEM-768 to read a recorded flow),
// salted with the SHA-256 of the transcript (hello and reply up to the
// signature), so a changed message gives different keys. A server with
// an identity key signs the same transcript; a client that pinned a
// key fails unless the reply carries exactly that key and a valid
// signature. Without a pin the exchange is unauthenticated: it stops a
// passive listener, not an active man in the middle at allocation.
const (
	HelloLen    = 1 + 32 + mlkem.EncapsulationKeySize768
	replyBase   = 1 + 32 + mlkem.CiphertextSize768 + 1
	ReplyLen    = replyBase           // without identity
	ReplyIDLen  = replyBase + 32 + 64 // with identity
	transcriptP = "ouro flow handshake v1"
)

// Handshake errors.
var (
	// ErrMalformed means a handshake message is not one.
	ErrMalformed = errors.New("seal: malformed handshake message")
	// ErrIdentity means the server did not prove the pinned identity.
	ErrIdentity = errors.New("server identity check failed")
)

// Client is the allocating side of a handshake.
type Client struct {
	x     *ecdh.PrivateKey
	k     *mlkem.DecapsulationKey768
	hello []byte
	pin   ed25519.PublicKey
	limit uint64
	psk   *PSK // PSK handshake (psk.go), nil for the plain one
}

// NewClient starts a handshake with fresh ephemeral keys. pin, if not
// nil, is the server's Ed25519 public key the client insists on; limit
// is the session's packets per key (0: RekeyAfter).
func NewClient(pin ed25519.PublicKey, limit uint64) (*Client, error) {
	if pin != nil && len(pin) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("pinned key: %d bytes, want %d", len(pin), ed25519.PublicKeySize)
	}
	x, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	k, err := mlkem.GenerateKey768()
	if err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	h := make([]byte, 0, HelloLen)
	h = append(h, KindHello)
	h = append(h, x.PublicKey().Bytes()...)
	h = append(h, k.EncapsulationKey().Bytes()...)
	return &Client{x: x, k: k, hello: h, pin: pin, limit: limit}, nil
}

// Hello is the message the client sends.
func (c *Client) Hello() []byte { return c.hello }

// Finish checks the server's reply and returns the client's session.
// A malformed reply gives ErrMalformed (the caller may wait for
// another); a wrong or missing identity under a pin gives ErrIdentity.
//
// With a PSK (NewClientPSK) the reply must carry a valid MAC first: a
// reply without it gives ErrHandshakeAuth (the caller may wait for
// another, a stranger's forgery must not end the handshake).
func (c *Client) Finish(reply []byte) (*Session, error) {
	if c.psk != nil {
		plain, err := c.finishPSK(reply)
		if err != nil {
			return nil, err
		}
		reply = plain
	}
	if (len(reply) != ReplyLen && len(reply) != ReplyIDLen) || reply[0] != KindReply {
		return nil, ErrMalformed
	}
	hasID := reply[replyBase-1]
	if (hasID == 0) != (len(reply) == ReplyLen) || hasID > 1 {
		return nil, ErrMalformed
	}
	xpub, err := ecdh.X25519().NewPublicKey(reply[1:33])
	if err != nil {
		return nil, ErrMalformed
	}
	ssX, err := c.x.ECDH(xpub)
	if err != nil {
		return nil, ErrMalformed // a low-order point
	}
	ssK, err := c.k.Decapsulate(reply[33 : 33+mlkem.CiphertextSize768])
	if err != nil {
		return nil, ErrMalformed
	}
	signed := reply[:replyBase]
	if hasID == 1 {
		signed = reply[:replyBase+32]
	}
	tr := transcript(c.hello, signed)
	if c.pin != nil {
		if hasID == 0 {
			return nil, fmt.Errorf("%w: the server presented no identity key, but one is pinned", ErrIdentity)
		}
		id := ed25519.PublicKey(reply[replyBase : replyBase+32])
		if !bytes.Equal(id, c.pin) {
			return nil, fmt.Errorf("%w: the server's key %x is not the pinned key %x", ErrIdentity, []byte(id), []byte(c.pin))
		}
		if !ed25519.Verify(id, tr[:], reply[replyBase+32:]) {
			return nil, fmt.Errorf("%w: bad signature from the pinned key", ErrIdentity)
		}
	}
	var c2s, s2c []byte
	if c.psk != nil {
		c2s, s2c = keysPSK(ssX, ssK, c.psk, tr)
	} else {
		c2s, s2c = keys(ssX, ssK, tr)
	}
	return NewSession(c2s, s2c, c.limit), nil
}

// Respond answers a client's hello: it returns the reply to send and
// the server's session. id, if not nil, signs the transcript. A
// malformed hello gives ErrMalformed.
func Respond(hello []byte, id ed25519.PrivateKey, limit uint64) ([]byte, *Session, error) {
	if len(hello) != HelloLen || hello[0] != KindHello {
		return nil, nil, ErrMalformed
	}
	r, ssX, ssK, tr, err := respond(hello, hello, id)
	if err != nil {
		return nil, nil, err
	}
	c2s, s2c := keys(ssX, ssK, tr)
	return r, NewSession(s2c, c2s, limit), nil
}

// respond does the server's public-key work on a hello in its plain
// form (kind KindHello, HelloLen bytes); the transcript covers trHello,
// the hello as received. id, if not nil, is an Ed25519 private key.
func respond(hello, trHello []byte, id []byte) (r, ssX, ssK []byte, tr [32]byte, err error) {
	cx, err := ecdh.X25519().NewPublicKey(hello[1:33])
	if err != nil {
		return nil, nil, nil, tr, ErrMalformed
	}
	ek, err := mlkem.NewEncapsulationKey768(hello[33:HelloLen])
	if err != nil {
		return nil, nil, nil, tr, ErrMalformed
	}
	x, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, nil, tr, fmt.Errorf("handshake: %w", err)
	}
	ssX, err = x.ECDH(cx)
	if err != nil {
		return nil, nil, nil, tr, ErrMalformed
	}
	ssK, ct := ek.Encapsulate()
	r = make([]byte, 0, ReplyPSKIDLen)
	r = append(r, KindReply)
	r = append(r, x.PublicKey().Bytes()...)
	r = append(r, ct...)
	priv := ed25519.PrivateKey(id)
	if id != nil {
		r = append(r, 1)
		r = append(r, priv.Public().(ed25519.PublicKey)...)
	} else {
		r = append(r, 0)
	}
	tr = transcript(trHello, r)
	if id != nil {
		r = append(r, ed25519.Sign(priv, tr[:])...)
	}
	return r, ssX, ssK, tr, nil
}

func transcript(hello, reply []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(transcriptP))
	h.Write(hello)
	h.Write(reply)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// keys derives the client-to-server and server-to-client keys.
func keys(ssX, ssK []byte, tr [32]byte) (c2s, s2c []byte) {
	secret := append(append(make([]byte, 0, 64), ssX...), ssK...)
	k, err := hkdf.Key(sha256.New, secret, tr[:], "ouro flow keys v1", 2*KeyLen)
	clear(secret)
	if err != nil {
		panic(err)
	}
	return k[:KeyLen], k[KeyLen:]
}
