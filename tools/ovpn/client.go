package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/lib/seal"
)

// refusedError is a server's refusal of a hello.
type refusedError struct {
	code   byte
	reason string
}

func (e *refusedError) Error() string { return "server refused: " + e.reason }

// fatal reports whether retrying cannot help.
func (e *refusedError) fatal() bool { return e.code != refuseFull }

// dialer is the client side: one flow at a time to the server, replaced
// with backoff when it dies, under one TUN device that stays up.
type dialer struct {
	cfg     *config
	st      *counters
	rep     *reporter
	session uint64
	cur     atomic.Pointer[flow.Flow]
}

func newDialer(cfg *config, st *counters, rep *reporter) *dialer {
	return &dialer{cfg: cfg, st: st, rep: rep, session: rand.Uint64()}
}

// dial allocates a flow to the server and says hello until welcomed or
// refused.
func (d *dialer) dial(ctx context.Context) (*flow.Flow, control, error) {
	actx, cancel := context.WithTimeout(ctx, d.cfg.allocTimeout)
	f, err := flow.Alloc(actx, d.cfg.name, d.cfg.qos, d.cfg.flowOpts()...)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil, control{}, ctx.Err()
		}
		if errors.Is(err, seal.ErrIdentity) {
			return nil, control{}, fmt.Errorf("allocate a flow to %q: %w (-k %s pins another server key: the wrong key file, or not the server you meant)",
				d.cfg.name, err, d.cfg.keyFile)
		}
		return nil, control{}, fmt.Errorf("allocate a flow to %q: %w (is an ovpn -l serving it, and the name registered with irm name register?)",
			d.cfg.name, err)
	}
	stop := context.AfterFunc(ctx, func() { f.Close() })
	defer stop()
	w, err := d.hello(f)
	if err != nil {
		f.Close()
		if ctx.Err() != nil {
			return nil, control{}, ctx.Err()
		}
		return nil, control{}, err
	}
	return f, w, nil
}

// hello sends hellos on f every helloRetry until the server answers.
func (d *dialer) hello(f *flow.Flow) (control, error) {
	h := control{Type: msgHello, Session: d.session, Prefix: d.cfg.prefix}.encode()
	buf := make([]byte, maxMTU)
	deadline := time.Now().Add(d.cfg.helloTimeout)
	defer f.SetReadDeadline(time.Time{})
	for time.Now().Before(deadline) {
		if _, err := f.Write(h); err != nil {
			return control{}, fmt.Errorf("send hello: %w", err)
		}
		f.SetReadDeadline(time.Now().Add(d.cfg.helloRetry))
		for {
			n, err := f.Read(buf)
			if isTimeout(err) {
				break
			}
			if err != nil {
				return control{}, fmt.Errorf("waiting for the server's welcome: %w", err)
			}
			m, err := decodeControl(buf[:n])
			if err != nil {
				continue // data or junk before the welcome
			}
			switch m.Type {
			case msgWelcome:
				return m, nil
			case msgRefuse:
				return control{}, &refusedError{code: m.Code, reason: m.Reason}
			}
		}
	}
	return control{}, fmt.Errorf("no answer to hello from %q in %v", d.cfg.name, d.cfg.helloTimeout)
}

