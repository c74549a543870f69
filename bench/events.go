package main

// -events: the timing promises of the README, measured. The tests
// assert these events with loose bounds (seconds), since a loaded
// machine must not turn them red; here each is timed n times and its
// median and maximum printed next to the promise:
//
//	down-on-ipcp-death  a local IPCP is killed (SIGKILL) under an open
//	                    flow: the client's blocked Read fails with
//	                    ErrDown (promise: within 1 s)
//	eof-on-close        one end of a flow closes: the other end's
//	                    blocked Read returns io.EOF (promise: within
//	                    100 ms), on a local layer (direct), a udp4 layer
//	                    and a unicast layer over it
//	carrier-down        root: `ip link set DEV down` on the veth of an
//	                    eth-dix layer between two namespaces: the flow
//	                    reports DOWN (promise: within 100 ms; timed from
//	                    just before the ip command starts, so it includes
//	                    starting that command)
//
// A row passes when its maximum is within the promise; the run exits 1
// when a row fails (JSON: bench/out/events.json).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"time"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/internal/topo"
	"github.com/ouro-net/ouro/irmd"
	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/logging"
)

// EventRow is one promise, measured.
type EventRow struct {
	Event     string    `json:"event"`
	Path      string    `json:"path"`
	PromiseMS float64   `json:"promise_ms"`
	N         int       `json:"n"`
	MedianMS  float64   `json:"median_ms"`
	MaxMS     float64   `json:"max_ms"`
	SamplesMS []float64 `json:"samples_ms"`
	Pass      bool      `json:"pass"`
	Error     string    `json:"error,omitempty"`
}

// EventsResult is the -events report.
type EventsResult struct {
	Started time.Time  `json:"started"`
	Rows    []EventRow `json:"rows"`
	Pass    bool       `json:"pass"`
}

// eventsRun measures every promise n times.
func eventsRun(ctx context.Context, e *env, n int, out, progress io.Writer) (*EventsResult, error) {
	r := &EventsResult{Started: time.Now(), Pass: true}
	add := func(event, path string, promise time.Duration, samples []time.Duration, err error) {
		row := EventRow{Event: event, Path: path, PromiseMS: ms(promise), N: len(samples)}
		for _, s := range samples {
			row.SamplesMS = append(row.SamplesMS, ms(s))
		}
		if len(samples) > 0 {
			sorted := slices.Sorted(slices.Values(row.SamplesMS))
			row.MedianMS, row.MaxMS = median(sorted), sorted[len(sorted)-1]
		}
		row.Pass = err == nil && len(samples) == n && row.MaxMS <= row.PromiseMS
		if err != nil {
			row.Error = err.Error()
		}
		r.Pass = r.Pass && row.Pass
		r.Rows = append(r.Rows, row)
		fmt.Fprintf(progress, "bench: events: %s %s: median %.1f ms, max %.1f ms (promise %.0f ms) %s\n",
			event, path, row.MedianMS, row.MaxMS, row.PromiseMS, row.Error)
	}

	// A local layer: DOWN when its IPCP dies, EOF on close (direct flows).
	dir, closeLocal, err := e.localDaemon()
	if err != nil {
		return nil, err
	}
	s, err := downOnDeath(ctx, dir, n)
	add("down-on-ipcp-death", pathLocal, time.Second, s, err)
	if err := topo.Call(dir, ctrl.OpIPCPBootstrap, ctrl.IPCPBootstrap{Type: "local", Name: "lo", Layer: "lo"}, nil); err != nil {
		closeLocal()
		return nil, fmt.Errorf("bootstrap the local layer: %w", err)
	}
	s, err = eofOnClose(ctx, dir, dir, "lo", n)
	add("eof-on-close", pathLocal, 100*time.Millisecond, s, err)
	closeLocal()

	// Two hosts over udp4, with a unicast layer on top.
	tp, err := e.topo(ctx, []string{"a", "b"}, [][2]string{{"a", "b"}}, false)
	if err != nil {
		return nil, fmt.Errorf("build two hosts: %w", err)
	}
	if _, err := tp.WaitRoute("a", "b", 1, 20*time.Second); err != nil {
		tp.Close()
		return nil, err
	}
	for _, c := range []struct{ path, layer string }{{pathUDP, "udp1"}, {pathUnicast1, "net"}} {
		s, err := eofOnClose(ctx, tp.Hosts["a"].Dir, tp.Hosts["b"].Dir, c.layer, n)
		add("eof-on-close", c.path, 100*time.Millisecond, s, err)
	}
	tp.Close()

	if os.Geteuid() != 0 {
		add("carrier-down", "eth-dix", 100*time.Millisecond, nil, errors.New("not measured: needs root (namespaces, veth)"))
		r.Pass = false
	} else {
		s, err := carrierDown(ctx, e, n)
		add("carrier-down", "eth-dix", 100*time.Millisecond, s, err)
	}

	fmt.Fprintf(out, "%-20s %-10s %8s %4s %10s %10s  %s\n", "event", "path", "promise", "n", "median ms", "max ms", "verdict")
	for _, row := range r.Rows {
		verdict := "kept"
		switch {
		case row.Error != "":
			verdict = row.Error
		case !row.Pass:
			verdict = "BROKEN"
		}
		fmt.Fprintf(out, "%-20s %-10s %6.0fms %4d %10.1f %10.1f  %s\n", row.Event, row.Path, row.PromiseMS, row.N, row.MedianMS, row.MaxMS, verdict)
	}
	return r, nil
}

