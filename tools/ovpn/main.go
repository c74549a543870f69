// Command ovpn carries IP over an ouro flow through a TUN device, as the
// C Ouroboros ovpn does, so that unmodified programs (ping, ssh, curl,
// iperf3, any TCP or UDP program) run over ouro and inherit its
// multihoming and failover.
//
//	ovpn -l -n NAME --ip ADDR/PREFIX [--dev TUN] [-q QOS] [-k KEY]          serve
//	ovpn    -n NAME --ip ADDR/PREFIX [--dev TUN] [-q QOS] [-x [-k KEY.pub]] dial
//	ovpn -genkey KEY                                                      new identity
//
// Each end creates a TUN device (default name ovpn0, ovpn1, ...), gives
// it its address and an MTU, and brings it up; closing the device on
// exit (SIGINT, SIGTERM) removes it. The client's MTU is the flow's
// largest packet (flow.MTU), so that nothing fragments below; the
// server's is the smallest among its clients' flows (1400 until the
// first one arrives). One IP packet travels as one flow packet, on a raw
// flow by default: TCP inside recovers its own losses, and a reliable
// flow under it would fight it. -q picks another QoS.
//
// One server takes several clients. A client opens its flow with a
// hello (hello.go: a small versioned control message that no IP packet
// can be mistaken for) naming its address; the server checks that the
// address is a host address of its own prefix and not in use, and then
// routes every packet from its TUN device by destination address to the
// client that owns it, and client-to-client packets straight across. A
// client may only send from its own address (other packets are dropped
// and counted as spoofed). A conflict, a bad address, an unknown
// version or a full server gets a refusal with a reason, which the
// client prints before exiting 1.
//
// If the flow dies (its IPCP is gone, the server closed it, or nothing
// arrived for --dead, default 5 s, while both ends send a keepalive
// after each second without traffic) the client keeps its TUN device
// up and reallocates with exponential backoff (100 ms to 5 s); a client
// reconnecting presents the random session of its first hello and gets
// its address back, so connections inside survive a partition that
// heals. Failover between the paths of a multihomed layer needs none of
// this: the layer below moves the flow.
//
// Bounds: a server serves at most --max-clients flows (default 64;
// more are refused "server full"), a flow that says no valid hello in
// 5 s is closed, each client's send queue holds 256 packets and 1 MiB, and a
// client flooding the server only fills its own flow. Every packet
// dropped is counted by reason.
//
// Status lines (text, or one JSON object per line with --json) report
// serving/up/down/retry/client-up/client-down events, every --status
// interval if set, and at exit, with the counters: "in" is what came
// over flows into the TUN device, "out" what left the TUN device over
// flows.
//
// -x makes the tunnel flow encrypted end to end (flow encryption, see
// package flow): the IPCPs and shims below carry ciphertext only. It is
// the client's choice; a server accepts plain and encrypted clients
// alike. -k FILE means what it means for oping, operf and ocbr
// (flow.KeyFileOption): a server's Ed25519 identity key (a 32-byte seed,
// mode 0600), with which it signs its encrypted flows' key exchanges,
// or the server public key a client pins (32 bytes; needs -x). A client
// whose server proves another key (or none) fails with "server identity
// check failed" and exits 1, also when it meets such a server while
// reconnecting: retrying cannot make the key right. Without -k the key
// exchange is unauthenticated: it stops an eavesdropper below the flow,
// not a man in the middle at allocation. -genkey FILE writes a new
// identity key to FILE and its public key to FILE.pub (as oping
// -genkey). Packets of an encrypted flow that fail to open (forged,
// truncated, replayed, stray key-exchange messages) are dropped by the
// flow library; the status lines count them among the drops
// (crypto-auth, crypto-short, crypto-replayed, crypto-handshake), and a
// server counts the key exchanges it refused (key-exchange-failed).
//
// Errors say what to fix: not root and no CAP_NET_ADMIN, no TUN
// support, the address already in use, the name not registered (or
// nobody serving it), a server key that is not the pinned one.
//
// Exit status: 0 after SIGINT/SIGTERM, 1 when the tunnel could not be
// set up or was refused, 2 on a usage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/lib/cliflag"
	"github.com/ouro-net/ouro/lib/clock"
	"github.com/ouro-net/ouro/lib/qos"
	"github.com/ouro-net/ouro/lib/seal"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// config is the parsed command line and the tunnel's timers and bounds.
