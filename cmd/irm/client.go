package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/lib/ctrl"
)

// callTimeout bounds one CLI request (enrollment may take a while).
const callTimeout = 60 * time.Second

// call sends one request to the IRMd of dir.
func call(dir, op string, req, resp any) error {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	return flow.Call(ctx, dir, op, req, resp)
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
		var info ctrl.IPCPInfo
		if err := call(dir, ctrl.OpIPCPCreate, ctrl.IPCPCreate{Type: typ, Name: name}, &info); err != nil {
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
		var rep ctrl.IPCPBootstrapReply
		req := ctrl.IPCPBootstrap{Type: k.get("type"), Name: name, Layer: layer, Params: params, Autobind: k.flags["autobind"]}
		if err := call(dir, ctrl.OpIPCPBootstrap, req, &rep); err != nil {
			return err
		}
		fmt.Fprintf(out, "bootstrapped IPCP %s in layer %s%s\n", name, layer, addrSuffix(rep.Address))
		return nil
	case "enroll":
		k, err := parseKV(rest, []string{"name", "layer", "dst"}, []string{"autobind"}, false)
		if err != nil {
			return err
		}
		name, layer, err := k.need2("name", "layer")
		if err != nil {
			return err
		}
		var rep ctrl.IPCPBootstrapReply
		req := ctrl.IPCPEnroll{Name: name, Layer: layer, Dst: k.get("dst"), Autobind: k.flags["autobind"]}
		if err := call(dir, ctrl.OpIPCPEnroll, req, &rep); err != nil {
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
		op := ctrl.OpIPCPConnect
		if verb == "disconnect" {
			op = ctrl.OpIPCPDisconnect
		}
		req := ctrl.IPCPConnect{Name: name, Dst: dst, Component: comp, Layer: k.get("layer"), Cost: uint32(cost)}
		if err := call(dir, op, req, nil); err != nil {
			return err
		}
		fmt.Fprintf(out, "%sed %s to %s\n", verb, name, dst)
		return nil
	case "list":
		if len(rest) > 0 {
			return usagef("ipcp list takes no arguments")
		}
		var l ctrl.IPCPList
		if err := call(dir, ctrl.OpIPCPList, nil, &l); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "PID\tNAME\tTYPE\tLAYER\tSTATE\tADDRESS")
		for _, i := range l.IPCPs {
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
		if err := call(dir, ctrl.OpIPCPDestroy, ctrl.IPCPRef{Name: name}, nil); err != nil {
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
	op := ctrl.OpBind
	if !on {
		verb, op = "unbind", ctrl.OpUnbind
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
	return call(dir, op, m, nil)
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
		return call(dir, ctrl.OpNameCreate, ctrl.NameCreate{Name: rest[0], LB: k.get("lb")}, nil)
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
		op := ctrl.OpNameRegister
		if verb == "unregister" {
			op = ctrl.OpNameUnregister
		}
		return call(dir, op, ctrl.NameRegister{Name: rest[0], Layers: k.vals["layer"]}, nil)
	case "list":
		if len(rest) > 0 {
			return usagef("name list takes no arguments")
		}
		var l ctrl.NameList
		if err := call(dir, ctrl.OpNameList, nil, &l); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tLB\tLAYERS\tBOUND")
		for _, n := range l.Names {
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
	if len(args) != 2 || args[0] != "show" {
		return usagef("layer: want show LAYER")
	}
	var info ctrl.LayerInfo
	if err := call(dir, ctrl.OpLayerShow, ctrl.LayerShow{Layer: args[1]}, &info); err != nil {
		return err
	}
	fmt.Fprintf(out, "layer %s (IPCP %s, type %s)\n", args[1], info.IPCP, info.Type)
	if info.Text != "" {
		fmt.Fprint(out, info.Text)
		if !strings.HasSuffix(info.Text, "\n") {
			fmt.Fprintln(out)
		}
	}
	return nil
}

func cmdFlow(args []string, dir string, out io.Writer) error {
	if len(args) != 1 || args[0] != "list" {
		return usagef("flow: want list")
	}
	var l ctrl.FlowList
	if err := call(dir, ctrl.OpFlowList, nil, &l); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tLAYER\tIPCP\tPID\tQOS\tSTATE\tPKTS IN/OUT\tBYTES IN/OUT\tDROPS\tAGE")
	for _, f := range l.Flows {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\t%d/%d\t%d/%d\t%d\t%s\n", f.ID, f.Name, f.Layer, f.IPCP, f.PID,
			f.QoS, f.State, f.PktsIn, f.PktsOut, f.BytesIn, f.BytesOut, f.Drops, time.Since(f.Since).Round(time.Second))
	}
	return tw.Flush()
}