// localDaemon starts one IRMd in this process on a fresh run directory.
func (e *env) localDaemon() (string, func(), error) {
	dir, err := os.MkdirTemp("", "ouro-bench")
	if err != nil {
		return "", nil, err
	}
	lvl, _ := logging.ParseLevel(e.logLevel)
	d, err := irmd.Start(irmd.Config{RunDir: dir, Log: logging.New("irmd", lvl, e.log), Types: ipcpTypes(),
		Exe: e.irm, ChildLogLevel: e.logLevel})
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("start IRMd: %w", err)
	}
	return dir, func() {
		d.Close()
		os.RemoveAll(dir)
	}, nil
}

// flowPair allocates a raw flow to name in layer from cliDir and accepts
// it at srvDir (where name must be registered and l listens).
func flowPair(ctx context.Context, l *flow.Listener, cliDir, name, layer string) (cli, srv *flow.Flow, err error) {
	c, err := allocRetry(ctx, name, []flow.Option{flow.WithRunDir(cliDir), flow.WithLayer(layer)})
	if err != nil {
		return nil, nil, err
	}
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := l.Accept(actx)
	if err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("accept: %w", err)
	}
	return c.(*flow.Flow), s, nil
}

// readUntilError starts a reader on f and returns when its Read failed,
// with the time and the error.
func readUntilError(f *flow.Flow) <-chan timedErr {
	ch := make(chan timedErr, 1)
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, err := f.Read(buf); err != nil {
				ch <- timedErr{time.Now(), err}
				return
			}
		}
	}()
	return ch
}

type timedErr struct {
	at  time.Time
	err error
}

// waitRead waits (at most 10 s) for the reader and checks its error.
func waitRead(ch <-chan timedErr, since time.Time, want error) (time.Duration, error) {
	select {
	case r := <-ch:
		if !errors.Is(r.err, want) {
			return 0, fmt.Errorf("read ended with %v, want %v", r.err, want)
		}
		return r.at.Sub(since), nil
	case <-time.After(10 * time.Second):
		return 0, fmt.Errorf("no %v within 10 s", want)
	}
}

// downOnDeath kills a fresh local IPCP under an open flow n times.
func downOnDeath(ctx context.Context, dir string, n int) ([]time.Duration, error) {
	var samples []time.Duration
	for i := range n {
		layer, name := fmt.Sprintf("die%d", i), fmt.Sprintf("ev-die%d", i)
		if err := topo.Call(dir, ctrl.OpIPCPBootstrap, ctrl.IPCPBootstrap{Type: "local", Name: layer, Layer: layer}, nil); err != nil {
			return samples, fmt.Errorf("bootstrap: %w", err)
		}
		if err := topo.Call(dir, ctrl.OpNameRegister, ctrl.NameRegister{Name: name, Layers: []string{layer}}, nil); err != nil {
			return samples, err
		}
		var list ctrl.IPCPList
		if err := topo.Call(dir, ctrl.OpIPCPList, nil, &list); err != nil {
			return samples, err
		}
		pid := 0
		for _, p := range list.IPCPs {
			if p.Name == layer {
				pid = p.PID
			}
		}
		if pid == 0 {
			return samples, fmt.Errorf("no pid for IPCP %s", layer)
		}
		d, err := func() (time.Duration, error) {
			l, err := flow.Listen(name, flow.WithRunDir(dir))
			if err != nil {
				return 0, err
			}
			defer l.Close()
			cli, srv, err := flowPair(ctx, l, dir, name, layer)
			if err != nil {
				return 0, err
			}
			defer cli.Close()
			defer srv.Close()
			done := readUntilError(cli)
			t0 := time.Now()
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				return 0, err
			}
			return waitRead(done, t0, flow.ErrDown)
		}()
		if err != nil {
			return samples, err
		}
		samples = append(samples, d)
	}
	return samples, nil
}

