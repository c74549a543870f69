package flow

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/ouro-net/ouro/lib/seal"
)

// Flow encryption.
//
// A flow allocated with QoS Encrypt is sealed end to end by the two
// flow libraries (package seal): right after allocation, before any
// data and before FRCT starts, the allocating side sends a hello and
// the accepting side answers (one round trip, hybrid X25519 +
// ML-KEM-768). From then on every packet the flow sends -- FRCT's
// headers, acknowledgements and retransmissions included, since
// sealing sits below FRCT -- is sealed, on the channel to the IPCP and
// on a direct data socket alike: the IPCPs, the shims and the sockets
// carry ciphertext only. A packet that fails to open (forged, replayed,
// truncated, a stray handshake message) is dropped and counted in
// Crypto(); the flow lives on.
//
// Without a pinned server key (WithPin) the exchange is NOT
// authenticated: it defeats a passive eavesdropper below the flow, but
// whoever can change the packets at allocation time can sit in the
// middle. A server proves its identity with WithIdentity.
//
// Bounds on what a stranger can make a listener spend: each
// encrypted flow's server handshake runs in its own goroutine with a
// deadline of HandshakeTimeout, at most MaxHandshakes at once per
// Listener (more arriving flows are refused and counted), each holding
// a flow and two handshake messages (about 2.5 KB) plus one ML-KEM
// encapsulation and one X25519 multiplication of CPU (~0.2 ms). A
// handshake that fails closes its flow and is counted
// (HandshakeFailures); the accept queue only ever holds flows whose
// handshake succeeded.

// Authenticated layers (WithPSK): the handshake can also prove that
// both ends hold a layer secret (seal's PSK handshake). A client with
// a secret sends a MAC'd hello and accepts only a MAC'd reply; a
// Listener with a secret answers an encrypted flow's first message
// only if it is an authentic, fresh, new hello, and otherwise closes
// the flow at once, without an answer, and counts why (Handshakes):
// a stranger costs one HMAC and no slot beyond its own message. Such a
// Listener also evicts its oldest exchange in progress instead of
// refusing a new flow when MaxHandshakes are running, so strangers
// that open flows and stay silent cannot keep a member out: a member's
// exchange takes one round trip, a stranger would have to open
// MaxHandshakes flows within it. Plain (not encrypted) flows still
// reach Accept: the application decides (Flow.Authenticated is false
// for them; a unicast IPCP in a secret layer refuses them).

// ErrAuth means a handshake under a layer secret got no authentic
// answer: the peer holds another secret, or none.
var ErrAuth = errors.New("authentication failed")

// HandshakeTimeout bounds a flow's key exchange, on both sides.
const HandshakeTimeout = 5 * time.Second

// MaxHandshakes bounds the server handshakes one Listener runs at once.
const MaxHandshakes = 16

// helloRepeats bounds how often a server answers a repeated hello (the
// client resends it while waiting; the reply may have been lost).
const helloRepeats = 8

// WithPin makes Alloc of an encrypted flow insist that the server
// proves it holds the private key of pub; any other key (or none)
// fails the allocation with an error wrapping seal.ErrIdentity.
func WithPin(pub ed25519.PublicKey) Option { return func(o *options) { o.pin = pub } }

// WithIdentity makes a Listener sign its encrypted flows' handshakes
// with key, so that clients can pin its public key.
func WithIdentity(key ed25519.PrivateKey) Option { return func(o *options) { o.id = key } }

// WithRekeyAfter sets how many packets each key seals before it rolls
// over (default seal.RekeyAfter). Tests use small values.
func WithRekeyAfter(n uint64) Option { return func(o *options) { o.rekey = n } }

// WithPSK makes Alloc run the handshake under the layer secret p (the
// flow is then encrypted whatever the QoS says), and a Listener require
// it of every encrypted flow (see "Authenticated layers" above).
func WithPSK(p *seal.PSK) Option {
	return func(o *options) { o.psk = func() *seal.PSK { return p } }
}

// WithPSKFrom is WithPSK with the secret looked up when needed (a
// Listener bound before its layer's secret is known); nil means none.
func WithPSKFrom(get func() *seal.PSK) Option { return func(o *options) { o.psk = get } }

func (o options) pskNow() *seal.PSK {
	if o.psk == nil {
		return nil
	}
	return o.psk()
}

// Authenticated reports whether the flow's key exchange proved that
// both ends hold the layer secret (WithPSK).
func (f *Flow) Authenticated() bool { return f.authed }

// Crypto returns the flow's sealing counters, or nil on a flow that is
// not encrypted.
func (f *Flow) Crypto() *seal.Stats {
	if f.sess == nil {
		return nil
	}
	s := f.sess.Stats()
	s.Handshake += f.hsDrops.Load()
	return &s
}

