package main

import (
	"slices"

	"github.com/ouro-net/ouro/internal/topo"
	"github.com/ouro-net/ouro/lib/ctrl"
)

// The bench reads layer status as data (ctrl.Status), never the text
// `irm layer show` prints.

// adjDowns returns the adjacencies that went down at host's unicast
// member (0 if it does not answer).
func adjDowns(tp *topo.Topo, host string) int {
	u, err := tp.Status(host)
	if err != nil {
		return 0
	}
	return int(u.Counters.AdjDown)
}

// knowsName says whether a unicast member's directory holds name.
func knowsName(info ctrl.LayerInfo, name string) bool {
	u, err := topo.UnicastOf(info)
	if err != nil {
		return false
	}
	for _, e := range u.Directory {
		if slices.Contains(e.Names, name) {
			return true
		}
	}
	return false
}

// routeFlows counts the lower flows a unicast member forwards to dst
// over (0 without a route or a unicast status).
func routeFlows(info ctrl.LayerInfo, dst string) int {
	u, err := topo.UnicastOf(info)
	if err != nil {
		return 0
	}
	return topo.RouteNextHops(u, dst)
}
