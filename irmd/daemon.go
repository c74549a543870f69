// Package irmd is the IPC Resource Manager daemon: one per host (or per
// network namespace, or per run directory). It owns the control socket,
// the registry of IPCPs, names, bindings and flows, spawns and
// supervises IPCP processes, and brokers every flow allocation by
// handing each end a data-channel descriptor. It is never on the data
// path.
//
// Every request is checked against the kernel's record of who connected
// (SO_PEERCRED, taken once per connection at accept: the credentials of
// the process that called connect, which its requests cannot change);
// the policy is one function keyed by operation (access.go). What one
// client can make the daemon hold is bounded: connections in all and per
// unprivileged user, requests served at once per connection (with
// back-pressure, then refusal), unread replies (the client is dropped),
// and the size of a reply (split over records up to ctrl.DefaultMaxReply).
package irmd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/rundir"
)

// Config configures a Daemon.
type Config struct {
	// RunDir holds the control socket and the lock file.
	RunDir string
	// Log receives the daemon's events.
	Log hclog.Logger
	// Types lists the IPCP types that can be created.
	Types []string
	// Exe is the binary re-executed for IPCP processes (default: this
	// process's executable); it must understand IPCPArgs.
	Exe string
	// ChildLogLevel is passed to IPCP processes.
	ChildLogLevel string
	// MaxClients caps the control connections open at once (default
	// DefaultMaxClients); MaxClientsPerUser caps those of one
	// unprivileged user (default DefaultMaxClientsPerUser). Beyond
	// them a connection is closed as soon as it is accepted.
	MaxClients, MaxClientsPerUser int
	// Group owns the control socket (mode 0660): a group name or a
	// numeric gid. Empty means the group "ouro" if it exists, else the
	// daemon's own group.
	Group string
}

// IPCPArgs returns the arguments (after the executable) that start an
// IPCP process; cmd/irm recognises them.
func IPCPArgs(typ, name, dir, level string) []string {
	return []string{"__ipcpd", "--type", typ, "--name", name, "--rundir", dir, "--log-level", level}
}

// Bounds on what clients can make the IRMd hold.
const (
	DefaultMaxClients        = 1024
	DefaultMaxClientsPerUser = 128
	// clientInFlight caps the requests of one connection served at
	// once; one beyond it waits up to clientWait, then is refused.
	clientInFlight = 32
	clientWait     = time.Second
	// clientSendTimeout disconnects a client that leaves its replies
	// unread that long (its socket buffer is full).
	clientSendTimeout = 5 * time.Second
)

// ErrBusy is returned by Start when a live daemon holds the run directory.
var ErrBusy = errors.New("run directory is in use by a live IRMd")

// Daemon is a running IRMd.
type Daemon struct {
	cfg  Config
	log  hclog.Logger
	lock *os.File
	ln   *net.UnixListener
	// uid is the daemon's effective uid: besides root, the one user
	// that may manage it.
	uid    int
	denied atomic.Uint64
	// refusedConns counts connections closed by the caps.
	refusedConns atomic.Uint64

	wg     sync.WaitGroup
	done   chan struct{}
	closed sync.Once

	// routes and ipcpTable are the dispatch tables (ops.go), fixed at
	// Start.
	routes    map[string]route[*client]
	ipcpTable map[string]route[*ipcpRec]

	mu       sync.Mutex
	ipcps    map[string]*ipcpRec
	names    map[string]*nameRec
	clients  map[*client]bool
	flows    map[uint64]*flowRec
	progs    map[int]*os.Process
	nextFlow uint64
	listenCh chan struct{} // closed and replaced whenever a listener appears
	metrics  *metricsState // the /metrics endpoint, if serving (metrics.go)
}

