package irmclient_test

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/internal/testenv"
	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/irmclient"
	"github.com/ouro-net/ouro/lib/qos"
)

func TestMain(m *testing.M) {
	testenv.MaybeRunIPCP()
	code := m.Run()
	testenv.CleanupBinaries()
	os.Exit(code)
}

// TestClientManagesHost drives a real IRMd through every kind of call of
// the typed client: create, bootstrap, register, bind, list, show,
// resolve, allocate, flows, unregister, destroy.
func TestClientManagesHost(t *testing.T) {
	h := testenv.StartHost(t)
	c := irmclient.New(h.Dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	info, err := c.CreateIPCP(ctx, "local", "lo")
	if err != nil || info.Name != "lo" || info.PID == 0 {
		t.Fatalf("create: %+v %v", info, err)
	}
	if _, err := c.Bootstrap(ctx, ctrl.IPCPBootstrap{Name: "lo", Layer: "lo"}); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	if _, err := c.Enroll(ctx, ctrl.IPCPEnroll{Name: "nosuch", Layer: "lo"}); err == nil || !strings.Contains(err.Error(), "nosuch") {
		t.Fatalf("enroll of a missing IPCP: %v", err)
	}
	if err := c.Register(ctx, "svc", "lo"); err != nil {
		t.Fatalf("register: %v", err)
	}
	if err := c.Bind(ctx, ctrl.Bind{PID: os.Getpid(), Name: "svc"}); err != nil {
		t.Fatalf("bind: %v", err)
	}
	names, err := c.Names(ctx)
	if err != nil || len(names) != 1 || names[0].Name != "svc" || !slices.Equal(names[0].Layers, []string{"lo"}) ||
		!slices.Contains(names[0].Processes, os.Getpid()) {
		t.Fatalf("names: %+v %v", names, err)
	}
	ipcps, err := c.IPCPs(ctx)
	if err != nil || len(ipcps) != 1 || ipcps[0].Layer != "lo" {
		t.Fatalf("ipcps: %+v %v", ipcps, err)
	}
	show, err := c.LayerShow(ctx, "lo")
	if err != nil || show.IPCP != "lo" || show.Type != "local" {
		t.Fatalf("layer show: %+v %v", show, err)
	}
	layers, err := c.Resolve(ctx, "svc")
	if err != nil || !slices.Equal(layers, []string{"lo"}) {
		t.Fatalf("resolve: %v %v", layers, err)
	}

	l, err := flow.Listen("svc", h.Opt())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan *flow.Flow, 1)
	go func() {
		f, err := l.Accept(ctx)
		if err != nil {
			close(accepted)
			return
		}
		accepted <- f
	}()
	f, err := c.Alloc(ctx, "svc", qos.Spec{})
	if err != nil {
		t.Fatalf("alloc: %v", err)
	}
	defer f.Close()
	g := <-accepted
	if g == nil {
		t.Fatal("no flow accepted")
	}
	defer g.Close()
	flows, err := c.FlowList(ctx)
	if err != nil || len(flows) != 2 {
		t.Fatalf("flows: %+v %v", flows, err)
	}

	if err := c.Unbind(ctx, ctrl.Unbind{PID: os.Getpid(), Name: "svc"}); err != nil {
		t.Fatalf("unbind: %v", err)
	}
	if err := c.Unregister(ctx, "svc", "lo"); err != nil {
		t.Fatalf("unregister: %v", err)
	}
	if err := c.CreateName(ctx, "other", "spillover"); err != nil {
		t.Fatalf("create name: %v", err)
	}
	if err := c.CreateName(ctx, "other", ""); err == nil {
		t.Fatal("a name created twice")
	}
	if err := c.DestroyIPCP(ctx, "lo"); err != nil {
		t.Fatalf("destroy: %v", err)
	}
	if ipcps, err := c.IPCPs(ctx); err != nil || len(ipcps) != 0 {
		t.Fatalf("ipcps after destroy: %+v %v", ipcps, err)
	}
	// A run directory without a daemon: a clear error.
	if _, err := irmclient.New(testenv.ShortTempDir(t)).IPCPs(ctx); err == nil || !strings.Contains(err.Error(), "irm daemon") {
		t.Fatalf("no daemon: %v", err)
	}
}
