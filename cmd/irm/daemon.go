package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/ouro-net/ouro/ipcpd"
	"github.com/ouro-net/ouro/irmd"
	"github.com/ouro-net/ouro/lib/logging"
	"github.com/ouro-net/ouro/lib/rundir"
)

func typeNames() []string {
	var out []string
	for k := range kinds() {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// cmdDaemon runs the IRMd in the foreground until SIGINT or SIGTERM.
// --config names what to bring up once the daemon serves: a TOML host
// description when the file ends in .toml (config.go), else a file of
// irm command lines (without the leading "irm"), run in order, where #
// starts a comment. Either way the first error stops the daemon with
// the file and line (and for TOML the key) in its message. --metrics
// ADDR serves the counters in the Prometheus text format at
// http://ADDR/metrics (irmd/metrics.go).
func cmdDaemon(args []string, dir string, stderr io.Writer) error {
	fs := flag.NewFlagSet("irm daemon", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fdir := fs.String("rundir", dir, "run directory")
	config := fs.String("config", "", "file of irm commands to run at start")
	level := fs.String("log-level", "info", "log level ("+logging.Levels+")")
	metrics := fs.String("metrics", "", "serve the counters for Prometheus at http://ADDR/metrics (e.g. 127.0.0.1:9477)")
	group := fs.String("group", "", "group owning the control socket (default: ouro if it exists, else the daemon's own group)")
	if err := fs.Parse(args); err != nil {
		return usagef("daemon: %v", err)
	}
	if fs.NArg() > 0 {
		return usagef("daemon: unexpected argument %q", fs.Arg(0))
	}
	lvl, err := logging.ParseLevel(*level)
	if err != nil {
		return usagef("daemon: %v", err)
	}
	d := rundir.Resolve(*fdir)
	var host *hostConfig
	var loc *locator
	if strings.HasSuffix(*config, ".toml") {
		// Checked before the daemon takes the run directory.
		if host, loc, err = loadConfig(*config); err != nil {
			return err
		}
	}
	log := logging.New("irmd", lvl, stderr)
	daemon, err := irmd.Start(irmd.Config{RunDir: d, Log: log, Types: typeNames(), ChildLogLevel: *level, Group: *group})
	if err != nil {
		if errors.Is(err, irmd.ErrBusy) {
			return fmt.Errorf("another IRMd is running: %v", strings.TrimPrefix(err.Error(), irmd.ErrBusy.Error()+": "))
		}
		return err
	}
	if *metrics != "" {
		if _, err := daemon.ServeMetrics(*metrics); err != nil {
			daemon.Close()
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if host != nil {
		if err := applyConfig(ctx, *config, host, loc, d); err != nil {
			daemon.Close()
			return err
		}
		log.Info("configuration applied", "file", *config, "ipcps", len(host.IPCP), "names", len(host.Name))
	} else if *config != "" {
		if err := runConfig(*config, d, stderr); err != nil {
			daemon.Close()
			return err
		}
	}
	return daemon.Serve(ctx)
}

func runConfig(path, dir string, stderr io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = strings.TrimSpace(text[:i])
		}
		if text == "" {
			continue
		}
		words := strings.Fields(text)
		if words[0] == "irm" {
			words = words[1:]
		}
		if len(words) > 0 && (words[0] == "daemon" || words[0] == "demo") {
			return fmt.Errorf("config %s:%d: %q cannot run from a config file", path, line, words[0])
		}
		if err := dispatch(append([]string{"--rundir", dir}, words...), stderr, stderr); err != nil {
			return fmt.Errorf("config %s:%d: %w", path, line, err)
		}
	}
	return sc.Err()
}

// cmdIPCPD is the hidden entry the IRMd re-executes to run an IPCP.
func cmdIPCPD(args []string) error {
	fs := flag.NewFlagSet("ipcpd", flag.ContinueOnError)
	typ := fs.String("type", "", "")
	name := fs.String("name", "", "")
	dir := fs.String("rundir", "", "")
	level := fs.String("log-level", "info", "")
	if err := fs.Parse(args); err != nil {
		return usagef("ipcpd: %v", err)
	}
	lvl, err := logging.ParseLevel(*level)
	if err != nil {
		return usagef("ipcpd: %v", err)
	}
	log := logging.New("ipcpd."+*name, lvl, os.Stderr)
	if d := os.Getenv("OURO_LOGDIR"); d != "" {
		// A bench's hook: each IPCP logs in JSON lines to DIR/NAME.log
		// instead of stderr (bench -grid reads the adjacency events).
		f, err := os.OpenFile(filepath.Join(d, *name+".log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("ipcpd: OURO_LOGDIR: %w", err)
		}
		defer f.Close()
		log = hclog.New(&hclog.LoggerOptions{Name: "ipcpd." + *name, Level: lvl, Output: f, JSONFormat: true})
	}
	if d := os.Getenv("OURO_CPUPROFILE"); d != "" {
		// A developer's hook: each IPCP writes DIR/NAME.cpu.pprof as it
		// exits (go tool pprof).
		if f, err := os.Create(filepath.Join(d, *name+".cpu.pprof")); err == nil {
			if pprof.StartCPUProfile(f) == nil {
				defer func() {
					pprof.StopCPUProfile()
					f.Close()
				}()
			}
		}
	}
	if d := os.Getenv("OURO_HEAPPROFILE"); d != "" {
		// A developer's hook: each IPCP records every allocation and, on
		// SIGUSR1, writes DIR/NAME.heap.pprof (the live heap after a GC;
		// go tool pprof -sample_index=inuse_space).
		runtime.MemProfileRate = 1
		usr := make(chan os.Signal, 1)
		signal.Notify(usr, syscall.SIGUSR1)
		done := make(chan struct{})
		defer func() {
			signal.Stop(usr)
			close(done)
		}()
		go func() { // owned: ends when Run returns
			for {
				select {
				case <-done:
					return
				case <-usr:
				}
				if f, err := os.Create(filepath.Join(d, *name+".heap.pprof")); err == nil {
					runtime.GC()
					pprof.WriteHeapProfile(f)
					f.Close()
				}
			}
		}()
	}
	return ipcpd.Run(kinds(), *typ, *name, *dir, log)
}
