package unicast

import (
	"context"
	"errors"
	"fmt"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/qos"
	"github.com/ouro-net/ouro/lib/seal"
)

// Authenticated layers.
//
// A layer bootstrapped with `secret FILE` admits only members that
// prove they hold the secret in FILE (irm key generate: 32 random
// bytes, mode 0600). The IPCP reads the file itself, so the secret
// never travels in a control message, a log line, a status or the
// layer configuration (which only says Secret: true); the file is
// refused if group or others may read it or its length is wrong.
//
// Every lower flow of a secret layer -- the enrollment flow and every
// adjacency flow, on the allocating side and on this IPCP's listeners
// alike -- is a sealed flow of the flow library whose handshake proves
// the secret (flow.WithPSK, seal's PSK handshake: hybrid X25519 +
// ML-KEM-768 with the secret mixed into HKDF and a MAC each way, the
// server checking the client's before any public-key work). So every
// management frame and data packet on an adjacency is AES-256-GCM
// sealed with counter nonces, a replay window and key rollover, and a
// frame that fails to open is dropped and counted per adjacency
// (Flow.Crypto, shown by `irm layer show`).
//
// Why reuse sealed flows rather than seal frames inside the IPCP:
// one implementation of the handshake, sealing, replay window and
// bounds serves applications and layers alike, and the IPCP's frame
// handling does not change; the price is seal.Overhead (25 bytes) per
// packet on every adjacency, which the layer's MTU accounts for.
//
// A stranger who allocates an encrypted flow to a member's name and
// cannot prove the secret gets no answer: the flow library closes the
// flow at once and counts why (flow.HandshakeStats). A plain flow
// (a joiner without a secret) reaches the IPCP, which answers its
// enrollment request or hello with the fixed refusal authRefusal and
// nothing else, so an operator who forgot the secret sees a clear
// "enrollment refused: authentication failed" at once; a stranger
// learns only that the layer wants a secret. Either way nothing of the
// stranger enters the layer: no member, no directory entry, no route.

// authRefusal is the whole answer to an unauthenticated joiner.
const authRefusal = "authentication failed"

// SecretParam is the bootstrap parameter naming the layer secret's file.
const SecretParam = "secret"

// layerPSK is the layer's secret, nil in an open layer.
func (u *IPCP) layerPSK() *seal.PSK { return u.psk.Load() }

// lowerOpts are the options of every lower flow this IPCP allocates.
func (u *IPCP) lowerOpts(extra ...flow.Option) []flow.Option {
	o := append([]flow.Option{flow.WithDialer(u.h.Dial), flow.WithForwarding()}, extra...)
	if p := u.layerPSK(); p != nil {
		o = append(o, flow.WithPSK(p))
	}
	return o
}

// unauthenticated says whether a lower flow must be refused: the layer
// has a secret and the flow did not prove it.
func (u *IPCP) unauthenticated(f *flow.Flow) bool {
	return u.layerPSK() != nil && !f.Authenticated()
}

// EnrollSecret joins a secret layer with the secret in the file secret.
func (u *IPCP) EnrollSecret(ctx context.Context, name, dst, secret string) (ctrl.IPCPBootstrapReply, error) {
	psk, err := seal.LoadPSK(secret, nil)
	if err != nil {
		return ctrl.IPCPBootstrapReply{}, fmt.Errorf("enroll in %s: %w", name, err)
	}
	return u.enroll(ctx, name, dst, psk)
}

// authErr turns a failed authentication into the error an operator
// sees.
func authErr(layer, dst string, err error) error {
	if errors.Is(err, flow.ErrAuth) {
		return fmt.Errorf("enroll in %s via %s: enrollment refused: %w (no authenticated answer: %s holds another secret, or none)", layer, dst, flow.ErrAuth, dst)
	}
	return nil
}

// requireEncrypt refuses a flow without end-to-end encryption in a
// layer bootstrapped with `encrypt required`, on the allocating member
// and (should a member ask anyway) on the accepting one. Refusing,
// rather than upgrading the flow, because the flow library decides on
// the key exchange from the QoS its application asked for, and the
// allocation's answer does not carry a changed QoS back to it; the
// error says what to do.
func (u *IPCP) requireEncrypt(q qos.Spec) error {
	if u.cfg.Encrypt && !q.Encrypt {
		return fmt.Errorf("layer %s requires end-to-end encrypted flows (encrypt required): allocate with -x (qos.Spec.Encrypt)", u.cfg.Name)
	}
	return nil
}

// handshakeStats sums the refused key exchanges of the listeners.
func (u *IPCP) handshakeStats() flow.HandshakeStats {
	u.mu.Lock()
	defer u.mu.Unlock()
	var t flow.HandshakeStats
	for _, l := range u.listeners {
		s := l.Handshakes()
		t.Failed += s.Failed
		t.Auth += s.Auth
		t.Replayed += s.Replayed
		t.Malformed += s.Malformed
		t.Evicted += s.Evicted
	}
	return t
}
