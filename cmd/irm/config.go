package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/irmclient"
	"github.com/ouro-net/ouro/lib/seal"
)

// Declarative bring-up: `irm daemon --config FILE.toml` describes a
// host's IPCPs, layers, names and bindings; the daemon brings them up
// in order once it serves, through the typed client, and an error names
// the file, the line and the key. (A file not ending in .toml is the
// older form: irm command lines, one a line.)
//
//	[[ipcp]]                       # in order
//	name = "ha.udp"
//	type = "udp4"
//	bootstrap = "udp"              # the layer it creates, or:
//	# enroll = "net"               # the layer it joins (created if missing)
//	# dst = "a"                    # the member to enroll through
//	autobind = true
//	# secret = "net.key"           # the layer secret's file (irm key generate), at bootstrap or enroll;
//	#                              # relative to this file's directory
//	params = { ip = "127.0.0.1", port = 3435, peer = ["127.0.0.2:3435"] }
//	register = ["lo"]              # register its names (own, and layer's with autobind) there
//	connect = [{ dst = "a", layer = "udp", cost = 1, component = "dt" }]
//
//	[[name]]                       # after the IPCPs
//	name = "oping"
//	lb = "spillover"
//	layers = ["net"]
//	program = "/usr/local/bin/oping"  # bind a program (or pid = N)
//	args = ["-l"]
//	auto = true

// hostConfig is the TOML form of a host.
type hostConfig struct {
	IPCP []ipcpConfig `toml:"ipcp"`
	Name []nameConfig `toml:"name"`
}

type ipcpConfig struct {
	Name      string          `toml:"name"`
	Type      string          `toml:"type"`
	Bootstrap string          `toml:"bootstrap"`
	Enroll    string          `toml:"enroll"`
	Dst       string          `toml:"dst"`
	Autobind  bool            `toml:"autobind"`
	Params    map[string]any  `toml:"params"`
	Secret    string          `toml:"secret"`
	Register  []string        `toml:"register"`
	Connect   []connectConfig `toml:"connect"`
}

type connectConfig struct {
	Dst       string `toml:"dst"`
	Layer     string `toml:"layer"`
	Cost      uint32 `toml:"cost"`
	Component string `toml:"component"`
}

type nameConfig struct {
	Name    string   `toml:"name"`
	LB      string   `toml:"lb"`
	Layers  []string `toml:"layers"`
	Program string   `toml:"program"`
	PID     int      `toml:"pid"`
	Args    []string `toml:"args"`
	Auto    bool     `toml:"auto"`
}

// configError names where in the file a problem is.
type configError struct {
	path string
	line int
	key  string
	err  error
}

func (e *configError) Error() string {
	where := e.path
	if e.line > 0 {
		where += ":" + strconv.Itoa(e.line)
	}
	if e.key != "" {
		return fmt.Sprintf("config %s: %s: %v", where, e.key, e.err)
	}
	return fmt.Sprintf("config %s: %v", where, e.err)
}

func (e *configError) Unwrap() error { return e.err }

// loadConfig parses and checks a TOML host description.
func loadConfig(path string) (*hostConfig, *locator, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("config: %w", err)
	}
	return parseConfig(path, string(b))
}