// Start takes the run directory and starts serving.
func Start(cfg Config) (*Daemon, error) {
	if cfg.Log == nil {
		cfg.Log = hclog.NewNullLogger()
	}
	if cfg.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find own executable: %w", err)
		}
		cfg.Exe = exe
	}
	if cfg.MaxClients <= 0 {
		cfg.MaxClients = DefaultMaxClients
	}
	if cfg.MaxClientsPerUser <= 0 {
		cfg.MaxClientsPerUser = DefaultMaxClientsPerUser
	}
	if cfg.ChildLogLevel == "" {
		cfg.ChildLogLevel = "info"
	}
	gid, err := socketGroup(cfg.Group)
	if err != nil {
		return nil, err
	}
	if err := rundir.Prepare(cfg.RunDir); err != nil {
		return nil, err
	}
	lock, err := takeLock(cfg.RunDir)
	if err != nil {
		return nil, err
	}
	sock := rundir.Socket(cfg.RunDir)
	// The directory is ours and writable by no one else, so what is
	// there was left by an earlier daemon of ours: remove it, whatever
	// it is (Remove does not follow a symlink).
	if _, err := os.Lstat(sock); err == nil {
		cfg.Log.Info("replacing stale control socket", "path", sock)
		os.Remove(sock)
	}
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: sock, Net: "unixpacket"})
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	err = protectSocket(sock, gid)
	if errors.Is(err, unix.EPERM) && cfg.Group == "" && gid != os.Getegid() {
		// The default group "ouro" exists but this (unprivileged)
		// user is not in it: fall back to its own group.
		cfg.Log.Warn("cannot give the control socket to group ouro; using the daemon's own group", "error", err)
		gid = os.Getegid()
		err = protectSocket(sock, gid)
	}
	if err != nil {
		ln.Close()
		lock.Close()
		return nil, err
	}
	d := &Daemon{
		cfg: cfg, log: cfg.Log, lock: lock, ln: ln, uid: os.Geteuid(),
		done:     make(chan struct{}),
		ipcps:    make(map[string]*ipcpRec),
		names:    make(map[string]*nameRec),
		clients:  make(map[*client]bool),
		flows:    make(map[uint64]*flowRec),
		progs:    make(map[int]*os.Process),
		listenCh: make(chan struct{}),
	}
	d.routes = d.clientRoutes()
	d.ipcpTable = d.ipcpRoutes()
	d.wg.Add(1)
	go d.acceptLoop()
	d.log.Info("IRMd up", "rundir", cfg.RunDir, "pid", os.Getpid(), "uid", d.uid, "socket_gid", gid)
	return d, nil
}

// takeLock holds an exclusive flock on the run directory's lock file
// for the daemon's lifetime; a second daemon fails with ErrBusy.
func takeLock(dir string) (*os.File, error) {
	path := rundir.Lock(dir)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock file: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		pid := strings.TrimSpace(string(b))
		if pid == "" {
			pid = "unknown"
		}
		return nil, fmt.Errorf("%w: %s (pid %s)", ErrBusy, dir, pid)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, nil
}

// Done is closed once the daemon has shut down.
func (d *Daemon) Done() <-chan struct{} { return d.done }

// RunDir returns the daemon's run directory.
func (d *Daemon) RunDir() string { return d.cfg.RunDir }

func (d *Daemon) acceptLoop() {
	defer d.wg.Done()
	for {
		uc, err := d.ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			d.log.Warn("accept", "error", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		conn := ctrl.NewConn(uc)
		cred, err := conn.PeerCred()
		if err != nil {
			// Without credentials nothing can be checked: refuse.
			d.log.Warn("connection without credentials refused", "error", err)
			conn.Close()
			continue
		}
		if _, why, n := d.addClient(conn, cred, nil); why != "" {
			if n&(n-1) == 0 { // 1, 2, 4...: a flood does not flood the log
				d.log.Warn("connection refused", "uid", cred.UID, "pid", cred.PID, "reason", why, "refused", n)
			}
		}
	}
}

// addClient serves conn as a client of credentials cred; ipcp is the
// IPCP whose own connection it is (ipcpd.dial), or nil for a process on
// the public socket. It returns why the caps refused the connection
// (conn is then closed, and counted: refused is the count), or "".
func (d *Daemon) addClient(conn *ctrl.Conn, cred ctrl.Cred, ipcp *ipcpRec) (c *client, why string, refused uint64) {
	c = &client{d: d, cred: cred, ipcp: ipcp, listens: make(map[string]bool)}
	// The peer must be set before the client is visible to other
	// goroutines (arrive reads c.peer under d.mu); requests cannot
	// arrive before the client is registered because handle only
	// touches the registry under d.mu.
	d.mu.Lock()
	if why := d.overCapLocked(cred); why != "" {
		d.mu.Unlock()
		n := d.refusedConns.Add(1)
		conn.Close()
		return nil, why, n
	}
	c.peer = ctrl.NewPeerLimited(conn, c.handle, d.log.Named("client"), ctrl.Limits{
		MaxInFlight: clientInFlight, Wait: clientWait, SendTimeout: clientSendTimeout,
		// Clients answer only flow.arrive and flow.down: no
		// reply of theirs needs more than one record.
		MaxReply: ctrl.MaxMsgSize})
	d.clients[c] = true
	d.mu.Unlock()
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		<-c.peer.Done()
		d.dropClient(c)
	}()
	return c, "", 0
}