// run keeps the tunnel up until ctx ends: the first dial's failure is
// returned (nothing is set up yet); later the flow is reallocated with
// backoff whenever it dies, and the TUN device stays up meanwhile.
func (d *dialer) run(ctx context.Context) (rerr error) {
	f, w, err := d.dial(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	tun, err := d.cfg.openTUN(d.cfg.dev, d.cfg.prefix, f.MTU())
	if err != nil {
		f.Close()
		return err
	}
	// A device that fails under the client stops it.
	outer := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var tunErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := d.fromTUN(tun); ctx.Err() == nil {
			tunErr = err
			cancel()
		}
	}()
	defer func() {
		cancel()
		tun.Close() // removes the device; fromTUN returns
		wg.Wait()
		d.rep.emit(event{Event: "stopped", Dev: tun.Name(), Stats: ptr(d.st.snapshot())},
			"stopped, "+d.st.snapshot().String())
		if tunErr != nil && outer.Err() == nil && rerr == nil {
			rerr = tunErr
		}
	}()
	stopStatus := d.cfg.statusLoop(ctx, d.rep, d.st, tun.Name())
	defer stopStatus()
	for {
		d.rep.emit(event{Event: "up", Dev: tun.Name(), IP: d.cfg.prefix.String(), Peer: w.Prefix.Addr().String(),
			Flow: f.ID(), Layer: f.Layer(), MTU: tun.MTU()},
			fmt.Sprintf("up: %s %s, server %s, flow %d in layer %s, mtu %d", tun.Name(), d.cfg.prefix, w.Prefix.Addr(),
				f.ID(), f.Layer(), tun.MTU()))
		why := d.carry(ctx, f, tun)
		f.Close()
		if ctx.Err() != nil {
			return nil
		}
		d.rep.emit(event{Event: "down", Dev: tun.Name(), Flow: f.ID(), Error: why, Stats: ptr(d.st.snapshot())},
			fmt.Sprintf("flow %d down: %s; reallocating, %s stays up", f.ID(), why, tun.Name()))
		backoff := d.cfg.backoffMin
		for {
			t := d.cfg.clock.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C():
			}
			f, w, err = d.dial(ctx)
			if ctx.Err() != nil {
				return nil
			}
			if err == nil {
				break
			}
			var re *refusedError
			if errors.As(err, &re) && re.fatal() || errors.Is(err, seal.ErrIdentity) {
				return err
			}
			backoff = min(2*backoff, d.cfg.backoffMax)
			d.rep.emit(event{Event: "retry", Error: err.Error(), Retry: backoff.String()},
				fmt.Sprintf("%v; retrying in %v", err, backoff))
		}
		if err := tun.SetMTU(f.MTU()); err != nil {
			d.rep.emit(event{Event: "error", Error: err.Error()}, err.Error())
		}
	}
}

// carry moves packets from f to the TUN device (fromTUN moves the other
// way) until f fails or stays silent for the dead interval, and returns why.
func (d *dialer) carry(ctx context.Context, f *flow.Flow, tun io.Writer) string {
	d.st.track(f)
	defer d.st.retire(f)
	d.cur.Store(f)
	defer d.cur.Store(nil)
	stop := context.AfterFunc(ctx, func() { f.Close() })
	defer stop()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.keepalive(f, done)
	}()
	defer func() {
		close(done)
		wg.Wait()
	}()
	buf := make([]byte, maxMTU)
	var armed time.Time
	for {
		if now := time.Now(); now.Sub(armed) > d.cfg.dead/4 {
			f.SetReadDeadline(now.Add(d.cfg.dead))
			armed = now
		}
		n, err := f.Read(buf)
		if err != nil {
			switch {
			case errors.Is(err, io.EOF):
				return "the server closed the flow"
			case isTimeout(err):
				return fmt.Sprintf("nothing from the server for %v", d.cfg.dead)
			}
			return err.Error()
		}
		p := buf[:n]
		if isControl(p) {
			m, err := decodeControl(p)
			if err != nil {
				d.st.drop(dropBadControl)
			} else if m.Type == msgRefuse {
				return (&refusedError{code: m.Code, reason: m.Reason}).Error()
			}
			continue
		}
		if _, ok := ipDst(p); !ok {
			d.st.drop(dropNotIP)
			continue
		}
		if _, err := tun.Write(p); err != nil {
			d.st.drop(dropWrite)
			continue
		}
		d.st.in(n)
	}
}

// keepalive sends a keepalive on f whenever nothing else went out for
// a keepalive interval, until done.
func (d *dialer) keepalive(f *flow.Flow, done <-chan struct{}) {
	ka := control{Type: msgKeepalive}.encode()
	t := d.cfg.clock.NewTimer(d.cfg.keepalive)
	defer t.Stop()
	last := d.st.pktsOut.Load()
	for {
		select {
		case <-done:
			return
		case <-t.C():
			if now := d.st.pktsOut.Load(); now == last {
				f.Write(ka)
			} else {
				last = now
			}
			t.Reset(d.cfg.keepalive)
		}
	}
}

// fromTUN reads packets from the TUN device and writes each to the
// current flow, counting a drop while there is none. It returns when the
// device fails or is closed.
func (d *dialer) fromTUN(tun io.Reader) error {
	buf := make([]byte, maxMTU)
	for {
		n, err := tun.Read(buf)
		if err != nil {
			return fmt.Errorf("read TUN: %w", err)
		}
		p := buf[:n]
		if _, ok := ipDst(p); !ok {
			d.st.drop(dropNotIP)
			continue
		}
		f := d.cur.Load()
		if f == nil {
			d.st.drop(dropNoFlow)
			continue
		}
		if _, err := f.Write(p); err != nil {
			if errors.Is(err, flow.ErrTooBig) {
				d.st.drop(dropTooBig)
			} else {
				d.st.drop(dropWrite)
			}
			continue
		}
		d.st.out(n)
	}
}

func ptr[T any](v T) *T { return &v }
