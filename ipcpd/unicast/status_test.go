package unicast_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/ouro-net/ouro/internal/topo"
	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/irmclient"
)

// layerInfo asks the IRMd of dir for its member of layer.
func layerInfo(dir, layer string) (ctrl.LayerInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return irmclient.New(dir).LayerShow(ctx, layer)
}

// netStatus returns the status of layer at dir, failing the test
// unless it is a unicast member's.
func netStatus(t *testing.T, dir, layer string) (*ctrl.Status, *ctrl.UnicastStatus) {
	t.Helper()
	info, err := layerInfo(dir, layer)
	if err != nil {
		t.Fatalf("layer show %s: %v", layer, err)
	}
	u, err := topo.UnicastOf(info)
	if err != nil {
		t.Fatal(err)
	}
	return info.Status, u
}

// hostStatus is netStatus of the topology's unicast layer at host.
func hostStatus(t *testing.T, tp *topo.Topo, host string) (*ctrl.Status, *ctrl.UnicastStatus) {
	t.Helper()
	info, err := tp.Info(host)
	if err != nil {
		t.Fatalf("layer show at %s: %v", host, err)
	}
	u, err := topo.UnicastOf(info)
	if err != nil {
		t.Fatal(err)
	}
	return info.Status, u
}

// knowsName says whether the directory holds name.
func knowsName(u *ctrl.UnicastStatus, name string) bool {
	return namesHeld(u, name) > 0
}

// namesHeld counts the members whose directory entry holds name.
func namesHeld(u *ctrl.UnicastStatus, name string) int {
	if u == nil {
		return 0
	}
	n := 0
	for _, e := range u.Directory {
		if slices.Contains(e.Names, name) {
			n++
		}
	}
	return n
}
