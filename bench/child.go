package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/flow/ping"
	"github.com/ouro-net/ouro/tools/operf/perf"
)

// serveArg is the hidden first argument that makes this program the
// serving side of a measurement, in its own process: `bench __serve udp`
// runs a UDP echo and a UDP sink on 127.0.0.1; `bench __serve flow DIR`
// listens on the bench names at the IRMd of run directory DIR. Either
// prints one line when ready and runs until its stdin closes.
const serveArg = "__serve"

// Names the flow server listens on.
const (
	pingName = "bench-ping"
	perfName = "bench-perf"
)

// serveMain is the child's main; it returns the exit status.
func serveMain(args []string) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // owned: stdin closes when the parent stops us or dies
		io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	var err error
	switch {
	case len(args) == 1 && args[0] == "udp":
		err = serveUDP(ctx)
	case len(args) == 2 && args[0] == "flow":
		err = serveFlows(ctx, args[1])
	default:
		err = fmt.Errorf("usage: %s udp | %s flow RUNDIR", serveArg, serveArg)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench server: %v\n", err)
		return 1
	}
	return 0
}

// serveUDP echoes oping probes on one socket and counts perf runs on
// another, printing "udp ECHOADDR SINKADDR RCVBUF".
func serveUDP(ctx context.Context) error {
	var conns [2]*peerConn
	buf := 0
	for i := range conns {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return fmt.Errorf("listen: %w", err)
		}
		defer c.Close()
		if buf, err = setBuffers(c); err != nil {
			return err
		}
		conns[i] = &peerConn{UDPConn: c}
	}
	stop := context.AfterFunc(ctx, func() {
		for _, c := range conns {
			c.SetReadDeadline(time.Now())
		}
	})
	defer stop()
	fmt.Printf("udp %s %s %d\n", conns[0].LocalAddr(), conns[1].LocalAddr(), buf)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		ping.Echo(conns[0])
	}()
	var serr error
	go func() {
		defer wg.Done()
		serr = perf.Serve(ctx, conns[1], nil)
	}()
	wg.Wait()
	return serr
}

// serveFlows answers oping and perf flows on the bench names.
func serveFlows(ctx context.Context, dir string) error {
	lp, err := flow.Listen(pingName, flow.WithRunDir(dir))
	if err != nil {
		return err
	}
	defer lp.Close()
	lf, err := flow.Listen(perfName, flow.WithRunDir(dir))
	if err != nil {
		return err
	}
	defer lf.Close()
	fmt.Println("flow ready")
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Add(2)
	go func() {
		defer wg.Done()
		errs[0] = ping.Serve(ctx, lp, nil)
	}()
	go func() {
		defer wg.Done()
		errs[1] = perf.ServeFlows(ctx, lf, nil, nil)
	}()
	wg.Wait()
	return errors.Join(errs...)
}

// child is a serving copy of this program (see serveArg).
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{}
	// Ready is the line it printed when ready, split into fields.
	Ready []string
}

// startChild starts a serving copy of this program and waits for its
// ready line.
func startChild(args ...string) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find this program: %w", err)
	}
	cmd := exec.Command(exe, append([]string{serveArg}, args...)...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start server process: %w", err)
	}
	c := &child{cmd: cmd, stdin: stdin, done: make(chan struct{})}
	line := make(chan string, 1)
	go func() { // owned: ends at the first line or when the child exits
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		go func() { // owned: ends when the child exits
			cmd.Wait()
			close(c.done)
		}()
		if c.Ready = strings.Fields(s); len(c.Ready) == 0 {
			c.Stop()
			return nil, fmt.Errorf("server process %v failed to start", args)
		}
		return c, nil
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		<-line
		cmd.Wait()
		return nil, fmt.Errorf("server process %v did not get ready", args)
	}
}

// Stop closes the child's stdin, which ends it, and kills it if it
// lingers.
func (c *child) Stop() {
	c.stdin.Close()
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
	}
}