// eofOnClose closes the client end of a fresh flow n times and times
// the server end's io.EOF. The name is registered in layer at srvDir.
func eofOnClose(ctx context.Context, cliDir, srvDir, layer string, n int) ([]time.Duration, error) {
	name := "ev-eof-" + layer
	if err := topo.Call(srvDir, ctrl.OpNameRegister, ctrl.NameRegister{Name: name, Layers: []string{layer}}, nil); err != nil {
		return nil, err
	}
	l, err := flow.Listen(name, flow.WithRunDir(srvDir))
	if err != nil {
		return nil, err
	}
	defer l.Close()
	var samples []time.Duration
	for range n {
		cli, srv, err := flowPair(ctx, l, cliDir, name, layer)
		if err != nil {
			return samples, err
		}
		// One packet each way first: the flow is up at both ends.
		if _, err := cli.Write([]byte("x")); err != nil {
			return samples, err
		}
		buf := make([]byte, 16)
		srv.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := srv.Read(buf); err != nil {
			return samples, fmt.Errorf("first packet: %w", err)
		}
		srv.SetReadDeadline(time.Time{})
		done := readUntilError(srv)
		t0 := time.Now()
		cli.Close()
		d, err := waitRead(done, t0, io.EOF)
		srv.Close()
		if err != nil {
			return samples, err
		}
		samples = append(samples, d)
	}
	return samples, nil
}

// carrierDown sets the veth of an eth-dix layer between two namespaces
// down n times under an open flow and times the DOWN event.
func carrierDown(ctx context.Context, e *env, n int) (samples []time.Duration, err error) {
	p := &shapedPath{irm: e.irm, logLevel: e.logLevel, log: e.log}
	defer p.Close()
	for _, ns := range []*string{&p.nsA, &p.nsB} {
		*ns = shapeName("ev")
		if err := runCmd("ip", "netns", "add", *ns); err != nil {
			return nil, err
		}
		name := *ns
		p.undo = append(p.undo, func() { exec.Command("ip", "netns", "del", name).Run() })
	}
	devA, devB := shapeName("eva"), shapeName("evb")
	p.undo = append(p.undo, func() { exec.Command("ip", "link", "del", devA).Run() })
	for _, s := range [][]string{
		{"ip", "link", "add", devA, "type", "veth", "peer", "name", devB},
		{"ip", "link", "set", devA, "netns", p.nsA},
		{"ip", "link", "set", devB, "netns", p.nsB},
		{"ip", "-n", p.nsA, "link", "set", devA, "up"},
		{"ip", "-n", p.nsB, "link", "set", devB, "up"},
	} {
		if err := runCmd(s[0], s[1:]...); err != nil {
			return nil, err
		}
	}
	if p.dirA, err = p.daemon(ctx, p.nsA); err != nil {
		return nil, err
	}
	if p.dirB, err = p.daemon(ctx, p.nsB); err != nil {
		return nil, err
	}
	const name = "ev-carrier"
	for _, s := range []func() error{
		func() error {
			return p.irmAt(p.nsA, p.dirA, "ipcp", "bootstrap", "type", "eth-dix", "name", "a.eth", "layer", "eth", "dev", devA)
		},
		func() error {
			return p.irmAt(p.nsB, p.dirB, "ipcp", "bootstrap", "type", "eth-dix", "name", "b.eth", "layer", "eth", "dev", devB)
		},
		func() error { return p.irmAt(p.nsB, p.dirB, "name", "register", name, "layer", "eth") },
	} {
		if err := s(); err != nil {
			return nil, err
		}
	}
	l, err := flow.Listen(name, flow.WithRunDir(p.dirB))
	if err != nil {
		return nil, err
	}
	defer l.Close()
	cli, srv, err := flowPair(ctx, l, p.dirA, name, "eth")
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	defer srv.Close()
	go func() { // the events come through Read
		buf := make([]byte, 2048)
		for {
			if _, err := cli.Read(buf); err != nil && !errors.Is(err, flow.ErrDown) {
				return
			}
		}
	}()
	wait := func(want flow.State) (time.Time, error) {
		for {
			select {
			case ev := <-cli.Events():
				if ev.State == want {
					return ev.At, nil
				}
			case <-time.After(10 * time.Second):
				return time.Time{}, fmt.Errorf("no %v event within 10 s", want)
			}
		}
	}
	for range n {
		t0 := time.Now()
		if err := runCmd("ip", "-n", p.nsA, "link", "set", devA, "down"); err != nil {
			return samples, err
		}
		at, err := wait(flow.Down)
		if err != nil {
			return samples, err
		}
		samples = append(samples, at.Sub(t0))
		if err := runCmd("ip", "-n", p.nsA, "link", "set", devA, "up"); err != nil {
			return samples, err
		}
		if _, err := wait(flow.Up); err != nil {
			return samples, err
		}
	}
	return samples, nil
}
