package main

import (
	"flag"
	"fmt"
	"io"
	"math"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/ouro-net/ouro/enroll"
	"github.com/ouro-net/ouro/internal/scalesim"
)

// ScaleResult is a -scale run: one simulated layer per N.
type ScaleResult struct {
	Started   time.Time          `json:"started"`
	Topology  string             `json:"topology"`
	Degree    int                `json:"degree"`
	FrameIOUS float64            `json:"frame_io_us"`
	Rows      []*scalesim.Result `json:"rows"`
	Errors    []string           `json:"errors,omitempty"`
	// TolerableN is where the idle flooding of one member would pass
	// scaleBudget of one core, from a fit of the measured rates.
	TolerableN int     `json:"tolerable_n"`
	BudgetPct  float64 `json:"budget_pct_of_a_core"`
}

// scaleBudget is what "tolerable" means for idle management traffic:
// a member spends at most 1% of one core on it.
const scaleBudget = 0.01

// parseScaleNs parses the -scale-n list.
func parseScaleNs(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 10 || n > 20000 {
			return nil, fmt.Errorf("bad -scale-n %q (want sizes from 10 to 20000)", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// scaleRun simulates a layer of each size in ns (internal/scalesim: the
// real routing, directory and enrollment code in virtual time) and
// prints what flooding costs as the layer grows.
func scaleRun(ns []int, topo string, degree int, frameIOUS float64, out, progress io.Writer) (*ScaleResult, error) {
	// The simulation holds every member's database in one process:
	// trade memory for less garbage collection.
	defer debug.SetGCPercent(debug.SetGCPercent(200))
	res := &ScaleResult{Started: time.Now(), Topology: topo, Degree: degree, FrameIOUS: frameIOUS, BudgetPct: 100 * scaleBudget}
	for _, n := range ns {
		fmt.Fprintf(progress, "bench: scale: N=%d %s\n", n, topo)
		r, err := scalesim.Measure(scalesim.Config{N: n, Topology: topo, Degree: degree, Seed: uint64(n)})
		if err != nil {
			res.Errors = append(res.Errors, fmt.Sprintf("N=%d: %v", n, err))
			fmt.Fprintf(progress, "bench: scale: N=%d: %v\n", n, err)
			continue
		}
		res.Rows = append(res.Rows, r)
	}
	if len(res.Rows) == 0 {
		return res, fmt.Errorf("no layer size measured: %s", strings.Join(res.Errors, "; "))
	}
	printScale(res, out)
	return res, nil
}

func printScale(res *ScaleResult, w io.Writer) {
	fmt.Fprintf(w, "scale: one unicast layer in virtual time (internal/scalesim), topology %s", res.Topology)
	if res.Topology == scalesim.TopoRandom {
		fmt.Fprintf(w, " (ring plus random chords, mean degree %d)", res.Degree)
	}
	fmt.Fprintf(w, ";\nreal routing, directory and enrollment code; 1 hop = %.0f ms; layer defaults (refresh 30 s, hold-down 5 ms); 2 names per member\n\n",
		res.Rows[0].HopMS)
	fmt.Fprintln(w, "idle, per member per second, over one refresh interval:")
	fmt.Fprintf(w, "%6s %6s %5s | %8s %8s %8s %8s %8s %9s | %8s %9s %9s %9s %8s | %8s %8s\n",
		"N", "links", "deg", "LSUs", "LSUs max", "dir ents", "dir new", "frames", "bytes",
		"dir ents", "dir B", "enroll B", "max msg", "KiB/mbr", "CPU us/f", "SPF us")
	for _, r := range res.Rows {
		fmt.Fprintf(w, "%6d %6d %5.2f | %8.1f %8.1f %8.1f %8.1f %8.1f %9.0f | %8d %9d %9d %9d %8.0f | %8.1f %8.0f\n",
			r.N, r.Links, r.Degree, r.Idle.LSUs, r.Idle.LSUsMax, r.Idle.DirEntries, r.Idle.DirFresh, r.Idle.Frames, r.Idle.Bytes,
			r.DirEntries, r.DirBytes, r.EnrollBytes, max(r.MaxRoutingMsg, r.MaxDirMsg), r.StateKiBPerMember, r.FrameUS, r.SPFUS)
	}
	fmt.Fprintln(w, "(dir: one member's directory, its encoded snapshot; enroll: the response a joiner gets; max msg: the largest routing or directory frame;\n KiB/mbr: the simulation's live heap after the bring-up per member, about what a member holds for the layer)")
	fmt.Fprintln(w, "\nevents (virtual ms until the last table changed; SPF runs and LSUs received per member):")
	fmt.Fprintf(w, "%6s | %9s %8s %8s | %9s %8s %8s %10s | %9s %8s %8s | %9s %9s %7s\n",
		"N", "link ms", "SPF/m", "LSU/m", "member ms", "SPF/m", "LSU/m", "dir gone s", "join ms", "LSU/m", "dir/m", "bring-up", "frames/m", "wall s")
	for _, r := range res.Rows {
		fmt.Fprintf(w, "%6d | %9.0f %8.2f %8.1f | %9.0f %8.2f %8.1f %10.1f | %9.0f %8.1f %8.1f | %9.0f %9.0f %7.1f\n",
			r.N, r.LinkFail.ConvergedMS, r.LinkFail.SPFPerMember, r.LinkFail.LSUsPerMember,
			r.MemberFail.ConvergedMS, r.MemberFail.SPFPerMember, r.MemberFail.LSUsPerMember, r.DirCleanupS,
			r.Join.ConvergedMS, r.Join.LSUsPerMember, r.Join.DirPerMember,
			r.BringUpMS, r.BringUpFramesPerMember, r.WallS)
	}
	// Idle frames per member grow linearly in N (each member's refresh
	// reaches every member over each of its links): fit frames = k*N
	// through the largest layer and find where the idle cost reaches
	// the budget, at the measured CPU per frame plus frameIOUS of I/O.
	last := res.Rows[len(res.Rows)-1]
	k := last.Idle.Frames / float64(last.N)
	cost := (last.FrameUS + res.FrameIOUS) * 1e-6 // s of CPU per frame
	if k > 0 && cost > 0 {
		res.TolerableN = int(math.Round(scaleBudget / (k * cost)))
	}
	fmt.Fprintf(w, "\nidle flooding: %.3f frames per member per second per member of the layer (fit at N=%d);\n", k, last.N)
	fmt.Fprintf(w, "at %.1f us of CPU per frame (%.1f measured here + %.0f us assumed for the lower-flow I/O and ack of a real frame)\n",
		last.FrameUS+res.FrameIOUS, last.FrameUS, res.FrameIOUS)
	fmt.Fprintf(w, "a member spends %.0f%% of one core on idle refreshes at N = %d (tolerable: under %.0f%%)\n",
		100*scaleBudget, res.TolerableN, 100*scaleBudget)
	// The enrollment response travels in parts that fit the lower flow
	// (enroll.Split); one message is bounded by enroll.MaxMessage.
	perMember := float64(last.EnrollBytes) / float64(last.N)
	fmt.Fprintf(w, "enrollment response: %.0f bytes per member, sent in MTU-sized parts: %.0f parts over udp4 on Ethernet (1468 bytes) at N = %d; the %d-byte message bound is reached at N = %.0f\n",
		perMember, math.Ceil(float64(last.EnrollBytes)/1468), last.N, enroll.MaxMessage, float64(enroll.MaxMessage)/perMember)
	for _, e := range res.Errors {
		fmt.Fprintf(w, "error: %s\n", e)
	}
}

// scaleFlags are the command-line flags of -scale.
type scaleFlags struct {
	on      bool
	ns      string
	topo    string
	degree  int
	frameIO float64
}

func (f *scaleFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&f.on, "scale", false, "simulate a unicast layer of -scale-n members in virtual time (real routing, directory, enrollment) and report convergence, idle updates and directory size (see scale.go)")
	fs.StringVar(&f.ns, "scale-n", "100,250,500,1000", "scale: layer sizes")
	fs.StringVar(&f.topo, "topo", scalesim.TopoRandom, "scale: topology, random (ring plus random chords) or grid")
	fs.IntVar(&f.degree, "degree", 4, "scale: mean degree of the random topology")
	fs.Float64Var(&f.frameIO, "frame-io-us", 40, "scale: CPU microseconds assumed per management frame for the I/O of a real lower flow (issue 16 measured about 40 us per hello event)")
}

// scaleMain runs -scale and writes its JSON.
func scaleMain(c *config, stdout, stderr io.Writer) int {
	ns, err := parseScaleNs(c.scale.ns)
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 2
	}
	r, err := scaleRun(ns, c.scale.topo, c.scale.degree, c.scale.frameIO, stdout, stderr)
	code := 0
	if err != nil {
		fmt.Fprintf(stderr, "bench: scale: %v\n", err)
	}
	if err != nil || len(r.Errors) > 0 {
		code = 1
	}
	if err := writeJSON(c.jsonFile, r); err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "\nwrote %s\n", c.jsonFile)
	return code
}
