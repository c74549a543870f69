package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ouro-net/ouro/internal/testenv"
	"github.com/ouro-net/ouro/lib/ctrl"
)

// TestSquareFromTOML brings up four hosts (a-b, a-c, b-d, c-d on
// loopback), each from its own TOML file: a UDP layer to its
// neighbours and a unicast layer that a bootstraps and the others join
// through a neighbour. A ping from a reaches a name served at d, two
// hops away.
func TestSquareFromTOML(t *testing.T) {
	hosts := []string{"a", "b", "c", "d"}
	nbrs := map[string][]string{"a": {"b", "c"}, "b": {"a", "d"}, "c": {"a", "d"}, "d": {"b", "c"}}
	ip := map[string]string{}
	port := map[string]int{}
	for i, h := range hosts {
		ip[h] = fmt.Sprintf("127.0.0.%d", 60+i)
		port[h] = freeUDPPort(t, ip[h])
	}
	dirs := map[string]string{}
	for i, h := range hosts {
		var peers, connect []string
		for _, n := range nbrs[h] {
			peers = append(peers, fmt.Sprintf("%q", fmt.Sprintf("%s:%d", ip[n], port[n])))
			if indexOf(hosts, n) < i {
				connect = append(connect, fmt.Sprintf("{ dst = %q }", n))
			}
		}
		var b strings.Builder
		fmt.Fprintf(&b, "[[ipcp]]\nname = \"%s.udp\"\ntype = \"udp4\"\nbootstrap = \"udp\"\n", h)
		fmt.Fprintf(&b, "params = { ip = %q, port = %d, peer = [%s] }\n\n", ip[h], port[h], strings.Join(peers, ", "))
		fmt.Fprintf(&b, "[[ipcp]]\nname = %q\nautobind = true\nregister = [\"udp\"]\n", h)
		if h == "a" {
			b.WriteString("type = \"unicast\"\nbootstrap = \"net\"\nparams = { routing = \"link_state\" }\n")
		} else {
			fmt.Fprintf(&b, "enroll = \"net\"\ndst = %q\nconnect = [%s]\n", nbrs[h][0], strings.Join(connect, ", "))
		}
		if h == "d" {
			b.WriteString("\n[[name]]\nname = \"srv\"\nlayers = [\"net\"]\n")
		}
		file := filepath.Join(t.TempDir(), h+".toml")
		if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		dirs[h] = testenv.ShortTempDir(t)
		testenv.Start(t, "", dirs[h], "irm", "daemon", "--rundir", dirs[h], "--config", file)
		state := "enrolled"
		if h == "a" {
			state = "bootstrapped"
		}
		waitIPCP(t, dirs[h], h, state, 60*time.Second)
	}
	waitNameListed(t, dirs["d"], "srv", "", 30*time.Second, func(ctrl.NameInfo) bool { return true })
	testenv.Start(t, "", dirs["d"], "oping", "-l", "-n", "srv")
	waitListener(t, dirs["d"], "srv", 10*time.Second)
	var out string
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		out, _ = testenv.Run(t, "", dirs["a"], "oping", "-n", "srv", "-c", "3", "-f", "-Q")
		if strings.Contains(out, "3 received") {
			break
		}
		if time.Now().After(deadline) {
			show, _ := testenv.Run(t, "", dirs["a"], "irm", "layer", "show", "net")
			t.Fatalf("ping a -> d over the square from TOML:\n%s\nlayer net at a:\n%s", out, show)
		}
	}
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// freeUDPPort returns a UDP port free on ip just now.
func freeUDPPort(t *testing.T, ip string) int {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatalf("UDP on %s: %v", ip, err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}