// parseConfig parses and checks text, the contents of the file path.
func parseConfig(path, text string) (*hostConfig, *locator, error) {
	loc := newLocator(text)
	var cfg hostConfig
	md, err := toml.Decode(text, &cfg)
	if err != nil {
		var pe toml.ParseError
		var ppe *toml.ParseError
		if errors.As(err, &ppe) && ppe != nil {
			pe = *ppe
		} else if !errors.As(err, &pe) {
			// Decoding errors (a value of the wrong type) are plain
			// errors that carry the line and key in their text.
			if m := decodeErrRE.FindStringSubmatch(err.Error()); m != nil {
				line, _ := strconv.Atoi(m[1])
				return nil, nil, &configError{path: path, line: line, key: m[2], err: errors.New(m[3])}
			}
			return nil, nil, &configError{path: path, err: err}
		}
		return nil, nil, &configError{path: path, line: pe.Position.Line, key: pe.LastKey, err: errors.New(pe.Message)}
	}
	if und := md.Undecoded(); len(und) > 0 {
		k := und[0]
		return nil, nil, &configError{path: path, line: loc.key(k), key: k.String(), err: errors.New("unknown key")}
	}
	bad := func(kind string, i int, key, format string, args ...any) error {
		return &configError{path: path, line: loc.entry(kind, i, key), key: fmt.Sprintf("%s[%d].%s", kind, i, key), err: fmt.Errorf(format, args...)}
	}
	seen := map[string]bool{}
	for i, p := range cfg.IPCP {
		switch {
		case p.Name == "":
			return nil, nil, bad("ipcp", i, "name", "missing")
		case seen[p.Name]:
			return nil, nil, bad("ipcp", i, "name", "IPCP %q described twice", p.Name)
		case p.Bootstrap != "" && p.Enroll != "":
			return nil, nil, bad("ipcp", i, "enroll", "an IPCP bootstraps a layer or enrolls in one, not both")
		case p.Bootstrap == "" && p.Enroll == "" && p.Type == "":
			return nil, nil, bad("ipcp", i, "type", "missing (needed to create an IPCP that neither bootstraps nor enrolls)")
		case len(p.Params) > 0 && p.Bootstrap == "":
			return nil, nil, bad("ipcp", i, "params", "parameters are given at bootstrap only")
		}
		seen[p.Name] = true
		ps, err := paramStrings(p.Params)
		if err != nil {
			return nil, nil, bad("ipcp", i, "params", "%v", err)
		}
		if _, ok := ps["secret"]; ok {
			return nil, nil, bad("ipcp", i, "params", "give the layer secret as secret = \"FILE\", not in params")
		}
		if p.Secret != "" {
			if p.Bootstrap == "" && p.Enroll == "" {
				return nil, nil, bad("ipcp", i, "secret", "a layer secret is given at bootstrap or enroll only")
			}
			if !filepath.IsAbs(p.Secret) {
				cfg.IPCP[i].Secret = filepath.Join(filepath.Dir(path), p.Secret)
			}
			b, err := seal.LoadSecret(cfg.IPCP[i].Secret)
			if err != nil {
				return nil, nil, bad("ipcp", i, "secret", "%v", err)
			}
			clear(b)
		}
		for j, c := range p.Connect {
			if c.Dst == "" {
				return nil, nil, bad("ipcp", i, "connect", "entry %d: missing dst", j)
			}
			if c.Component != "" && c.Component != "dt" && c.Component != "mgmt" {
				return nil, nil, bad("ipcp", i, "connect", "entry %d: component must be dt or mgmt, not %q", j, c.Component)
			}
		}
	}
	for i, n := range cfg.Name {
		switch {
		case n.Name == "":
			return nil, nil, bad("name", i, "name", "missing")
		case n.Program != "" && n.PID != 0:
			return nil, nil, bad("name", i, "pid", "bind a program or a process, not both")
		case (n.Auto || len(n.Args) > 0) && n.Program == "":
			return nil, nil, bad("name", i, "auto", "auto and args go with program")
		}
	}
	return &cfg, loc, nil
}

// paramStrings turns TOML parameter values into the strings bootstrap
// takes: numbers and booleans as written, a list of strings joined by
// commas (peer), and the C tool's spellings mapped to ours.
func paramStrings(in map[string]any) (map[string]string, error) {
	out := map[string]string{}
	for k, v := range in {
		var s string
		switch v := v.(type) {
		case string:
			s = v
		case int64:
			s = strconv.FormatInt(v, 10)
		case float64:
			s = strconv.FormatFloat(v, 'g', -1, 64)
		case bool:
			s = strconv.FormatBool(v)
		case []any:
			parts := make([]string, 0, len(v))
			for _, e := range v {
				es, ok := e.(string)
				if !ok {
					return nil, fmt.Errorf("%s: a list must hold strings", k)
				}
				parts = append(parts, es)
			}
			s = strings.Join(parts, ",")
		default:
			return nil, fmt.Errorf("%s: want a string, number, boolean or list of strings", k)
		}
		out[k] = cSpelling(k, s)
	}
	return out, nil
}

// applyConfig brings up what cfg describes on the IRMd of dir, in order;
// each entry has callTimeout to come up.
func applyConfig(ctx context.Context, path string, cfg *hostConfig, loc *locator, dir string) error {
	b := bringup{path: path, loc: loc, c: irmclient.New(dir)}
	for i, p := range cfg.IPCP {
		if err := withTimeout(ctx, func(ctx context.Context) error { return b.ipcp(ctx, i, p) }); err != nil {
			return err
		}
	}
	for i, n := range cfg.Name {
		if err := withTimeout(ctx, func(ctx context.Context) error { return b.name(ctx, i, n) }); err != nil {
			return err
		}
	}
	return nil
}

func withTimeout(ctx context.Context, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	return f(ctx)
}

// bringup applies the entries of one file.
type bringup struct {
	path string
	loc  *locator
	c    *irmclient.Client
}

// fail names the entry and key an error of the IRMd came from.
func (b bringup) fail(kind string, i int, key string, err error) error {
	return &configError{path: b.path, line: b.loc.entry(kind, i, key), key: fmt.Sprintf("%s[%d].%s", kind, i, key), err: err}
}