// overCapLocked returns why a new connection of cred is one too many,
// or ""; d.mu held.
func (d *Daemon) overCapLocked(cred ctrl.Cred) string {
	if len(d.clients) >= d.cfg.MaxClients {
		return fmt.Sprintf("%d connections open, at most %d", len(d.clients), d.cfg.MaxClients)
	}
	if d.privileged(cred) {
		return ""
	}
	n := 0
	for c := range d.clients {
		if c.cred.UID == cred.UID {
			n++
		}
	}
	if n >= d.cfg.MaxClientsPerUser {
		return fmt.Sprintf("uid %d has %d connections open, at most %d", cred.UID, n, d.cfg.MaxClientsPerUser)
	}
	return ""
}

// RefusedConns reports how many connections the caps closed.
func (d *Daemon) RefusedConns() uint64 { return d.refusedConns.Load() }

// Clients reports how many control connections are open.
func (d *Daemon) Clients() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.clients)
}

// Close shuts the daemon down: IPCPs and auto-started programs are
// stopped, clients disconnected, the socket and lock removed.
func (d *Daemon) Close() error {
	d.closed.Do(func() {
		d.ln.Close()
		d.stopMetrics()
		d.mu.Lock()
		recs := make([]*ipcpRec, 0, len(d.ipcps))
		for _, r := range d.ipcps {
			recs = append(recs, r)
		}
		progs := make([]*os.Process, 0, len(d.progs))
		for _, p := range d.progs {
			progs = append(progs, p)
		}
		d.mu.Unlock()
		for _, p := range progs {
			p.Signal(unix.SIGTERM)
		}
		var wg sync.WaitGroup
		for _, r := range recs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.stop(3 * time.Second)
			}()
		}
		wg.Wait()
		// Listed after the IPCPs are gone: none can add a connection
		// of its own (ipcpd.dial) any more.
		d.mu.Lock()
		clients := make([]*client, 0, len(d.clients))
		for c := range d.clients {
			clients = append(clients, c)
		}
		d.mu.Unlock()
		for _, c := range clients {
			c.peer.Close()
		}
		d.wg.Wait()
		os.Remove(rundir.Socket(d.cfg.RunDir))
		os.Remove(rundir.Lock(d.cfg.RunDir))
		d.lock.Close()
		d.log.Info("IRMd down")
		close(d.done)
	})
	return nil
}

// Serve runs the daemon until ctx ends, then closes it.
func (d *Daemon) Serve(ctx context.Context) error {
	select {
	case <-ctx.Done():
	case <-d.done:
	}
	return d.Close()
}

// socketGroup resolves the group that owns the control socket: name
// (or a numeric gid), else "ouro" if it exists, else the daemon's own
// group.
func socketGroup(name string) (int, error) {
	if name == "" {
		if g, err := user.LookupGroup("ouro"); err == nil {
			if gid, err := strconv.Atoi(g.Gid); err == nil {
				return gid, nil
			}
		}
		return os.Getegid(), nil
	}
	if g, err := user.LookupGroup(name); err == nil {
		gid, err := strconv.Atoi(g.Gid)
		if err != nil {
			return 0, fmt.Errorf("group %q: gid %q: %w", name, g.Gid, err)
		}
		return gid, nil
	}
	if gid, err := strconv.Atoi(name); err == nil && gid >= 0 {
		return gid, nil
	}
	return 0, fmt.Errorf("control socket group %q: no such group", name)
}

// protectSocket gives the control socket mode 0660 and group gid
// without following a symlink: the path is opened O_PATH|O_NOFOLLOW,
// checked to be a socket, and changed through that descriptor.
func protectSocket(path string, gid int) error {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return fmt.Errorf("control socket %s: not a socket", path)
	}
	if err := unix.Fchownat(fd, "", -1, gid, unix.AT_EMPTY_PATH); err != nil {
		return fmt.Errorf("control socket %s: group %d: %w", path, gid, err)
	}
	// fchmod does not work on an O_PATH descriptor; its /proc link
	// names exactly the opened inode.
	if err := unix.Chmod("/proc/self/fd/"+strconv.Itoa(fd), 0o660); err != nil {
		return fmt.Errorf("control socket %s: mode: %w", path, err)
	}
	return nil
}

func abs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
