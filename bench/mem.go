package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ouro-net/ouro/internal/testenv"
	"github.com/ouro-net/ouro/internal/topo"
	"github.com/ouro-net/ouro/lib/ctrl"
)

// The -mem mode: the memory of every kind of ouro process at idle.
//
//   - irmd: an `irm daemon` process with no IPCP (the IRMds of the
//     square run inside this process, so they are not measured);
//   - unicast and udp4: the IPCPs of the dual-homed udp4 square;
//   - eth-dix (root only): the IPCP at one end of a veth pair between
//     two namespaces, and its IRMd;
//   - tool: an `oping -l` server registered in the square's layer.
//
// Each is read from /proc/PID/status (VmRSS, RssAnon, RssFile) and
// /proc/PID/smaps_rollup (Pss): RssFile is mostly the executable's
// pages, shared by every process of the same binary, so the memory a
// host pays per extra process is about RssAnon, and Pss is the fair
// share of each. With OURO_HEAPPROFILE=DIR set, the IPCPs of the square
// also write their live heaps there (cmd/irm's developer hook).

// MemProc is one process's memory, in KiB.
type MemProc struct {
	Label string `json:"label"`
	Kind  string `json:"kind"`
	PID   int    `json:"pid"`
	RSS   int64  `json:"rss_kib"`
	Anon  int64  `json:"anon_kib"`
	File  int64  `json:"file_kib"`
	PSS   int64  `json:"pss_kib"`
}

// MemKind sums the processes of one kind (means in MiB).
type MemKind struct {
	Kind  string  `json:"kind"`
	Procs int     `json:"procs"`
	RSS   float64 `json:"rss_mean_mib"`
	Anon  float64 `json:"anon_mean_mib"`
	File  float64 `json:"file_mean_mib"`
	PSS   float64 `json:"pss_mean_mib"`
}

// MemResult is a -mem run.
type MemResult struct {
	Started   time.Time `json:"started"`
	MemLimit  string    `json:"gomemlimit"`
	Procs     []MemProc `json:"procs"`
	Kinds     []MemKind `json:"kinds"`
	Skipped   []string  `json:"skipped,omitempty"`
	SettleS   float64   `json:"settle_s"`
	HostAnonM float64   `json:"host_anon_mib"`
}

// readMem reads the memory figures of pid.
func readMem(pid int) (MemProc, error) {
	p := MemProc{PID: pid}
	fields := map[string]*int64{"VmRSS:": &p.RSS, "RssAnon:": &p.Anon, "RssFile:": &p.File}
	if err := scanKB(fmt.Sprintf("/proc/%d/status", pid), fields); err != nil {
		return p, err
	}
	if err := scanKB(fmt.Sprintf("/proc/%d/smaps_rollup", pid), map[string]*int64{"Pss:": &p.PSS}); err != nil {
		return p, err
	}
	return p, nil
}