// ipcp brings up the i-th [[ipcp]] entry.
func (b bringup) ipcp(ctx context.Context, i int, p ipcpConfig) error {
	params, _ := paramStrings(p.Params)
	if p.Secret != "" && p.Bootstrap != "" {
		if params == nil {
			params = map[string]string{}
		}
		params["secret"] = p.Secret
	}
	layer := p.Bootstrap
	switch {
	case p.Bootstrap != "":
		if _, err := b.c.Bootstrap(ctx, ctrl.IPCPBootstrap{Type: p.Type, Name: p.Name, Layer: p.Bootstrap,
			Params: params, Autobind: p.Autobind}); err != nil {
			return b.fail("ipcp", i, "bootstrap", err)
		}
	case p.Enroll != "":
		layer = p.Enroll
		if _, err := b.c.Enroll(ctx, ctrl.IPCPEnroll{Name: p.Name, Layer: p.Enroll, Dst: p.Dst,
			Autobind: p.Autobind, Type: p.Type, Secret: p.Secret}); err != nil {
			return b.fail("ipcp", i, "enroll", err)
		}
	default:
		if _, err := b.c.CreateIPCP(ctx, p.Type, p.Name); err != nil {
			return b.fail("ipcp", i, "name", err)
		}
	}
	if len(p.Register) > 0 {
		names := []string{p.Name}
		if p.Autobind && layer != "" {
			names = append(names, layer)
		}
		for _, n := range names {
			if err := b.c.Register(ctx, n, p.Register...); err != nil {
				return b.fail("ipcp", i, "register", err)
			}
		}
	}
	for _, cn := range p.Connect {
		if err := b.c.Connect(ctx, ctrl.IPCPConnect{Name: p.Name, Dst: cn.Dst, Layer: cn.Layer,
			Cost: cn.Cost, Component: cn.Component}); err != nil {
			return b.fail("ipcp", i, "connect", err)
		}
	}
	return nil
}

// name brings up the i-th [[name]] entry.
func (b bringup) name(ctx context.Context, i int, n nameConfig) error {
	if n.LB != "" {
		if err := b.c.CreateName(ctx, n.Name, n.LB); err != nil {
			return b.fail("name", i, "lb", err)
		}
	}
	if len(n.Layers) > 0 {
		if err := b.c.Register(ctx, n.Name, n.Layers...); err != nil {
			return b.fail("name", i, "layers", err)
		}
	}
	if n.Program != "" || n.PID != 0 {
		key := "program"
		if n.PID != 0 {
			key = "pid"
		}
		if err := b.c.Bind(ctx, ctrl.Bind{Name: n.Name, Program: n.Program, PID: n.PID, Auto: n.Auto, Args: n.Args}); err != nil {
			return b.fail("name", i, key, err)
		}
	}
	return nil
}

// locator finds the lines of entries and keys in the text of a TOML
// file (BurntSushi/toml reports positions of syntax errors only). It
// knows the layout this file format is written in: [[ipcp]] and
// [[name]] headers, then key = value lines.
type locator struct {
	lines []string
	// headers[kind] lists the 1-based lines of the [[kind]] headers.
	headers map[string][]int
}

var decodeErrRE = regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]*)"\): (.*)$`)

var headerRE = regexp.MustCompile(`^\s*\[\[\s*([A-Za-z0-9_-]+)\s*\]\]`)

func newLocator(text string) *locator {
	l := &locator{lines: strings.Split(text, "\n"), headers: map[string][]int{}}
	for i, s := range l.lines {
		if m := headerRE.FindStringSubmatch(s); m != nil {
			l.headers[m[1]] = append(l.headers[m[1]], i+1)
		}
	}
	return l
}

// entry returns the line of key in the i-th [[kind]] table, or of the
// table's header when the key is not written there (0 if unknown).
func (l *locator) entry(kind string, i int, key string) int {
	hs := l.headers[kind]
	if i >= len(hs) {
		return 0
	}
	end := len(l.lines)
	var all []int
	for _, v := range l.headers {
		all = append(all, v...)
	}
	sort.Ints(all)
	for _, h := range all {
		if h > hs[i] {
			end = h - 1
			break
		}
	}
	// Also stop at a plain [table] header.
	keyRE := regexp.MustCompile(`^\s*` + regexp.QuoteMeta(key) + `\s*=`)
	for n := hs[i] + 1; n <= end; n++ {
		s := l.lines[n-1]
		if strings.HasPrefix(strings.TrimSpace(s), "[") {
			break
		}
		if keyRE.MatchString(s) {
			return n
		}
	}
	return hs[i]
}

// key returns the line of an undecoded key: kind, index-less path such
// as ipcp.colour; the first line that sets its last part, after the
// header of its table.
func (l *locator) key(k toml.Key) int {
	if len(k) == 0 {
		return 0
	}
	last := k[len(k)-1]
	keyRE := regexp.MustCompile(`^\s*"?` + regexp.QuoteMeta(last) + `"?\s*=`)
	start := 0
	if len(k) > 1 {
		if hs := l.headers[k[0]]; len(hs) > 0 {
			start = hs[0] - 1
		}
	}
	for n := start; n < len(l.lines); n++ {
		if keyRE.MatchString(l.lines[n]) {
			return n + 1
		}
	}
	return 0
}
