// Command httpflow serves and fetches HTTP over a reliable ouro flow
// with the standard net/http package: the server listens on a name, the
// client dials names, and nothing else changes.
//
//	httpflow -l [-n NAME] [-dir DIR]     serve DIR (default .) on NAME (default web)
//	httpflow [-n NAME] [PATH]            fetch http://NAME/PATH to stdout
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/lib/qos"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("httpflow", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.Bool("l", false, "serve")
	name := fs.String("n", "web", "name to serve or fetch from")
	dir := fs.String("dir", ".", "directory to serve")
	rundir := fs.String("rundir", "", "IRMd run directory (default $OURO_RUNDIR)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	opts := []flow.Option{flow.WithRunDir(*rundir)}
	if *listen {
		l, err := flow.Listen(*name, opts...)
		if err != nil {
			fmt.Fprintf(stderr, "httpflow: %v\n", err)
			return 1
		}
		srv := &http.Server{Handler: http.FileServer(http.Dir(*dir)), ReadHeaderTimeout: 10 * time.Second}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		go func() {
			<-ctx.Done()
			srv.Close()
		}()
		fmt.Fprintf(stdout, "httpflow: serving %s on name %s\n", *dir, *name)
		if err := srv.Serve(l.NetListener()); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintf(stderr, "httpflow: %v\n", err)
			return 1
		}
		return 0
	}
	if fs.NArg() > 1 {
		fmt.Fprintln(stderr, "httpflow: at most one PATH")
		return 2
	}
	client := &http.Client{
		Transport: &http.Transport{DialContext: flow.Dialer{QoS: qos.Reliable(), Options: opts}.DialContext},
		Timeout:   time.Minute,
	}
	resp, err := client.Get("http://" + *name + "/" + fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "httpflow: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	if _, err := io.Copy(stdout, resp.Body); err != nil {
		fmt.Fprintf(stderr, "httpflow: %v\n", err)
		return 1
	}
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "httpflow: %s\n", resp.Status)
		return 1
	}
	return 0
}
