package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ouro-net/ouro/internal/topo"
	"github.com/ouro-net/ouro/lib/logging"
	"github.com/ouro-net/ouro/lib/seal"
)

// pathUnicast2s is unicast2 in a layer with a secret (issue 13 item 1):
// every adjacency a sealed flow under the layer secret, the
// application's flow itself plain, so the row against unicast2 is the
// price of authenticated, sealed adjacencies.
const pathUnicast2s = "unicast2-s"

// secretSquare builds the square of unicast2 with a layer secret.
func (e *env) secretSquare(ctx context.Context, path string) (*target, error) {
	dir, err := os.MkdirTemp("", "ouro-bench-secret-")
	if err != nil {
		return nil, err
	}
	key := filepath.Join(dir, "net.key")
	if err := seal.GenerateSecret(key); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	lvl, _ := logging.ParseLevel(e.logLevel)
	tp, err := topo.Build(ctx, topo.Config{Hosts: []string{"a", "b", "c", "d"},
		Links: [][2]string{{"b", "a"}, {"c", "a"}, {"d", "b"}, {"d", "c"}}, PerLink: true,
		Params: map[string]string{"secret": key}, Exe: e.irm, Types: ipcpTypes(),
		Log: logging.New("irmd", lvl, e.log), LogLevel: e.logLevel})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("build the secret square: %w", err)
	}
	closeAll := func() { tp.Close(); os.RemoveAll(dir) }
	if _, err := tp.WaitRoute("a", "d", 2, 20*time.Second); err != nil {
		closeAll()
		return nil, err
	}
	if err := registerAll(tp.Hosts["d"].Dir, "net"); err != nil {
		closeAll()
		return nil, err
	}
	t, err := e.flowTarget(path, tp.Hosts["d"].Dir, tp.Hosts["a"].Dir, "net", closeAll)
	if err != nil {
		return nil, err
	}
	t.Dirs = hostDirs(tp)
	return unicastHealth(t, tp, 2, [2]string{"a", "d"}, [2]string{"d", "a"}), nil
}
