package flow_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/internal/testenv"
	"github.com/ouro-net/ouro/lib/qos"
)

func reliablePair(t *testing.T) (*flow.Flow, *flow.Flow) {
	t.Helper()
	return pairWith(t, "rel", qos.Reliable())
}

// TestReliableStream writes messages larger than the channel MTU and a
// stream through io.Copy, and checks what arrives against a checksum.
func TestReliableStream(t *testing.T) {
	a, b := reliablePair(t)
	if a.Reliability() == nil || b.Reliability() == nil {
		t.Fatal("reliable QoS did not start FRCT at both ends")
	}
	big := make([]byte, 1<<20)
	rand.Read(big)
	if _, err := a.Write(big); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(big))
	if _, err := io.ReadFull(b, got); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("1 MiB message: %v", err)
	}
	src := make([]byte, 8<<20)
	rand.Read(src)
	want := sha256.Sum256(src)
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(a, bytes.NewReader(src))
		if err == nil {
			err = a.Close()
		}
		done <- err
	}()
	h := sha256.New()
	n, err := io.Copy(h, b)
	if err != nil || n != int64(len(src)) {
		t.Fatalf("copy: %d bytes, %v", n, err)
	}
	if !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatal("checksum mismatch")
	}
	if err := <-done; err != nil {
		t.Fatalf("sender: %v", err)
	}
}

// TestHTTPOverFlow serves and fetches a 10 MiB body with net/http over
// a reliable flow.
func TestHTTPOverFlow(t *testing.T) {
	h := testenv.StartHost(t)
	h.Bootstrap(t, "local", "lo", "lo", nil)
	h.Register(t, "web", "lo")
	l, err := flow.Listen("web", h.Opt())
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 10<<20)
	rand.Read(body)
	want := sha256.Sum256(body)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(body)
	})}
	go srv.Serve(l.NetListener())
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{
		DialContext: flow.Dialer{QoS: qos.Reliable(), Options: []flow.Option{h.Opt()}}.DialContext,
	}, Timeout: time.Minute}
	resp, err := client.Get("http://web/big")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	hash := sha256.New()
	n, err := io.Copy(hash, resp.Body)
	if err != nil || n != int64(len(body)) || !bytes.Equal(hash.Sum(nil), want[:]) {
		t.Fatalf("fetched %d bytes, err %v, checksum match %v", n, err, bytes.Equal(hash.Sum(nil), want[:]))
	}
}

// BenchmarkReliableVsRaw compares FRCT against raw flows with 1000-byte
// writes, over the local layer and over the udp4 shim between two IRMds
// on loopback. Raw flows may lose packets under a flood; the benchmark
// reports what share arrived.
func BenchmarkReliableVsRaw(b *testing.B) {
	for _, medium := range []string{"local", "udp4"} {
		for _, q := range []qos.Spec{qos.Raw(), qos.Reliable()} {
			b.Run(medium+"/"+q.Name, func(b *testing.B) {
				src, dst := benchHosts(b, medium)
				l, err := flow.Listen("sink", dst.Opt())
				if err != nil {
					b.Fatal(err)
				}
				defer l.Close()
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				a, err := flow.Alloc(ctx, "sink", q, src.Opt())
				if err != nil {
					b.Fatal(err)
				}
				s, err := l.Accept(ctx)
				if err != nil {
					b.Fatal(err)
				}
				got := make(chan int64, 1)
				go func() {
					buf := make([]byte, 65536)
					var n int64
					for {
						k, err := s.Read(buf)
						n += int64(k)
						if err != nil {
							got <- n
							return
						}
					}
				}()
				msg := make([]byte, 1000)
				b.SetBytes(int64(len(msg)))
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := a.Write(msg); err != nil {
						b.Fatal(err)
					}
				}
				a.Close()
				var n int64
				if q.Reliable {
					n = <-got
				} else {
					// A raw close may overtake data still in flight.
					time.Sleep(200 * time.Millisecond)
					s.Close()
					n = <-got
				}
				b.StopTimer()
				if q.Reliable && n != int64(b.N*len(msg)) {
					b.Fatalf("reliable flow delivered %d of %d bytes", n, b.N*len(msg))
				}
				b.ReportMetric(float64(n)/float64(b.N*len(msg))*100, "%delivered")
				s.Close()
			})
		}
	}
}

// benchHosts returns the sending and receiving host for a medium, with
// "sink" registered at the receiver.
func benchHosts(b *testing.B, medium string) (*testenv.Host, *testenv.Host) {
	h := testenv.StartHost(b)
	if medium == "local" {
		h.Bootstrap(b, "local", "lo", "lo", nil)
		h.Register(b, "sink", "lo")
		return h, h
	}
	g := testenv.StartHost(b)
	port := freeUDPPort(b)
	h.Bootstrap(b, "udp4", "ua", "udp", map[string]string{"ip": "127.0.0.1", "port": port, "peer": "127.0.0.2:" + port})
	g.Bootstrap(b, "udp4", "ub", "udp", map[string]string{"ip": "127.0.0.2", "port": port, "peer": "127.0.0.1:" + port})
	g.Register(b, "sink", "udp")
	return h, g
}

func freeUDPPort(b *testing.B) string {
	for p := 31000; p < 32000; p++ {
		c1, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p})
		if err != nil {
			continue
		}
		c2, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: p})
		c1.Close()
		if err != nil {
			continue
		}
		c2.Close()
		return strconv.Itoa(p)
	}
	b.Fatal("no free UDP port")
	return ""
}
