package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/irmclient"
)

// callTimeout bounds one CLI request (enrollment may take a while).
const callTimeout = 60 * time.Second

// ctx bounds one CLI request.
func ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), callTimeout)
}

func cmdIPCP(args []string, dir string, out io.Writer) error {
	if len(args) == 0 {
		return usagef("ipcp: want create, bootstrap, enroll, connect, disconnect, list or destroy")
	}
	verb, rest := args[0], args[1:]
	switch verb {
	case "create":
		k, err := parseKV(rest, []string{"type", "name"}, nil, false)
		if err != nil {
			return err
		}
		typ, name, err := k.need2("type", "name")
		if err != nil {
			return err
		}
		c, cancel := ctx()
		defer cancel()
		info, err := irmclient.New(dir).CreateIPCP(c, typ, name)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "created IPCP %s (type %s, pid %d)\n", name, typ, info.PID)
		return nil
	case "bootstrap":
		k, err := parseKV(rest, []string{"type", "name", "layer"}, []string{"autobind"}, true)
		if err != nil {
			return err
		}
		name, layer, err := k.need2("name", "layer")
		if err != nil {
			return err
		}
		params, err := k.params()
		if err != nil {
			return err
		}
		if f, ok := params["secret"]; ok {
			if params["secret"], err = secretPath(f); err != nil {
				return err
			}
		}
		req := ctrl.IPCPBootstrap{Type: k.get("type"), Name: name, Layer: layer, Params: params, Autobind: k.flags["autobind"]}
		c, cancel := ctx()
		defer cancel()
		rep, err := irmclient.New(dir).Bootstrap(c, req)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "bootstrapped IPCP %s in layer %s%s\n", name, layer, addrSuffix(rep.Address))
		return nil
	case "enroll":
		k, err := parseKV(rest, []string{"name", "layer", "dst", "type", "secret"}, []string{"autobind"}, false)
		if err != nil {
			return err
		}
		name, layer, err := k.need2("name", "layer")
		if err != nil {
			return err
		}
		req := ctrl.IPCPEnroll{Name: name, Layer: layer, Dst: k.get("dst"), Autobind: k.flags["autobind"], Type: k.get("type")}
		if f := k.get("secret"); f != "" {
			if req.Secret, err = secretPath(f); err != nil {
				return err
			}
		}
		c, cancel := ctx()
		defer cancel()
		rep, err := irmclient.New(dir).Enroll(c, req)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "enrolled IPCP %s in layer %s%s\n", name, layer, addrSuffix(rep.Address))
		return nil
	case "connect", "disconnect":
		keys := []string{"name", "dst", "component"}
		if verb == "connect" {
			keys = append(keys, "layer", "cost")
		}
		k, err := parseKV(rest, keys, nil, false)
		if err != nil {
			return err
		}
		name, dst, err := k.need2("name", "dst")
		if err != nil {
			return err
		}
		comp := k.get("component")
		if comp != "" && comp != "dt" && comp != "mgmt" {
			return usagef("component must be dt or mgmt, not %q", comp)
		}
		cost, err := k.uint("cost")
		if err != nil {
			return err
		}
		req := ctrl.IPCPConnect{Name: name, Dst: dst, Component: comp, Layer: k.get("layer"), Cost: uint32(cost)}
		c, cancel := ctx()
		defer cancel()
		if verb == "disconnect" {
			err = irmclient.New(dir).Disconnect(c, ctrl.IPCPDisconnect(req))
		} else {
			err = irmclient.New(dir).Connect(c, req)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%sed %s to %s\n", verb, name, dst)
		return nil
	case "list":
		rest, asJSON := cutFlag(rest, "--json")
		if len(rest) > 0 {
			return usagef("ipcp list takes no arguments but --json")
		}
		c, cancel := ctx()
		defer cancel()
		ipcps, err := irmclient.New(dir).IPCPs(c)
		if err != nil {
			return err
		}
		if asJSON {
			return writeJSON(out, nonNil(ipcps))
		}
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "PID\tNAME\tTYPE\tLAYER\tSTATE\tADDRESS")
		for _, i := range ipcps {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", i.PID, i.Name, i.Type, dash(i.Layer), i.State, dash(i.Address))
		}
		return tw.Flush()
	case "destroy":
		k, err := parseKV(rest, []string{"name"}, nil, false)
		if err != nil {
			return err
		}
		name, err := k.need("name")
		if err != nil {
			return err
		}
		c, cancel := ctx()
		defer cancel()
		if err := irmclient.New(dir).DestroyIPCP(c, name); err != nil {
			return err
		}
		fmt.Fprintf(out, "destroyed IPCP %s\n", name)
		return nil
	}
	return usagef("ipcp: unknown verb %q", verb)
}

