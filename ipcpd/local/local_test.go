package local_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ouro-net/ouro/internal/testenv"
	"github.com/ouro-net/ouro/ipcpd"
	"github.com/ouro-net/ouro/ipcpd/local"
	"github.com/ouro-net/ouro/lib/irmclient"
)

func TestMain(m *testing.M) {
	testenv.MaybeRunIPCP()
	code := m.Run()
	testenv.CleanupBinaries()
	os.Exit(code)
}

// TestNames: the IPCP is the set of names of its layer; it takes no
// parameter and carries no flow.
func TestNames(t *testing.T) {
	ctx := context.Background()
	p, err := local.New(&ipcpd.Host{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.Bootstrap(ctx, "lo", map[string]string{"colour": "blue"}); err == nil || !strings.Contains(err.Error(), `no parameter "colour"`) {
		t.Fatalf("bootstrap with a parameter: %v", err)
	}
	if rep, err := p.Bootstrap(ctx, "lo", nil); err != nil || rep.MTU != local.MTU {
		t.Fatalf("bootstrap: %+v %v", rep, err)
	}
	if ok, _ := p.Query(ctx, "srv"); ok {
		t.Fatal("srv reachable before it was registered")
	}
	if err := p.Register(ctx, "srv"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := p.Query(ctx, "srv"); !ok {
		t.Fatal("srv not reachable after register")
	}
	if err := p.Unregister(ctx, "srv"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := p.Query(ctx, "srv"); ok {
		t.Fatal("srv reachable after unregister")
	}
	if err := p.Unregister(ctx, "srv"); err == nil || !strings.Contains(err.Error(), "not registered") {
		t.Fatalf("second unregister: %v", err)
	}
	if _, err := p.Alloc(ctx, &ipcpd.Flow{Name: "srv"}); !errors.Is(err, local.ErrNoRelay) {
		t.Fatalf("alloc through the IPCP: %v, want ErrNoRelay", err)
	}
}

// TestLocalLayerCLI runs a local layer as a user would, with the irm and
// oping binaries: bootstrap (a parameter is refused), register, ping
// (the IRMd connects the two processes directly: the flow list says
// "direct"), unregister (the name is gone: allocation fails), and
// destroy (the pinger's flow ends with the layer).
func TestLocalLayerCLI(t *testing.T) {
	dir, _ := testenv.StartDaemon(t, "")
	if out, code := testenv.Run(t, "", dir, "irm", "ipcp", "bootstrap", "type", "local", "name", "bad", "layer", "x", "colour", "blue"); code == 0 ||
		!strings.Contains(out, `takes no parameter "colour"`) {
		t.Fatalf("bootstrap with a parameter: exit %d\n%s", code, out)
	}
	testenv.MustRun(t, "", dir, "irm", "ipcp", "bootstrap", "type", "local", "name", "lo", "layer", "lo")
	testenv.MustRun(t, "", dir, "irm", "name", "register", "srv", "layer", "lo")
	testenv.Start(t, "", dir, "oping", "-l", "-n", "srv")
	waitListening(t, dir, "srv")
	if out := testenv.MustRun(t, "", dir, "oping", "-n", "srv", "-c", "20", "-f", "-Q"); !strings.Contains(out, "20 packets transmitted, 20 received") {
		t.Fatalf("oping over the local layer:\n%s", out)
	}

	// A long pinger holds a flow: it is direct, and ends with the layer.
	pinger := testenv.Start(t, "", dir, "oping", "-n", "srv", "-i", "10ms", "-d", "60s")
	for deadline := time.Now().Add(10 * time.Second); !directFlow(t, dir, "srv"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no direct flow listed:\n%s", testenv.MustRun(t, "", dir, "irm", "flow", "list"))
		}
	}

	testenv.MustRun(t, "", dir, "irm", "name", "unregister", "srv", "layer", "lo")
	if out, code := testenv.Run(t, "", dir, "oping", "-n", "srv", "-c", "1"); code == 0 {
		t.Fatalf("oping to an unregistered name succeeded:\n%s", out)
	} else {
		t.Logf("after unregister: %s", strings.TrimSpace(out))
	}

	select {
	case <-pinger.Exited():
		t.Fatalf("the pinger ended before its layer did:\n%s", pinger.Out.String())
	default:
	}
	testenv.MustRun(t, "", dir, "irm", "ipcp", "destroy", "name", "lo")
	if !pinger.Wait(10*time.Second) || !strings.Contains(pinger.Out.String(), "flow down") {
		t.Fatalf("the pinger's flow outlived its layer:\n%s", pinger.Out.String())
	}
	t.Logf("pinger after destroy: %s", strings.TrimSpace(pinger.Out.String()))
}

// waitListening waits until a process listens on name at the IRMd of dir.
func waitListening(t *testing.T, dir, name string) { testenv.WaitListener(t, dir, name) }

// directFlow reports whether the IRMd of dir lists a direct flow to name.
func directFlow(t *testing.T, dir, name string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	flows, err := irmclient.New(dir).FlowList(ctx)
	if err != nil {
		t.Fatalf("flow list: %v", err)
	}
	for _, f := range flows {
		if f.Name == name && f.State == "direct" {
			return true
		}
	}
	return false
}
