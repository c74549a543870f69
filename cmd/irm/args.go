package main

import (
	"slices"
	"strconv"
)

// kv holds the keyword-value pairs and bare flags of one command line.
type kv struct {
	vals  map[string][]string
	flags map[string]bool
	extra []string // PARAM VALUE pairs not among the known keywords, in order
}

// parseKV splits args into known keywords (each taking one value),
// known bare flags, and, when allowExtra is set, unknown keyword-value
// pairs (bootstrap parameters). Anything else is a usage error.
func parseKV(args []string, keys, flags []string, allowExtra bool) (*kv, error) {
	out := &kv{vals: map[string][]string{}, flags: map[string]bool{}}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case slices.Contains(flags, a):
			out.flags[a] = true
		case slices.Contains(keys, a):
			if i+1 >= len(args) {
				return nil, usagef("%s needs a value", a)
			}
			out.vals[a] = append(out.vals[a], args[i+1])
			i++
		case allowExtra:
			if i+1 >= len(args) {
				return nil, usagef("parameter %s needs a value", a)
			}
			out.extra = append(out.extra, a, args[i+1])
			i++
		default:
			return nil, usagef("unknown keyword %q", a)
		}
	}
	return out, nil
}

func (k *kv) get(key string) string {
	if v := k.vals[key]; len(v) > 0 {
		return v[len(v)-1]
	}
	return ""
}

func (k *kv) need(key string) (string, error) {
	v := k.get(key)
	if v == "" {
		return "", usagef("missing %s", key)
	}
	return v, nil
}

// need2 is need for two keys, in order.
func (k *kv) need2(a, b string) (string, string, error) {
	va, err := k.need(a)
	if err != nil {
		return "", "", err
	}
	vb, err := k.need(b)
	return va, vb, err
}

func (k *kv) uint(key string) (uint64, error) {
	v := k.get(key)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 0, 32)
	if err != nil {
		return 0, usagef("%s: %q is not a number", key, v)
	}
	return n, nil
}

// cValues maps the C irm tool's spellings of parameter values to ours,
// per parameter, so its users' command lines work unchanged.
var cValues = map[string]map[string]string{
	"routing": {"link_state": "link-state", "LINK_STATE": "link-state", "LFA": "lfa", "ECMP": "ecmp"},
}

// cSpelling returns value of parameter key in our spelling.
func cSpelling(key, value string) string {
	if v, ok := cValues[key][value]; ok {
		return v
	}
	return value
}

func (k *kv) params() (map[string]string, error) {
	p := map[string]string{}
	for i := 0; i+1 < len(k.extra); i += 2 {
		k.extra[i+1] = cSpelling(k.extra[i], k.extra[i+1])
		if _, dup := p[k.extra[i]]; dup && k.extra[i] != "peer" {
			return nil, usagef("parameter %s given twice", k.extra[i])
		}
		if k.extra[i] == "peer" && p["peer"] != "" {
			p["peer"] += "," + k.extra[i+1]
			continue
		}
		p[k.extra[i]] = k.extra[i+1]
	}
	return p, nil
}