// scanKB fills fields from the "Name: N kB" lines of a /proc file.
func scanKB(path string, fields map[string]*int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	found := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		w := strings.Fields(sc.Text())
		if len(w) == 3 && w[2] == "kB" {
			if dst, ok := fields[w[0]]; ok {
				if *dst, err = strconv.ParseInt(w[1], 10, 64); err != nil {
					return fmt.Errorf("%s: %q: %w", path, sc.Text(), err)
				}
				found++
			}
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if found < len(fields) {
		return fmt.Errorf("%s: %d of %d fields found", path, found, len(fields))
	}
	return nil
}

// startDaemon starts an `irm daemon` process on a fresh run directory
// (in network namespace ns unless empty) and waits until it answers; the
// returned stop ends it and removes the directory.
func (e *env) startDaemon(ns string) (dir string, pid int, stop func(), err error) {
	dir, err = os.MkdirTemp("", "ouro-bench-mem")
	if err != nil {
		return "", 0, nil, err
	}
	args := []string{e.irm, "daemon", "--rundir", dir, "--log-level", e.logLevel}
	if ns != "" {
		args = append([]string{"ip", "netns", "exec", ns}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stderr = e.log
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return "", 0, nil, fmt.Errorf("start irm daemon: %w", err)
	}
	exited := make(chan struct{})
	go func() { // owned: ends when the daemon exits
		cmd.Wait()
		close(exited)
	}()
	stop = func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		os.RemoveAll(dir)
	}
	for deadline := time.Now().Add(10 * time.Second); topo.Call(dir, ctrl.OpIPCPList, nil, &ctrl.IPCPList{}) != nil; {
		if time.Now().After(deadline) {
			stop()
			return "", 0, nil, fmt.Errorf("irm daemon does not answer")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return dir, cmd.Process.Pid, stop, nil
}

// memRun measures the memory of every kind of ouro process at idle.
func memRun(ctx context.Context, e *env, settle time.Duration, out, progress io.Writer) (*MemResult, error) {
	res := &MemResult{Started: time.Now(), MemLimit: os.Getenv("GOMEMLIMIT"), SettleS: settle.Seconds()}
	add := func(label, kind string, pid int) error {
		p, err := readMem(pid)
		if err != nil {
			return fmt.Errorf("%s (pid %d): %w", label, pid, err)
		}
		p.Label, p.Kind = label, kind
		res.Procs = append(res.Procs, p)
		return nil
	}

	fmt.Fprintln(progress, "bench: mem: an idle irm daemon")
	_, pid, stop, err := e.startDaemon("")
	if err != nil {
		return nil, err
	}
	time.Sleep(settle)
	err = add("irm daemon", "irmd", pid)
	stop()
	if err != nil {
		return nil, err
	}

	fmt.Fprintln(progress, "bench: mem: the udp4 square and an oping server")
	tp, err := e.buildSquare(ctx)
	if err != nil {
		return nil, err
	}
	defer tp.Close()
	tool, stopTool, err := e.startOpingServer(ctx, tp, "a", "memping")
	if err != nil {
		res.Skipped = append(res.Skipped, "tool: "+err.Error())
	} else {
		defer stopTool()
	}
	time.Sleep(settle)
	procs, err := ouroProcs(tp)
	if err != nil {
		return nil, err
	}
	for _, p := range procs[1:] { // procs[0] is this process (the IRMds)
		if err := add(p.Label, p.Type, p.PID); err != nil {
			return nil, err
		}
	}
	if tool > 0 {
		if err := add("oping -l", "tool", tool); err != nil {
			return nil, err
		}
	}
	if os.Getenv("OURO_HEAPPROFILE") != "" {
		// The IPCPs write their heap profiles on SIGUSR1 (cmd/irm).
		for _, p := range procs[1:] {
			syscall.Kill(p.PID, syscall.SIGUSR1)
		}
		time.Sleep(time.Second)
	}

	if os.Geteuid() != 0 {
		res.Skipped = append(res.Skipped, "eth-dix: needs root (namespaces, veth)")
	} else {
		v, err := e.ethVictim(ctx, io.Discard)
		if err != nil {
			res.Skipped = append(res.Skipped, "eth-dix: "+err.Error())
		} else {
			time.Sleep(settle)
			err = add("eth-dix IPCP", "eth-dix", v.pid)
			v.close()
			if err != nil {
				return nil, err
			}
		}
	}
	res.summarise()
	res.print(out)
	return res, nil
}

// startOpingServer builds tools/oping and runs `oping -l -n name` on
// host h of tp, with name registered in the unicast layer there.
func (e *env) startOpingServer(ctx context.Context, tp *topo.Topo, h, name string) (int, func(), error) {
	mod, err := testenv.ModuleRoot()
	if err != nil {
		return 0, nil, fmt.Errorf("find the module to build oping: %w", err)
	}
	tmp, err := os.MkdirTemp("", "ouro-bench-oping")
	if err != nil {
		return 0, nil, err
	}
	bin := filepath.Join(tmp, "oping")
	build := exec.CommandContext(ctx, "go", "build", "-buildvcs=false", "-o", bin, "./tools/oping")
	build.Dir = mod
	if out, err := build.CombinedOutput(); err != nil {
		os.RemoveAll(tmp)
		return 0, nil, fmt.Errorf("go build ./tools/oping: %v: %s", err, out)
	}
	host := tp.Hosts[h]
	cmd := exec.Command(bin, "-l", "-n", name, "-rundir", host.Dir)
	cmd.Stderr = e.log
	if err := cmd.Start(); err != nil {
		os.RemoveAll(tmp)
		return 0, nil, err
	}
	exited := make(chan struct{})
	go func() { // owned: ends when oping exits
		cmd.Wait()
		close(exited)
	}()
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		os.RemoveAll(tmp)
	}
	if err := tp.Register(h, name); err != nil {
		stop()
		return 0, nil, err
	}
	return cmd.Process.Pid, stop, nil
}

func (r *MemResult) summarise() {
	by := map[string]*MemKind{}
	for _, p := range r.Procs {
		k := by[p.Kind]
		if k == nil {
			k = &MemKind{Kind: p.Kind}
			by[p.Kind] = k
		}
		k.Procs++
		k.RSS += float64(p.RSS) / 1024
		k.Anon += float64(p.Anon) / 1024
		k.File += float64(p.File) / 1024
		k.PSS += float64(p.PSS) / 1024
	}
	for _, k := range by {
		n := float64(k.Procs)
		k.RSS, k.Anon, k.File, k.PSS = k.RSS/n, k.Anon/n, k.File/n, k.PSS/n
		r.Kinds = append(r.Kinds, *k)
	}
	sort.Slice(r.Kinds, func(i, j int) bool { return r.Kinds[i].Kind < r.Kinds[j].Kind })
	// A host of the square: one IRMd, one unicast IPCP, two udp4 IPCPs.
	for _, k := range r.Kinds {
		switch k.Kind {
		case "irmd", "unicast":
			r.HostAnonM += k.Anon
		case "udp4":
			r.HostAnonM += 2 * k.Anon
		}
	}
}

func (r *MemResult) print(w io.Writer) {
	lim := r.MemLimit
	if lim == "" {
		lim = "unset (IPCPs apply their default soft limit)"
	}
	fmt.Fprintf(w, "mem: every kind of ouro process after %.0f s of idle; GOMEMLIMIT %s\n\n", r.SettleS, lim)
	fmt.Fprintf(w, "%-18s %-8s %7s %9s %9s %9s %9s\n", "process", "kind", "pid", "RSS KiB", "anon KiB", "file KiB", "PSS KiB")
	for _, p := range r.Procs {
		fmt.Fprintf(w, "%-18s %-8s %7d %9d %9d %9d %9d\n", p.Label, p.Kind, p.PID, p.RSS, p.Anon, p.File, p.PSS)
	}
	fmt.Fprintf(w, "\n%-8s %6s %9s %9s %9s %9s   (means, MiB)\n", "kind", "procs", "RSS", "anon", "file", "PSS")
	for _, k := range r.Kinds {
		fmt.Fprintf(w, "%-8s %6d %9.1f %9.1f %9.1f %9.1f\n", k.Kind, k.Procs, k.RSS, k.Anon, k.File, k.PSS)
	}
	fmt.Fprintf(w, "\na host of the square (1 IRMd, 1 unicast IPCP, 2 udp4 IPCPs): %.1f MiB anonymous memory\n", r.HostAnonM)
	for _, s := range r.Skipped {
		fmt.Fprintf(w, "skipped: %s\n", s)
	}
}
