package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ouro-net/ouro/internal/testenv"
)

// TestMain makes the test binary the bench's server process and the
// IPCP executable too.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == serveArg {
		os.Exit(serveMain(os.Args[2:]))
	}
	testenv.MaybeRunIPCP()
	code := m.Run()
	testenv.CleanupBinaries()
	os.Exit(code)
}

func TestParseOnly(t *testing.T) {
	got, err := parseOnly("unicast2, raw,local")
	if err != nil || !reflect.DeepEqual(got, []string{pathRaw, pathLocal, pathUnicast2}) {
		t.Fatalf("got %v, %v; want measuring order", got, err)
	}
	if got, _ := parseOnly(""); !reflect.DeepEqual(got, allPaths()) {
		t.Fatalf("empty: %v", got)
	}
	if _, err := parseOnly("raw,ethernet"); err == nil {
		t.Fatal("unknown path accepted")
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{{"-only", "x"}, {"-sizes", "8"}, {"-d", "10"}, {"-n", "0"}, {"extra"}} {
		if code := run(args, io.Discard, io.Discard); code != 2 {
			t.Errorf("bench %v: exit %d, want 2", args, code)
		}
	}
}

func TestRatiosAndMedian(t *testing.T) {
	tb := &Table{Rows: []Row{
		{Path: pathRaw, Size: 64, RTTMedianMS: 0.1, RTTP99MS: 0.2, PPS: 1000},
		{Path: pathLocal, Size: 64, RTTMedianMS: 0.2, RTTP99MS: 0.8, PPS: 500},
		{Path: pathLocal, Size: 1000, RTTMedianMS: 0.2, PPS: 500, Error: "x"},
	}}
	tb.ratios()
	if r := tb.Rows[1]; r.RTTMedianX != 2 || r.RTTP99X != 4 || r.PPSX != 0.5 {
		t.Fatalf("ratios %+v", r)
	}
	if r := tb.Rows[2]; r.RTTMedianX != 0 || tb.FailedRows != 1 {
		t.Fatalf("row without a baseline: %+v, %d failed", r, tb.FailedRows)
	}
	if m := median([]float64{5, 1, 3}); m != 3 {
		t.Errorf("median of 3: %v", m)
	}
	if m := median([]float64{4, 1, 3, 2}); m != 2.5 {
		t.Errorf("median of 4: %v", m)
	}
}

func TestPeerConnAnswersLastSender(t *testing.T) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	pc := &peerConn{UDPConn: c}
	defer pc.Close()
	if _, err := pc.Write([]byte("x")); err == nil {
		t.Fatal("write with no peer succeeded")
	}
	cli, err := dialUDP(c.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	cli.Write([]byte("ping"))
	buf := make([]byte, 16)
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := pc.Read(buf)
	if err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	pc.Write([]byte("pong"))
	cli.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := cli.Read(buf); err != nil || string(buf[:n]) != "pong" {
		t.Fatalf("reply %q, %v", buf[:n], err)
	}
}

// A short bench of the raw baseline and the local layer: both server
// processes come up, every measurement yields numbers, and the table
// carries the ratios.
func TestBenchRawAndLocal(t *testing.T) {
	e := &env{irm: os.Args[0], logLevel: "error", log: io.Discard}
	c := &config{paths: []string{pathRaw, pathLocal}, sizes: []int{64}, duration: 200 * time.Millisecond}
	tb := bench(context.Background(), e, c, io.Discard)
	if len(tb.Rows) != 2 {
		t.Fatalf("%d rows", len(tb.Rows))
	}
	for _, r := range tb.Rows {
		if r.Error != "" || r.RTTSamples == 0 || r.RTTMedianMS <= 0 || r.Received == 0 || r.PPS <= 0 {
			t.Errorf("row %+v", r)
		}
	}
	if tb.Rows[0].PPSX != 1 || tb.Rows[1].RTTMedianX == 0 {
		t.Errorf("ratios: %+v", tb.Rows)
	}
	var out bytes.Buffer
	tb.Print(&out)
	for _, want := range []string{"raw", "local", "xraw", "flood pkt/s"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	file := t.TempDir() + "/out/results.json"
	if err := writeJSON(file, tb); err != nil {
		t.Fatal(err)
	}
}

// TestParseStatCPU reads utime+stime past a command name with spaces
// and parentheses, and refuses short or garbled lines.
func TestParseStatCPU(t *testing.T) {
	line := "42 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 17 25 0 0 20 0 1 0\n"
	if n, err := parseStatCPU(line); err != nil || n != 42 {
		t.Fatalf("got %d, %v; want 42", n, err)
	}
	for _, bad := range []string{"", "42 (x) S 1 2", "42 (x) S 1 2 3 4 5 6 7 8 9 10 x 25 0"} {
		if _, err := parseStatCPU(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// FuzzParseStatCPU: any text gives a count or an error, never a panic.
func FuzzParseStatCPU(f *testing.F) {
	f.Add("42 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 17 25 0 0 20 0 1 0\n")
	f.Add(")")
	f.Fuzz(func(t *testing.T, s string) { parseStatCPU(s) })
}