// setSession installs the agreed keys: from now on packets are sealed.
func (f *Flow) setSession(s *seal.Session) {
	f.sess = s
	f.live.Store(s)
	if f.closed.Load() && f.live.CompareAndSwap(s, nil) {
		s.Close() // closed during the exchange (an eviction)
	}
	f.lowMTU = f.info.MTU
	size := 1 << 16
	if f.info.MTU > 0 {
		f.info.MTU -= seal.Overhead
		size = f.lowMTU
	}
	f.rbuf = make([]byte, size)
	f.wbuf = make([]byte, 0, size)
}

// checkHandshakeMTU refuses a path whose packets cannot carry the
// handshake messages.
func (f *Flow) checkHandshakeMTU(psk bool) error {
	need := seal.ReplyIDLen
	if psk {
		need = seal.MaxHandshakeLen
	}
	if f.info.MTU > 0 && f.info.MTU < need {
		return fmt.Errorf("flow %d: MTU %d is too small for the key exchange (%d bytes)", f.info.ID, f.info.MTU, need)
	}
	return nil
}

// clientHandshake runs the allocating side's key exchange.
func (f *Flow) clientHandshake(ctx context.Context, o options) error {
	psk := o.pskNow()
	if err := f.checkHandshakeMTU(psk != nil); err != nil {
		return err
	}
	var c *seal.Client
	var err error
	resendEvery := time.Second
	if psk != nil {
		c, err = seal.NewClientPSK(psk, o.pin, o.rekey)
		resendEvery = 500 * time.Millisecond
	} else {
		c, err = seal.NewClient(o.pin, o.rekey)
	}
	if err != nil {
		return err
	}
	end := time.Now().Add(HandshakeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(end) {
		end = d
	}
	defer f.SetReadDeadline(time.Time{})
	buf := make([]byte, 1<<16)
	for resend := time.Now(); ; {
		now := time.Now()
		if !now.Before(end) {
			if psk != nil {
				return fmt.Errorf("flow to %q: %w: no authenticated answer within %v (the peer holds another secret, or none)",
					f.info.Name, ErrAuth, HandshakeTimeout)
			}
			return fmt.Errorf("flow %d: key exchange: no answer within %v", f.info.ID, HandshakeTimeout)
		}
		if !now.Before(resend) {
			if err := f.data().Write(c.Hello()); err != nil {
				return fmt.Errorf("flow %d: key exchange: %w", f.info.ID, f.mapErr(err))
			}
			resend = now.Add(resendEvery)
		}
		f.SetReadDeadline(minTime(resend, end))
		n, _, err := f.readRawCE(buf)
		if err != nil {
			if errors.Is(err, io.ErrShortBuffer) {
				f.hsDrops.Add(1)
				continue
			}
			if isTimeout(err) {
				continue
			}
			if psk != nil && errors.Is(err, io.EOF) {
				// A server with a secret closes the flow of a hello it
				// cannot authenticate.
				return fmt.Errorf("flow to %q: %w: the peer closed the flow (it holds another secret, or none)", f.info.Name, ErrAuth)
			}
			return fmt.Errorf("flow %d: key exchange: %w", f.info.ID, err)
		}
		s, err := c.Finish(buf[:n])
		switch {
		case errors.Is(err, seal.ErrMalformed), errors.Is(err, seal.ErrHandshakeAuth):
			f.hsDrops.Add(1)
			continue
		case err != nil:
			return fmt.Errorf("flow to %q: %w", f.info.Name, err)
		}
		f.setSession(s)
		f.authed = psk != nil
		return nil
	}
}

// serverHandshake runs the accepting side's key exchange.
func (f *Flow) serverHandshake(o options, hc *hsCounters) error {
	if psk := o.pskNow(); psk != nil {
		return f.serverHandshakePSK(psk, o, hc)
	}
	if err := f.checkHandshakeMTU(false); err != nil {
		return err
	}
	f.SetReadDeadline(time.Now().Add(HandshakeTimeout))
	defer f.SetReadDeadline(time.Time{})
	buf := make([]byte, seal.HelloLen+1)
	for {
		n, _, err := f.readRawCE(buf)
		if err != nil {
			if errors.Is(err, io.ErrShortBuffer) {
				f.hsDrops.Add(1)
				continue
			}
			return fmt.Errorf("flow %d: key exchange: %w", f.info.ID, err)
		}
		reply, s, err := seal.Respond(buf[:n], o.id, o.rekey)
		if errors.Is(err, seal.ErrMalformed) {
			f.hsDrops.Add(1)
			continue
		}
		if err != nil {
			return fmt.Errorf("flow %d: key exchange: %w", f.info.ID, err)
		}
		f.hsHello = bytes.Clone(buf[:n])
		f.hsReply = reply
		f.setSession(s)
		if err := f.data().Write(reply); err != nil {
			return fmt.Errorf("flow %d: key exchange: %w", f.info.ID, f.mapErr(err))
		}
		return nil
	}
}

// serverHandshakePSK is serverHandshake under a layer secret: the
// first message must be an authentic, fresh, new hello, or the
// exchange ends at once without an answer.
func (f *Flow) serverHandshakePSK(psk *seal.PSK, o options, hc *hsCounters) error {
	if err := f.checkHandshakeMTU(true); err != nil {
		return err
	}
	f.SetReadDeadline(time.Now().Add(HandshakeTimeout))
	defer f.SetReadDeadline(time.Time{})
	buf := make([]byte, seal.HelloPSKLen+1)
	n, _, err := f.readRawCE(buf)
	if err != nil {
		if errors.Is(err, io.ErrShortBuffer) {
			hc.malformed.Add(1)
		}
		return fmt.Errorf("flow %d: key exchange: %w", f.info.ID, err)
	}
	reply, s, err := seal.RespondPSK(buf[:n], psk, o.id, o.rekey)
	if err != nil {
		switch {
		case errors.Is(err, seal.ErrHandshakeAuth):
			hc.auth.Add(1)
		case errors.Is(err, seal.ErrHelloReplay):
			hc.replayed.Add(1)
		case errors.Is(err, seal.ErrMalformed):
			hc.malformed.Add(1)
		}
		return fmt.Errorf("flow %d: key exchange: %w", f.info.ID, err)
	}
	f.hsHello = bytes.Clone(buf[:n])
	f.hsReply = reply
	f.setSession(s)
	f.authed = true
	if err := f.data().Write(reply); err != nil {
		return fmt.Errorf("flow %d: key exchange: %w", f.info.ID, f.mapErr(err))
	}
	return nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

// readPacket reads one packet of the flow's raw service: opened, if
// the flow is encrypted.
func (f *Flow) readPacket(b []byte) (int, bool, error) {
	if f.sess == nil {
		return f.readRawCE(b)
	}
	f.rmu.Lock()
	defer f.rmu.Unlock()
	for {
		n, ce, err := f.readRawCE(f.rbuf)
		if err != nil {
			if errors.Is(err, io.ErrShortBuffer) {
				f.sess.CountShort()
				continue
			}
			return 0, ce, err
		}
		if n-seal.Overhead <= len(b) {
			// The common case: the plaintext fits the caller's buffer
			// and is decrypted straight into it.
			pt, ok := f.openTo(b, f.rbuf[:n])
			if !ok {
				continue
			}
			return len(pt), ce, nil
		}
		pt, ok := f.open(f.rbuf[:n])
		if !ok {
			continue
		}
		m := copy(b, pt)
		if m < len(pt) {
			return m, ce, io.ErrShortBuffer
		}
		return m, ce, nil
	}
}

// open opens one sealed packet in place; a stray handshake message (a
// repeated hello is answered again) or a packet that fails to open is
// counted and gives false.
func (f *Flow) open(p []byte) ([]byte, bool) {
	if f.handshakeMsg(p) {
		return nil, false
	}
	pt, err := f.sess.Open(p)
	return pt, err == nil // a failure is counted by the session
}

// openTo is open into dst, which holds the plaintext (see
// seal.Opener.OpenTo); on failure dst's contents are undefined.
func (f *Flow) openTo(dst, p []byte) ([]byte, bool) {
	if f.handshakeMsg(p) {
		return nil, false
	}
	pt, err := f.sess.OpenTo(dst, p)
	return pt, err == nil // a failure is counted by the session
}

// handshakeMsg reports whether p is a handshake message arriving after
// the exchange: counted, and a repeated hello is answered again.
func (f *Flow) handshakeMsg(p []byte) bool {
	if len(p) == 0 || (p[0] != seal.KindHello && p[0] != seal.KindReply && p[0] != seal.KindHelloPSK && p[0] != seal.KindReplyPSK) {
		return false
	}
	f.sess.CountHandshake()
	if f.hsHello != nil && bytes.Equal(p, f.hsHello) && f.hsRepeats.Add(1) <= helloRepeats {
		f.data().Write(f.hsReply) // our reply was lost; best effort
	}
	return true
}

// batchBytes bounds the memory of an encrypted flow's batch buffers.
const batchBytes = 256 << 10

// readBatchSealed is ReadBatch on an encrypted flow: the sealed packets
// come in with one system call into the flow's own buffers and are
// opened into bufs.
func (f *Flow) readBatchSealed(bufs [][]byte, sizes []int) (int, error) {
	f.rmu.Lock()
	defer f.rmu.Unlock()
	if f.rbat == nil {
		size := len(f.rbuf)
		k := max(1, min(MaxBatch, batchBytes/size))
		f.rbat = make([][]byte, k)
		for i := range f.rbat {
			f.rbat[i] = make([]byte, size)
		}
		f.rsiz = make([]int, k)
	}
	k := min(len(f.rbat), len(bufs), len(sizes))
	for {
		n, err := f.readBatchRaw(f.rbat[:k], f.rsiz[:k], nil)
		if err != nil {
			return 0, err
		}
		got := 0
		for i := 0; i < n; i++ {
			if f.rsiz[i] < 0 {
				f.sess.CountShort() // longer than any sealed packet of this flow
				continue
			}
			p := f.rbat[i][:f.rsiz[i]]
			if len(p)-seal.Overhead <= len(bufs[got]) {
				pt, ok := f.openTo(bufs[got], p)
				if !ok {
					continue
				}
				sizes[got] = len(pt)
				got++
				continue
			}
			pt, ok := f.open(p)
			if !ok {
				continue
			}
			sizes[got] = copy(bufs[got], pt)
			if sizes[got] < len(pt) {
				sizes[got] = -1
			}
			got++
		}
		if got > 0 {
			return got, nil
		}
	}
}

// writeBatchSealed seals bufs into the flow's own batch arena
// (batchBytes, made on the first batch write; each sealed packet takes
// its own length, so small packets fill a whole MaxBatch) and writes
// them with one batch call per chunk, as a plain flow's WriteBatch does
// (one system call, segmentation offload on a direct socket): an
// encrypted flood costs the sealing, not a system call per packet. It
// returns how many of bufs were written.
func (f *Flow) writeBatchSealed(bufs [][]byte) (int, error) {
	if f.closed.Load() {
		return 0, net.ErrClosed
	}
	f.wmu.Lock()
	defer f.wmu.Unlock()
	if f.wbat == nil {
		f.wbat = make([]byte, max(batchBytes, cap(f.wbuf)))
		f.wout = make([][]byte, MaxBatch)
	}
	done := 0
	for done < len(bufs) {
		k, used := 0, 0
		for k < len(f.wout) && done+k < len(bufs) {
			b := bufs[done+k]
			if f.info.MTU > 0 && len(b) > f.info.MTU {
				n, err := f.writeSealed(k)
				if err != nil {
					return done + n, err
				}
				return done + n, fmt.Errorf("%w: packet %d of the batch: %d bytes, MTU %d", ErrTooBig, done+k, len(b), f.info.MTU)
			}
			need := len(b) + seal.Overhead
			if used+need > len(f.wbat) {
				break // the arena is full: send what it holds
			}
			p, err := f.sess.Seal(f.wbat[used:used], b)
			if err != nil {
				n, werr := f.writeSealed(k)
				if werr != nil {
					return done + n, werr
				}
				return done + n, err
			}
			f.wout[k] = p
			used += len(p)
			k++
		}
		n, err := f.writeSealed(k)
		done += n
		if err != nil || n < k {
			return done, err
		}
	}
	return done, nil
}

// writeSealed writes the first k sealed packets of f.wout (the caller
// holds f.wmu) and returns how many were written.
func (f *Flow) writeSealed(k int) (int, error) {
	if k == 0 {
		return 0, nil
	}
	n, err := f.data().WriteBatch(f.wout[:k])
	clear(f.wout[:k])
	if err != nil {
		return n, f.mapErr(err)
	}
	return n, nil
}

// writePacket sends one packet of the flow's raw service: sealed, if
// the flow is encrypted.
func (f *Flow) writePacket(b []byte) error {
	if f.sess == nil {
		return f.data().Write(b)
	}
	f.wmu.Lock()
	defer f.wmu.Unlock()
	p, err := f.sess.Seal(f.wbuf[:0], b)
	if err != nil {
		return err
	}
	return f.data().Write(p)
}

// PinFile is WithPin with the public key read from a key file (see
// seal.LoadPublic: 32 raw bytes).
func PinFile(path string) (Option, error) {
	k, err := seal.LoadPublic(path)
	if err != nil {
		return nil, err
	}
	return WithPin(k), nil
}

// IdentityFile is WithIdentity with the private key read from a key
// file (see seal.LoadIdentity: a 32-byte seed, mode 0600 or stricter).
func IdentityFile(path string) (Option, error) {
	k, err := seal.LoadIdentity(path)
	if err != nil {
		return nil, err
	}
	return WithIdentity(k), nil
}

// KeyFileOption is what the tools' -k FILE means: for a server
// (listen) its identity key, for a client the server key it pins. An
// empty path gives no option.
func KeyFileOption(path string, listen bool) ([]Option, error) {
	if path == "" {
		return nil, nil
	}
	var o Option
	var err error
	if listen {
		o, err = IdentityFile(path)
	} else {
		o, err = PinFile(path)
	}
	if err != nil {
		return nil, err
	}
	return []Option{o}, nil
}
