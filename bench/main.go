// Command bench measures ouro against raw UDP on loopback, in one run,
// without root: `go run ./bench`.
//
// For each path it measures round trips (oping, ping-pong) and an
// unpaced flood (the operf protocol: packets/s the far end received) at
// 64, 1000 and 1400 bytes:
//
//	raw       Go UDP sockets, the echo/sink in a second process (the baseline)
//	local     one IRMd, local layer
//	udp       two IRMds, a udp4 layer on 127.0.0.1-2
//	unicast1  a unicast layer over that udp4 layer: one hop
//	unicast2  the dual-homed square A-B-D-C-A, A to D: two hops
//	udp-x, unicast2-x  udp and unicast2 with encrypted flows (-x); their
//	          round trips are measured with probes alternating with an
//	          unencrypted flow on the same path (xpair.go), printed
//	          under the table with the ratio
//	unicast2-s  unicast2 in a layer with a secret (sealed adjacencies)
//
// The far end of every measurement is this program re-executed with a
// hidden argument (see serveArg), so client and server are two
// processes on every path. It prints a table with each value's ratio to
// raw UDP at the same size and writes it as JSON (-json, default
// bench/out/results.json under the module root). The IPCP executable is
// the irm binary, built into a temporary directory unless -irm names
// one.
//
// With -failover it instead cuts the active link of A in the square n
// times under a 1 ms ping stream from A to D, and reports the
// interruptions and packets lost (JSON: bench/out/failover.json, or
// failover-graceful.json with -graceful).
//
// With -congestion (root) it instead measures a 100 Mbit/s tbf
// bottleneck between network namespaces: one reliable flow against one
// TCP stream, and a 10 ms low-latency ping idle and under each (JSON:
// bench/out/congestion.json; see congestion.go).
//
// With -idle it instead brings up the udp4 square, lets it settle and
// reports the CPU every ouro process spends over -d (default 10 s) of
// idle, from /proc/PID/stat, against the 1% of one core bound
// (idle.go; JSON: bench/out/idle.json; exit status 1 above it).
//
// With -grid N it instead brings up a grid of N hosts (a square
// number: R x R, each linked to its right and lower neighbours, one udp4
// layer per link, a unicast layer over all) and reports the bring-up
// time, the idle CPU of every ouro process over the first 10 s of -d
// (default 60 s) of idle, the RSS per process kind, the adjacency downs
// while idle and under a 1 ms (-i) ping stream of 10 s (or -d if
// shorter) corner to corner, and the ping's loss and RTT (grid.go;
// JSON: bench/out/grid.json; exit status 1 if it fails or no ping
// reply comes back).
//
// With -stall it instead stops (SIGSTOP) the unicast IPCP carrying a
// 1 ms ping stream in the square for 40 ms, -n times (default 5), then
// once for 2 s, and reports how fast its neighbours steer around it and
// take it back, and whether they flooded a withdrawal (stall.go; JSON:
// bench/out/stall.json; exit status 1 on a failed round).
//
// With -silentcut (root) it instead cuts one of two bridged paths
// between two namespaces under eight 1 ms ping streams, -n times
// silently (a bridge port detached, carrier stays up) and -n times by
// carrier loss, and reports the worst stream's loss (silentcut.go;
// JSON: bench/out/silentcut.json; exit status 1 above 15 packets).
//
// With -soak it instead floods one path (-path, default unicast2) with
// -s-byte packets for -d (default 60 s), samples the resident memory
// (VmRSS) of every IPCP, of this process (which hosts the IRMds) and of
// the server process each second, and passes when every process ends
// within 10% of its RSS at 5 s (JSON: bench/out/soak.json; exit status
// 1 on a failed verdict).
//
// With -ovpn (root) it instead measures ovpn against Linux MPTCP on two
// paths through bridges in a middle namespace: the longest gap of a 1 ms
// TCP request stream across carrier loss and across a silent failure,
// and 200 MiB bulk goodput (ovpn.go; JSON: bench/out/ovpn.json).
//
// With -events it instead times the events the README promises (a
// client sees DOWN within 1 s of its IPCP's death, EOF within 100 ms of
// the peer's close, eth carrier DOWN within 100 ms, the last as root)
// -n times each, and prints each median and maximum next to its promise
// (events.go; JSON: bench/out/events.json; exit status 1 on a broken
// promise).
//
// With -unicastflood a member floods a unicast member with flow
// requests (unicastflood.go; JSON: bench/out/unicastflood.json).
//
// With -irmcalls N it instead makes N one-request connections to an irm
// daemon process and checks that its descriptors and RSS come back
// (irmcalls.go; JSON: bench/out/irmcalls.json; exit status 1 on FAIL).
//
// With -flood it instead floods a udp4 IPCP (-medium eth, root: an
// eth-dix IPCP over a veth pair; -sources N: from N ports) with
// allocation requests from a stranger for -d (default 30 s) while
// honest members ping and allocate,
// and reports RSS, descriptors, ping loss and show latency (flood.go;
// JSON: bench/out/flood.json; exit status 1 on a failed verdict).
//
// With -scale it instead simulates one unicast layer of 100, 250, 500
// and 1000 members (-scale-n) in virtual time, with the real routing,
// directory and enrollment code (internal/scalesim), and prints the
// idle update rates, the convergence after a link and a member failure,
// and the directory's size (scale.go; JSON: bench/out/scale.json).
//
// With -mem it instead reports the memory of every kind of ouro process
// at idle: an irm daemon, the unicast and udp4 IPCPs of the square, an
// eth-dix IPCP (root) and an oping server: RSS, anonymous, file-backed
// and proportional (mem.go; JSON: bench/out/mem.json).
//
// Every measurement is bounded: floods drop at the sender or push back
// against write deadlines, and a measurement that overruns its
// duration by 20 s is cut short and reported as an error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ouro-net/ouro/internal/testenv"
	"github.com/ouro-net/ouro/lib/cliflag"
	"github.com/ouro-net/ouro/tools/operf/perf"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == serveArg {
		os.Exit(serveMain(os.Args[2:]))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// config is the parsed command line.
type config struct {
	paths     []string
	sizes     []int
	duration  time.Duration
	jsonFile  string
	irm       string
	logLevel  string
	failover  bool
	n         int
	graceful  bool
	interval  time.Duration
	soak      bool
	idle      bool
	stall     bool
	silent    bool
	soakPath  string
	soakSize  int
	soakBase  time.Duration
	ovpn      bool
	flood     bool
	irmCalls  int
	sources   int
	medium    string
	cong      bool
	congPaths int
	events    bool
	uflood    bool
	grid      int
	scale     scaleFlags
	mem       bool
	bulk      bool
}

func parse(args []string, stderr io.Writer) (*config, error) {
	c := &config{duration: 2 * time.Second, interval: time.Millisecond, soakBase: 5 * time.Second}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	only := fs.String("only", "", "measure only these paths (comma-separated: "+strings.Join(allPaths(), ",")+")")
	sizes := fs.String("sizes", "64,1000,1400", "packet sizes in bytes")
	fs.Var(cliflag.Duration{D: &c.duration}, "d", "duration of each measurement (Go duration, bare number = ms)")
	fs.StringVar(&c.jsonFile, "json", "", "write the results as JSON to this file (default bench/out/results.json, failover[-graceful].json or soak.json)")
	fs.StringVar(&c.irm, "irm", "", "IPCP executable: an irm binary (default: build ./cmd/irm into a temporary directory)")
	fs.StringVar(&c.logLevel, "log-level", "error", "log level of the daemons and IPCPs")
	fs.BoolVar(&c.failover, "failover", false, "measure failover on the square instead")
	fs.IntVar(&c.n, "n", 20, "failover: number of cuts")
	fs.BoolVar(&c.graceful, "graceful", false, "failover: stop the lower IPCP with SIGTERM instead of killing it")
	fs.Var(cliflag.Duration{D: &c.interval}, "i", "failover: ping interval")
	fs.BoolVar(&c.idle, "idle", false, "measure the CPU of the idle udp4 square over -d (default 10s)")
	fs.BoolVar(&c.silent, "silentcut", false, "root: cut one of two bridged paths under eight 1 ms ping streams, silently and by carrier loss, -n times each (default 5; see silentcut.go)")
	fs.BoolVar(&c.stall, "stall", false, "stop the unicast IPCP carrying a ping stream in the square for 40 ms (-n times, default 5) and 2 s (see stall.go)")
	fs.BoolVar(&c.soak, "soak", false, "flood one path for -d (default 60s) and check that every process's RSS stays flat")
	fs.StringVar(&c.soakPath, "path", pathUnicast2, "soak: the path to flood ("+strings.Join(soakPaths(), ", ")+")")
	fs.IntVar(&c.soakSize, "s", 1000, "soak: packet size in bytes")
	fs.Var(cliflag.Duration{D: &c.soakBase}, "base", "soak: when the reference RSS is taken")
	fs.BoolVar(&c.ovpn, "ovpn", false, "root: ovpn against MPTCP on two paths (gaps across carrier loss and silent failure, -n rounds each, default 5) and bulk goodput")
	fs.IntVar(&c.irmCalls, "irmcalls", 0, "make N one-request connections to an irm daemon and check its descriptors and RSS come back (see irmcalls.go)")
	fs.BoolVar(&c.flood, "flood", false, "flood a udp4 IPCP with alloc requests from a stranger for -d (default 30s) (see flood.go)")
	fs.IntVar(&c.sources, "sources", 1, "flood: source ports the stranger floods from")
	fs.StringVar(&c.medium, "medium", "udp", "flood: udp (a udp4 layer on loopback) or eth (root: eth-dix over a veth pair)")
	fs.BoolVar(&c.uflood, "unicastflood", false, "a member floods a unicast member with flow requests for -d (default 30s) (see unicastflood.go)")
	fs.IntVar(&c.congPaths, "congestion-paths", 1, "with -congestion: 2 builds two parallel shaped paths and runs six trials of two reliable flows at once (path bending)")
	fs.BoolVar(&c.cong, "congestion", false, "root: measure a 100 Mbit/s tbf bottleneck between namespaces (reliable flow vs TCP, ping under load; see congestion.go)")
	fs.BoolVar(&c.events, "events", false, "time the promised events (DOWN on IPCP death, EOF on close, carrier DOWN as root) -n times each (default 10; see events.go)")
	fs.IntVar(&c.grid, "grid", 0, "bring up a grid of N = R*R hosts and measure bring-up, idle CPU and RSS, false adjacency downs over -d (default 60s) idle and under a ping stream corner to corner (see grid.go)")
	c.scale.register(fs)
	fs.BoolVar(&c.bulk, "bulk", false, "only the bulk rows: TCP on loopback and one reliable flow over the square, -n times each (see bulk.go)")
	fs.BoolVar(&c.mem, "mem", false, "report the memory (RSS, anonymous, PSS) of every kind of ouro process at idle (see mem.go)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	dSet, nSet := false, false
	fs.Visit(func(f *flag.Flag) { dSet, nSet = dSet || f.Name == "d", nSet || f.Name == "n" })
	if (c.flood || c.uflood) && !dSet {
		c.duration = 30 * time.Second
	}
	if c.cong && !dSet {
		c.duration = 5 * time.Second
	}
	if c.bulk && !nSet {
		c.n = 1
	}
	if (c.ovpn || c.stall || c.silent) && !nSet {
		c.n = 5
	}
	if c.events && !nSet {
		c.n = 10
	}
	if c.grid != 0 {
		if r := isqrt(c.grid); c.grid < 4 || r*r != c.grid || c.grid > 225 {
			return nil, fmt.Errorf("bad -grid %d (want a square number of hosts, 4 to 225)", c.grid)
		}
		if !dSet {
			c.duration = time.Minute
		}
	}
	if c.idle && !dSet {
		c.duration = 10 * time.Second
	}
	if c.soak {
		if !dSet {
			c.duration = time.Minute
		}
		if !slices.Contains(soakPaths(), c.soakPath) {
			return nil, fmt.Errorf("bad soak path %q (want one of %s)", c.soakPath, strings.Join(soakPaths(), ", "))
		}
		if c.soakSize < perf.HeaderSize || c.soakSize > 65000 {
			return nil, fmt.Errorf("bad size %d (want %d to 65000)", c.soakSize, perf.HeaderSize)
		}
		if c.soakBase < time.Second || c.duration < c.soakBase+time.Second {
			return nil, fmt.Errorf("soak: -base must be at least 1s and -d at least 1s longer (have -base %v, -d %v)",
				c.soakBase, c.duration)
		}
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if c.paths, err = parseOnly(*only); err != nil {
		return nil, err
	}
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < perf.HeaderSize || n > 65000 {
			return nil, fmt.Errorf("bad size %q (want %d to 65000)", s, perf.HeaderSize)
		}
		c.sizes = append(c.sizes, n)
	}
	switch {
	case c.duration < 100*time.Millisecond:
		return nil, errors.New("duration must be at least 100 ms")
	case c.n < 1:
		return nil, errors.New("-n must be at least 1")
	case c.interval <= 0:
		return nil, errors.New("-i must be positive")
	}
	return c, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	c, err := parse(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "bench: %v\n", err)
		}
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	root, _ := testenv.ModuleRoot()
	if c.jsonFile == "" {
		name := "results.json"
		if c.idle {
			name = "idle.json"
		} else if c.scale.on {
			name = "scale.json"
		} else if c.mem {
			name = "mem.json"
		} else if c.bulk {
			name = "bulk.json"
		} else if c.stall {
			name = "stall.json"
		} else if c.silent {
			name = "silentcut.json"
		} else if c.grid > 0 {
			name = "grid.json"
		} else if c.soak {
			name = "soak.json"
		} else if c.ovpn {
			name = "ovpn.json"
		} else if c.flood {
			name = "flood.json"
		} else if c.irmCalls > 0 {
			name = "irmcalls.json"
		} else if c.uflood {
			name = "unicastflood.json"
		} else if c.cong {
			name = "congestion.json"
		} else if c.events {
			name = "events.json"
		} else if c.failover {
			name = "failover.json"
			if c.graceful {
				name = "failover-graceful.json"
			}
		}
		c.jsonFile = filepath.Join(root, "bench", "out", name)
	}
	if c.scale.on {
		return scaleMain(c, stdout, stderr)
	}
	if c.irm == "" {
		tmp, err := os.MkdirTemp("", "ouro-bench-irm")
		if err != nil {
			fmt.Fprintf(stderr, "bench: %v\n", err)
			return 1
		}
		defer os.RemoveAll(tmp)
		fmt.Fprintln(stderr, "bench: building irm")
		if c.irm, err = buildIRM(root, tmp); err != nil {
			fmt.Fprintf(stderr, "bench: %v\n", err)
			return 1
		}
	}
	e := &env{irm: c.irm, logLevel: c.logLevel, log: stderr}
	var result any
	code := 0
	if c.mem {
		r, err := memRun(ctx, e, 3*time.Second, stdout, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "bench: mem: %v\n", err)
			return 1
		}
		result = r
	} else if c.grid > 0 {
		r, err := gridRun(ctx, e, gridConfig{r: isqrt(c.grid), idle: c.duration, cpuWindow: gridCPUWindow,
			interval: c.interval, pingFor: min(gridPingFor, c.duration)}, stdout, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "bench: grid: %v\n", err)
			code = 1
		} else if r.Ping.Received == 0 {
			code = 1
		}
		result = r
	} else if c.silent {
		r, err := silentCut(ctx, e, c.n, stdout, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "bench: silentcut: %v\n", err)
			return 1
		}
		if !r.Pass {
			code = 1
		}
		result = r
	} else if c.stall {
		r, err := stallRun(ctx, e, c.n, stdout)
		if err != nil {
			fmt.Fprintf(stderr, "bench: stall: %v\n", err)
			return 1
		}
		if r.Failed > 0 {
			code = 1
		}
		result = r
	} else if c.idle {
		r, err := idleRun(ctx, e, c.duration, stdout)
		if err != nil {
			fmt.Fprintf(stderr, "bench: idle: %v\n", err)
			return 1
		}
		if !r.Pass {
			code = 1
		}
		result = r
	} else if c.irmCalls > 0 {
		r, err := irmCalls(ctx, e, c.irmCalls, stdout)
		if err != nil {
			fmt.Fprintf(stderr, "bench: irmcalls: %v\n", err)
			return 1
		}
		if !r.Pass {
			code = 1
		}
		result = r
	} else if c.events {
		r, err := eventsRun(ctx, e, c.n, stdout, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "bench: events: %v\n", err)
			return 1
		}
		if !r.Pass {
			code = 1
		}
		result = r
	} else if c.uflood {
		r, err := unicastFloodRun(ctx, e, c.duration, stdout, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "bench: unicastflood: %v\n", err)
			return 1
		}
		if !r.Pass {
			code = 1
		}
		result = r
	} else if c.flood {
		r, err := floodRun(ctx, e, c.medium, c.duration, c.sources, stdout, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "bench: flood: %v\n", err)
			return 1
		}
		if !r.Pass {
			code = 1
		}
		result = r
	} else if c.soak {
		r, err := soak(ctx, e, soakConfig{path: c.soakPath, size: c.soakSize, duration: c.duration, base: c.soakBase},
			stdout, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "bench: soak: %v\n", err)
			return 1
		}
		if !r.Pass {
			code = 1
		}
		result = r
	} else if c.cong {
		r, err := congestion(ctx, e, c.duration, c.congPaths, stdout)
		if err != nil {
			fmt.Fprintf(stderr, "bench: congestion: %v\n", err)
			return 1
		}
		result = r
	} else if c.ovpn {
		r, err := ovpnBench(ctx, e, c.n, stdout, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "bench: ovpn: %v\n", err)
			return 1
		}
		result = r
	} else if c.failover {
		r, err := failover(ctx, e, c.n, c.graceful, c.interval, stdout)
		if err != nil {
			fmt.Fprintf(stderr, "bench: failover: %v\n", err)
			return 1
		}
		result = r
	} else if c.bulk {
		result = bulkRun(ctx, e, c.n, max(c.duration, 3*time.Second), stdout, stderr)
	} else {
		result = bench(ctx, e, c, stderr)
		result.(*Table).Print(stdout)
	}
	if err := writeJSON(c.jsonFile, result); err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "\nwrote %s\n", c.jsonFile)
	return code
}

