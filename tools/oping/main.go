// Command oping measures round trips over an ouro flow, as the C
// Ouroboros oping does: `oping -l` serves (echoes) on a name, and
// `oping -n NAME` pings it and prints one line per reply and a summary.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/flow/ping"
	"github.com/ouro-net/ouro/lib/cliflag"
	"github.com/ouro-net/ouro/lib/qos"
	"github.com/ouro-net/ouro/lib/seal"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("oping", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.Bool("l", false, "serve: echo probes on NAME")
	name := fs.String("n", "oping", "name to serve or ping")
	count := fs.Int("c", 0, "probes to send (0: until -d or interrupted)")
	interval := time.Second
	fs.Var(cliflag.Duration{D: &interval}, "i", "interval between probes (Go duration, bare number = ms; 0 = back to back)")
	flood := fs.Bool("f", false, "flood: send the next probe when the reply arrives")
	size := fs.Int("s", 64, "probe size in bytes")
	var duration time.Duration
	fs.Var(cliflag.Duration{D: &duration}, "d", "run for this long")
	qosName := fs.String("q", "raw", "QoS ("+qos.Names()+")")
	fs.StringVar(qosName, "qos", "raw", "QoS (same as -q)")
	quiet := fs.Bool("Q", false, "quiet: print only the summary")
	asJSON := fs.Bool("json", false, "print one JSON summary instead of text")
	dir := fs.String("rundir", "", "IRMd run directory (default $OURO_RUNDIR)")
	encrypt := fs.Bool("x", false, "encrypt the flow end to end")
	keyFile := fs.String("k", "", "key file: the server's identity key (-l), or the server public key a client pins (with -x)")
	genKey := fs.String("genkey", "", "write a new identity key to FILE (mode 0600) and its public key to FILE.pub, then exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "oping: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *genKey != "" {
		if err := seal.GenerateIdentity(*genKey, *genKey+".pub"); err != nil {
			fmt.Fprintf(stderr, "oping: %v\n", err)
			return 1
		}
		return 0
	}
	q, err := qos.Parse(*qosName)
	if err != nil {
		fmt.Fprintf(stderr, "oping: %v\n", err)
		return 2
	}
	q.Encrypt = *encrypt
	if *keyFile != "" && !*encrypt && !*listen {
		fmt.Fprintln(stderr, "oping: -k pins a key of an encrypted flow: add -x")
		return 2
	}
	if *size < ping.HeaderSize || *size > 65000 {
		fmt.Fprintf(stderr, "oping: size must be between %d and 65000 bytes\n", ping.HeaderSize)
		return 2
	}
	if *count < 0 {
		fmt.Fprintln(stderr, "oping: count must not be negative")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	keys, err := flow.KeyFileOption(*keyFile, *listen)
	if err != nil {
		fmt.Fprintf(stderr, "oping: %v\n", err)
		return 1
	}
	opts := append([]flow.Option{flow.WithRunDir(*dir)}, keys...)

	if *listen {
		l, err := flow.Listen(*name, opts...)
		if err != nil {
			fmt.Fprintf(stderr, "oping: %v\n", err)
			return 1
		}
		defer l.Close()
		if !*quiet {
			fmt.Fprintf(stdout, "oping: serving %s\n", *name)
		}
		logf := func(format string, a ...any) { fmt.Fprintf(stdout, "oping: "+format+"\n", a...) }
		if *quiet {
			logf = nil
		}
		if err := ping.Serve(ctx, l, logf); err != nil {
			fmt.Fprintf(stderr, "oping: %v\n", err)
			return 1
		}
		return 0
	}

	cfg := ping.Config{Name: *name, QoS: q, Count: *count, Interval: interval, Flood: *flood,
		Size: *size, Duration: duration, Opts: opts}
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	f, err := flow.Alloc(actx, *name, q, opts...)
	cancel()
	if err != nil {
		fmt.Fprintf(stderr, "oping: %v\n", err)
		if *asJSON {
			json.NewEncoder(stdout).Encode(map[string]string{"name": *name, "error": err.Error()})
		}
		return 1
	}
	defer f.Close()
	if !*quiet && !*asJSON {
		cfg.Out = stdout
		fmt.Fprintf(stdout, "Pinging %s with %d bytes of data (%d packets):\n\n", *name, *size, *count)
	}
	st, err := ping.RunOn(ctx, f, cfg)
	if st == nil {
		fmt.Fprintf(stderr, "oping: %v\n", err)
		if *asJSON {
			json.NewEncoder(stdout).Encode(map[string]string{"name": *name, "error": err.Error()})
		}
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(st)
	} else {
		fmt.Fprintln(stdout)
		fmt.Fprint(stdout, st.Summary())
	}
	if err != nil {
		fmt.Fprintf(stderr, "oping: %v\n", err)
		return 1
	}
	if st.Received == 0 {
		return 1
	}
	return 0
}
