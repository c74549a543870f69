// Command irm manages an ouro host: it runs the IRM daemon (irm daemon),
// talks to it (irm ipcp, bind, name, layer, flow), runs the built-in
// demonstration (irm demo), and, re-executed by the daemon, runs IPCP
// processes. The grammar follows the Ouroboros irm tool: keyword-value
// pairs in any order after the verb.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/ouro-net/ouro/ipcpd"
	"github.com/ouro-net/ouro/ipcpd/all"
)

// kinds lists the IPCP types this binary can run.
func kinds() ipcpd.Kinds { return all.Kinds() }

// usageError marks errors that exit with status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

const usageText = `usage: irm COMMAND [ARGS]

  irm daemon [--rundir DIR] [--config FILE.toml|FILE] [--log-level LEVEL] [--group NAME] [--metrics ADDR]
  irm ipcp create    type TYPE name NAME
  irm key generate FILE          a fresh layer secret (32 random bytes, mode 0600)
  irm ipcp bootstrap type TYPE name NAME layer LAYER [PARAM VALUE ...] [secret FILE] [autobind]
  irm ipcp enroll    name NAME layer LAYER [dst IPCP] [type TYPE] [secret FILE] [autobind]
  irm ipcp connect   name NAME dst IPCP [component dt|mgmt] [layer LOWER] [cost N]
  irm ipcp disconnect name NAME dst IPCP [component dt|mgmt]
  irm ipcp list [--json]
  irm ipcp destroy   name NAME
  irm bind   program PATH name NAME [auto] [-- ARGS...]
  irm bind   process PID name NAME
  irm bind   ipcp IPCP name NAME
  irm unbind program PATH name NAME | process PID name NAME | ipcp IPCP name NAME
  irm name create NAME [lb round-robin|spillover]
  irm name register   NAME layer LAYER [layer LAYER ...]
  irm name unregister NAME layer LAYER [layer LAYER ...]
  irm name list [--json]
  irm layer show LAYER [--json | --dot]
  irm flow list [--json]
  irm demo

Every command but daemon and demo talks to the IRMd of the run directory
given by --rundir (before the command) or $OURO_RUNDIR. Managing (ipcp,
bind, unbind, name create/register/unregister) needs root or the daemon's
user; members of the socket's group may list, allocate flows, and listen
on names bound to their process or program.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command line and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	err := dispatch(args, stdout, stderr)
	if err == nil {
		return 0
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "irm: %s\n(run 'irm help' for usage)\n", ue.msg)
		return 2
	}
	fmt.Fprintf(stderr, "irm: %s\n", err)
	return 1
}

func dispatch(args []string, stdout, stderr io.Writer) error {
	dir := ""
	for len(args) > 0 && (args[0] == "--rundir" || args[0] == "-r") {
		if len(args) < 2 {
			return usagef("--rundir needs a directory")
		}
		dir = args[1]
		args = args[2:]
	}
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return usageError{"no command given"}
	}
	switch args[0] {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usageText)
		return nil
	case "daemon":
		return cmdDaemon(args[1:], dir, stderr)
	case "__ipcpd":
		return cmdIPCPD(args[1:])
	case "demo":
		return cmdDemo(args[1:], stdout, stderr)
	case "ipcp":
		return cmdIPCP(args[1:], dir, stdout)
	case "bind", "unbind":
		return cmdBind(args[0] == "bind", args[1:], dir)
	case "name":
		return cmdName(args[1:], dir, stdout)
	case "layer":
		return cmdLayer(args[1:], dir, stdout)
	case "key":
		return cmdKey(args[1:], stdout)
	case "flow":
		return cmdFlow(args[1:], dir, stdout)
	}
	return usagef("unknown command %q", args[0])
}