// bench measures every path asked for.
func bench(ctx context.Context, e *env, c *config, progress io.Writer) *Table {
	start := time.Now()
	t := &Table{Started: start, GoVersion: runtime.Version(), CPUs: runtime.NumCPU(), DurationS: c.duration.Seconds(),
		Paths: map[string]string{}}
	for _, p := range c.paths {
		if ctx.Err() != nil {
			break
		}
		t.Paths[p] = describe(p)
		fmt.Fprintf(progress, "bench: %s: setting up\n", p)
		tg, err := e.build(ctx, p)
		if err != nil {
			for _, s := range c.sizes {
				t.Rows = append(t.Rows, Row{Path: p, Size: s, Error: "setup: " + err.Error()})
			}
			continue
		}
		if tg.Note != "" {
			t.Notes = append(t.Notes, tg.Note)
		}
		for _, s := range c.sizes {
			if ctx.Err() != nil {
				break
			}
			r := measure(ctx, tg, s, c.duration)
			fmt.Fprintf(progress, "bench: %s %d B: rtt median %.3f ms, p99 %.3f ms; flood %.0f pkt/s, loss %.2f%% %s\n",
				p, s, r.RTTMedianMS, r.RTTP99MS, r.PPS, r.LossPct, r.Error)
			t.Rows = append(t.Rows, r)
		}
		tg.Close()
	}
	if slices.Contains(c.paths, pathUnicast2) && ctx.Err() == nil {
		fmt.Fprintln(progress, "bench: bulk goodput: tcp on loopback, reliable flow over the square")
		t.Bulk = bulkLoopback(ctx, e, max(c.duration, 3*time.Second))
	}
	t.ratios()
	t.ElapsedS = time.Since(start).Seconds()
	return t
}

// buildIRM builds ./cmd/irm of the module at root into dir.
func buildIRM(root, dir string) (string, error) {
	if root == "" {
		return "", errors.New("cannot find the module to build irm: run from the repository or pass -irm")
	}
	bin := filepath.Join(dir, "irm")
	cmd := exec.Command("go", "build", "-buildvcs=false", "-o", bin, "./cmd/irm")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/irm: %v\n%s", err, out)
	}
	return bin, nil
}