func addrSuffix(a string) string {
	if a == "" {
		return ""
	}
	return " with address " + a
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func cmdBind(on bool, args []string, dir string) error {
	verb := "bind"
	if !on {
		verb = "unbind"
	}
	if len(args) < 2 {
		return usagef("%s: want program PATH, process PID or ipcp IPCP, then name NAME", verb)
	}
	var progArgs []string
	for i, a := range args {
		if a == "--" {
			progArgs = args[i+1:]
			args = args[:i]
			break
		}
	}
	var m ctrl.Bind
	switch args[0] {
	case "program":
		m.Program = args[1]
	case "process":
		pid, err := strconv.Atoi(args[1])
		if err != nil || pid <= 0 {
			return usagef("%s process: %q is not a process id", verb, args[1])
		}
		m.PID = pid
	case "ipcp":
		m.IPCP = args[1]
	default:
		return usagef("%s: want program, process or ipcp, not %q", verb, args[0])
	}
	flags := []string{}
	if on && m.Program != "" {
		flags = append(flags, "auto")
	}
	k, err := parseKV(args[2:], []string{"name"}, flags, false)
	if err != nil {
		return err
	}
	if m.Name, err = k.need("name"); err != nil {
		return err
	}
	m.Auto = k.flags["auto"]
	m.Args = progArgs
	c, cancel := ctx()
	defer cancel()
	if !on {
		return irmclient.New(dir).Unbind(c, ctrl.Unbind(m))
	}
	return irmclient.New(dir).Bind(c, m)
}

func cmdName(args []string, dir string, out io.Writer) error {
	if len(args) == 0 {
		return usagef("name: want create, register, unregister or list")
	}
	verb, rest := args[0], args[1:]
	switch verb {
	case "create":
		if len(rest) == 0 {
			return usagef("name create: missing NAME")
		}
		k, err := parseKV(rest[1:], []string{"lb"}, nil, false)
		if err != nil {
			return err
		}
		c, cancel := ctx()
		defer cancel()
		return irmclient.New(dir).CreateName(c, rest[0], k.get("lb"))
	case "register", "unregister":
		if len(rest) == 0 {
			return usagef("name %s: missing NAME", verb)
		}
		k, err := parseKV(rest[1:], []string{"layer"}, nil, false)
		if err != nil {
			return err
		}
		if len(k.vals["layer"]) == 0 {
			return usagef("name %s: missing layer", verb)
		}
		c, cancel := ctx()
		defer cancel()
		if verb == "unregister" {
			return irmclient.New(dir).Unregister(c, rest[0], k.vals["layer"]...)
		}
		return irmclient.New(dir).Register(c, rest[0], k.vals["layer"]...)
	case "list":
		rest, asJSON := cutFlag(rest, "--json")
		if len(rest) > 0 {
			return usagef("name list takes no arguments but --json")
		}
		c, cancel := ctx()
		defer cancel()
		names, err := irmclient.New(dir).Names(c)
		if err != nil {
			return err
		}
		if asJSON {
			return writeJSON(out, nonNil(names))
		}
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tLB\tLAYERS\tBOUND")
		for _, n := range names {
			var bound []string
			bound = append(bound, n.Programs...)
			for _, p := range n.Processes {
				bound = append(bound, "pid:"+strconv.Itoa(p))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n.Name, n.LB, dash(strings.Join(n.Layers, ",")), dash(strings.Join(bound, ",")))
		}
		return tw.Flush()
	}
	return usagef("name: unknown verb %q", verb)
}

func cmdLayer(args []string, dir string, out io.Writer) error {
	args, asJSON := cutFlag(args, "--json")
	args, asDot := cutFlag(args, "--dot")
	if len(args) != 2 || args[0] != "show" || (asJSON && asDot) {
		return usagef("layer: want show LAYER [--json | --dot]")
	}
	c, cancel := ctx()
	defer cancel()
	info, err := irmclient.New(dir).LayerShow(c, args[1])
	if err != nil {
		return err
	}
	switch {
	case asJSON:
		return writeJSON(out, info)
	case asDot:
		if info.Status == nil || info.Status.Unicast == nil {
			return fmt.Errorf("layer %s (type %s) has no graph to draw", args[1], info.Type)
		}
		info.Status.Unicast.WriteDot(out, args[1])
		return nil
	}
	fmt.Fprintf(out, "layer %s (IPCP %s, type %s)\n", args[1], info.IPCP, info.Type)
	fmt.Fprint(out, info.Render())
	return nil
}

// cutFlag removes flag from args and says whether it was there.
func cutFlag(args []string, flag string) ([]string, bool) {
	out := make([]string, 0, len(args))
	found := false
	for _, a := range args {
		if a == flag {
			found = true
			continue
		}
		out = append(out, a)
	}
	return out, found
}

// writeJSON prints v as indented JSON.
func writeJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// nonNil makes an empty list print as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func cmdFlow(args []string, dir string, out io.Writer) error {
	args, asJSON := cutFlag(args, "--json")
	if len(args) != 1 || args[0] != "list" {
		return usagef("flow: want list [--json]")
	}
	c, cancel := ctx()
	defer cancel()
	flows, err := irmclient.New(dir).FlowList(c)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(out, nonNil(flows))
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tLAYER\tIPCP\tPID\tQOS\tSTATE\tPKTS IN/OUT\tBYTES IN/OUT\tDROPS\tLABEL/BENDS\tAGE")
	for _, f := range flows {
		path := "-"
		if f.Path != nil {
			path = fmt.Sprintf("%d/%d", f.Path.Label, f.Path.Bends)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\t%d/%d\t%d/%d\t%d\t%s\t%s\n", f.ID, f.Name, f.Layer, f.IPCP, f.PID,
			f.QoS, f.State, f.PktsIn, f.PktsOut, f.BytesIn, f.BytesOut, f.Drops, path, time.Since(f.Since).Round(time.Second))
	}
	return tw.Flush()
}