type config struct {
	listen     bool
	name       string
	prefix     netip.Prefix
	dev        string
	qos        qos.Spec
	json       bool
	dir        string
	keyFile    string        // -k: the server's identity key, or the client's pinned server key
	keys       []flow.Option // what keyFile means, loaded by runConfig
	genKey     string        // -genkey: write a new identity key here and exit
	status     time.Duration
	maxClients int
	queue      int

	keepalive    time.Duration // a keepalive after this long without traffic
	dead         time.Duration // a flow silent this long is given up
	helloTimeout time.Duration // a hello must be answered (client) or arrive (server) within this
	helloRetry   time.Duration // the client repeats its hello this often
	refuseLinger time.Duration // the server answers hellos with its refusal this long
	allocTimeout time.Duration
	backoffMin   time.Duration
	backoffMax   time.Duration
	clock        clock.Clock
	// openTUN creates the device (openTUNIface; tests replace it).
	openTUN func(name string, p netip.Prefix, mtu int) (tunIface, error)
}

func (c *config) flowOpts() []flow.Option {
	return append([]flow.Option{flow.WithRunDir(c.dir)}, c.keys...)
}

// errUsage is a usage error, already explained.
var errUsage = errors.New("usage error")

func parse(args []string, stderr io.Writer) (*config, error) {
	c := &config{queue: 256, keepalive: time.Second, dead: 5 * time.Second, helloTimeout: 5 * time.Second,
		helloRetry: 250 * time.Millisecond, refuseLinger: time.Second, allocTimeout: 10 * time.Second,
		backoffMin: 100 * time.Millisecond, backoffMax: 5 * time.Second, clock: clock.Real(), openTUN: openTUNIface}
	fs := flag.NewFlagSet("ovpn", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&c.listen, "l", false, "serve: accept clients' flows on NAME")
	fs.StringVar(&c.name, "n", "ovpn", "name to serve or dial")
	ip := fs.String("ip", "", "this end's tunnel address and prefix, ADDR/PREFIX (required)")
	fs.StringVar(&c.dev, "dev", "ovpn%d", "TUN device name (%d: the kernel picks a number)")
	qosName := fs.String("q", "raw", "QoS of the tunnel flow ("+qos.Names()+")")
	fs.StringVar(qosName, "qos", "raw", "QoS (same as -q)")
	encrypt := fs.Bool("x", false, "encrypt the tunnel flow end to end (a client's choice; a server accepts both)")
	fs.StringVar(&c.keyFile, "k", "", "key file: the server's identity key (-l), or the server public key a client pins (with -x)")
	fs.StringVar(&c.genKey, "genkey", "", "write a new identity key to FILE (mode 0600) and its public key to FILE.pub, then exit")
	fs.BoolVar(&c.json, "json", false, "status lines as JSON, one object per line")
	fs.StringVar(&c.dir, "rundir", "", "IRMd run directory (default $OURO_RUNDIR)")
	fs.Var(cliflag.Duration{D: &c.status}, "status", "print the counters this often (0: only on events and at exit)")
	fs.IntVar(&c.maxClients, "max-clients", 64, "serve at most this many client flows")
	fs.Var(cliflag.Duration{D: &c.dead}, "dead", "give a flow up after this long without a packet")
	if err := fs.Parse(args); err != nil {
		return nil, errUsage
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if c.genKey != "" {
		return c, nil
	}
	if *ip == "" {
		return nil, errors.New("--ip ADDR/PREFIX is required (for example --ip 10.9.0.1/24)")
	}
	p, err := netip.ParsePrefix(*ip)
	if err != nil {
		return nil, fmt.Errorf("--ip %q: want ADDR/PREFIX such as 10.9.0.1/24: %v", *ip, err)
	}
	c.prefix = netip.PrefixFrom(p.Addr().Unmap(), p.Bits())
	if !c.prefix.Addr().IsGlobalUnicast() {
		return nil, fmt.Errorf("--ip %s: not a unicast address", p)
	}
	if c.qos, err = qos.Parse(*qosName); err != nil {
		return nil, err
	}
	c.qos.Encrypt = *encrypt
	if c.keyFile != "" && !c.qos.Encrypt && !c.listen {
		return nil, errors.New("-k pins the server key of an encrypted tunnel: add -x")
	}
	if c.maxClients < 1 {
		return nil, errors.New("--max-clients must be at least 1")
	}
	if c.dead < 2*c.keepalive {
		return nil, fmt.Errorf("--dead must be at least %v (two keepalive intervals)", 2*c.keepalive)
	}
	if len(c.dev) > 15 {
		return nil, fmt.Errorf("--dev %q: interface names have at most 15 bytes", c.dev)
	}
	return c, nil
}

// run runs one command line until ctx ends.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c, err := parse(args, stderr)
	if err != nil {
		if err != errUsage {
			fmt.Fprintf(stderr, "ovpn: %v\n", err)
		}
		return 2
	}
	return runConfig(ctx, c, stdout, stderr)
}

