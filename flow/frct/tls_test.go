package frct

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"testing"
	"time"

	"github.com/ouro-net/ouro/lib/memlink"
)

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "frct.test"},
		DNSNames:     []string{"frct.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

func TestTLSOverFRCT(t *testing.T) {
	leakCheck(t)
	cert, pool := selfSigned(t)
	a, b, _, _ := newPair(t, fastCfg(), memlink.Config{Loss: 0.01, Reorder: 0.01, Seed: 9})
	client := tls.Client(a, &tls.Config{RootCAs: pool, ServerName: "frct.test", MinVersion: tls.VersionTLS13})
	server := tls.Server(b, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13})

	payload := make([]byte, 1<<20)
	rand.Read(payload)
	echoed := make(chan error, 1)
	go func() { // the server echoes 1 MiB back
		buf := make([]byte, len(payload))
		if _, err := io.ReadFull(server, buf); err != nil {
			echoed <- err
			return
		}
		_, err := server.Write(buf)
		echoed <- err
	}()
	if _, err := client.Write(payload); err != nil {
		t.Fatalf("TLS Write: %v", err)
	}
	got := make([]byte, len(payload))
	if _, err := io.ReadFull(client, got); err != nil {
		t.Fatalf("TLS Read: %v", err)
	}
	if err := <-echoed; err != nil {
		t.Fatalf("server: %v", err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatal("1 MiB did not survive the TLS round trip")
	}
	if err := client.Close(); err != nil {
		t.Fatalf("client Close: %v", err)
	}
	if _, err := server.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("server after close_notify: %v", err)
	}
	server.Close()
}