// runConfig runs a parsed command line until ctx ends.
func runConfig(ctx context.Context, c *config, stdout, stderr io.Writer) int {
	var err error
	if c.genKey != "" {
		if err := seal.GenerateIdentity(c.genKey, c.genKey+".pub"); err != nil {
			fmt.Fprintf(stderr, "ovpn: %v\n", err)
			return 1
		}
		return 0
	}
	if c.keys, err = flow.KeyFileOption(c.keyFile, c.listen); err != nil {
		fmt.Fprintf(stderr, "ovpn: -k: %v\n", err)
		return 1
	}
	rep := &reporter{w: stdout, json: c.json, now: c.clock.Now}
	st := &counters{}
	if c.listen {
		err = runServer(ctx, c, st, rep)
	} else {
		err = newDialer(c, st, rep).run(ctx)
	}
	if err != nil {
		fmt.Fprintf(stderr, "ovpn: %v\n", err)
		rep.emit(event{Event: "error", Error: err.Error()}, "error: "+err.Error())
		return 1
	}
	return 0
}

// runServer serves until ctx ends.
func runServer(ctx context.Context, c *config, st *counters, rep *reporter) error {
	// The TUN device first: its errors (privilege, address in use) are
	// the ones a user can fix locally.
	tun, err := c.openTUN(c.dev, c.prefix, defaultMTU)
	if err != nil {
		return err
	}
	l, err := flow.Listen(c.name, c.flowOpts()...)
	if err != nil {
		tun.Close()
		return err
	}
	defer l.Close()
	st.keyExchangeFailures = l.HandshakeFailures
	s := newServer(c, tun, st, rep)
	s.setMTU = tun.SetMTU
	// A device that fails under the server stops it.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var tunErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := s.fromTUN(); sctx.Err() == nil {
			tunErr = err
			cancel()
		}
	}()
	stopStatus := c.statusLoop(ctx, rep, st, tun.Name())
	rep.emit(event{Event: "serving", Dev: tun.Name(), IP: c.prefix.String(), MTU: tun.MTU()},
		fmt.Sprintf("serving %s on %s %s (mtu %d)", c.name, tun.Name(), c.prefix, tun.MTU()))
	err = s.serve(sctx, l)
	stopStatus()
	cancel()
	tun.Close() // removes the device; fromTUN returns
	wg.Wait()
	rep.emit(event{Event: "stopped", Dev: tun.Name(), Stats: ptr(st.snapshot())}, "stopped, "+st.snapshot().String())
	if tunErr != nil && ctx.Err() == nil {
		return tunErr
	}
	return err
}

// statusLoop prints the counters every c.status until ctx ends or the
// returned stop is called (which waits for it).
func (c *config) statusLoop(ctx context.Context, rep *reporter, st *counters, dev string) (stop func()) {
	if c.status <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := c.clock.NewTimer(c.status)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-done:
				return
			case <-t.C():
				s := st.snapshot()
				rep.emit(event{Event: "status", Dev: dev, Stats: &s}, "status: "+s.String())
				t.Reset(c.status)
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}
