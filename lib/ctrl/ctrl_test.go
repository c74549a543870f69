package ctrl

import (
	"context"
	"errors"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

func pair(t *testing.T) (*Conn, *Conn) {
	t.Helper()
	a, bf, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	b, err := FileConn(bf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	body, _ := Marshal(IPCPCreate{Type: "local", Name: "lo"})
	b, err := Encode(&Msg{V: Version, Kind: KindRequest, ID: 7, Op: OpIPCPCreate, Body: body})
	if err != nil {
		t.Fatal(err)
	}
	m, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	var c IPCPCreate
	if err := Unmarshal(m.Body, &c); err != nil || c.Name != "lo" || m.ID != 7 {
		t.Fatalf("got %+v %+v %v", m, c, err)
	}
}

func TestDecodeRejects(t *testing.T) {
	wrongV, _ := msgpack.Marshal(&Msg{V: 9, Kind: KindRequest, ID: 1, Op: "x"})
	noOp, _ := msgpack.Marshal(&Msg{V: Version, Kind: KindRequest, ID: 1})
	badKind, _ := msgpack.Marshal(&Msg{V: Version, Kind: 5, ID: 1, Op: "x"})
	for name, tc := range map[string]struct {
		in   []byte
		want error
	}{
		"garbage":  {[]byte{0xc1, 0xff, 0x00}, ErrMalformed},
		"empty":    {nil, ErrMalformed},
		"version":  {wrongV, ErrVersion},
		"no op":    {noOp, ErrMalformed},
		"bad kind": {badKind, ErrMalformed},
		"too big":  {make([]byte, MaxMsgSize+1), ErrTooBig},
	} {
		if _, err := Decode(tc.in); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", name, err, tc.want)
		}
	}
}

// bodyTypes returns a fresh value of every message body type, for
// fuzzing the body decoder with each.
func bodyTypes() []any {
	return []any{&IPCPCreate{}, &IPCPBootstrap{}, &IPCPEnroll{}, &IPCPConnect{}, &IPCPRef{}, &IPCPInfo{},
		&IPCPList{}, &Bind{}, &NameCreate{}, &NameRegister{}, &NameInfo{}, &NameList{}, &LayerShow{},
		&LayerInfo{}, &FlowAlloc{}, &FlowInfo{}, &FlowListen{}, &FlowStat{}, &FlowList{}, &IPCPUp{},
		&IPCPQuery{}, &IPCPQueryReply{}, &IPCPAllocReply{}, &IPCPArrive{}, &IPCPFlowEnd{},
		&IPCPBootstrapReply{}, &NameResolve{}, &NameResolveReply{}}
}

// FuzzDecode feeds arbitrary records to the control decoder and every
// body through every body type: errors, never a panic or a hang.
func FuzzDecode(f *testing.F) {
	good, _ := Encode(&Msg{V: Version, Kind: KindRequest, ID: 1, Op: OpFlowAlloc})
	f.Add(good)
	f.Add([]byte{0x80})
	f.Add([]byte{0xde, 0xad, 0xbe, 0xef})
	seeds := map[string]any{
		OpIPCPBootstrap: IPCPBootstrap{Type: "udp4", Name: "x", Layer: "u", Params: map[string]string{"port": "53"}},
		OpBind:          Bind{Program: "/bin/sh", Name: "pwn", Auto: true, Args: []string{"-c", "id"}},
		OpNameRegister:  NameRegister{Name: "n", Layers: []string{"a", "b"}},
		OpFlowAlloc:     FlowAlloc{Name: "n", Layer: "l"},
		OpFlowListen:    FlowListen{Name: "n"},
		OpIPCPConnect:   IPCPConnect{Name: "a", Dst: "b", Cost: 1<<32 - 1},
	}
	for op, body := range seeds {
		b, _ := Marshal(body)
		m, _ := Encode(&Msg{V: Version, Kind: KindRequest, ID: 1<<64 - 1, Op: op, Body: b})
		f.Add(m)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err == nil && m == nil {
			t.Fatal("nil message without error")
		}
		if err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooBig) && !errors.Is(err, ErrVersion) {
			t.Fatalf("error of no known kind: %v", err)
		}
		if m == nil {
			return
		}
		for _, v := range bodyTypes() {
			if err := Unmarshal(m.Body, v); err != nil && !errors.Is(err, ErrMalformed) {
				t.Fatalf("body error of no known kind: %v", err)
			}
		}
		// Whatever decoded must encode again.
		if err == nil {
			if _, err := Encode(m); err != nil && !errors.Is(err, ErrTooBig) {
				t.Fatalf("re-encode: %v", err)
			}
		}
	})
}

func TestPeerCallsBothWaysWithFiles(t *testing.T) {
	a, b := pair(t)
	echo := func(_ context.Context, r *Request) (any, []*os.File, error) {
		var q IPCPQuery
		if err := r.Decode(&q); err != nil {
			return nil, nil, err
		}
		if q.Name == "fail" {
			return nil, nil, errors.New("asked to fail")
		}
		var files []*os.File
		if r.NumFiles() > 0 {
			files = append(files, r.TakeFile(0))
		}
		return IPCPQuery{Name: strings.ToUpper(q.Name)}, files, nil
	}
	pa := NewPeer(a, echo, nil)
	pb := NewPeer(b, echo, nil)
	defer func() { pa.Close(); pb.Close(); pa.Wait(); pb.Wait() }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var out IPCPQuery
	if _, err := pa.Call(ctx, "x", IPCPQuery{Name: "abc"}, &out); err != nil || out.Name != "ABC" {
		t.Fatalf("a->b: %v %q", err, out.Name)
	}
	r, w, _ := os.Pipe()
	defer r.Close()
	files, err := pb.Call(ctx, "x", IPCPQuery{Name: "f"}, &out, w)
	w.Close()
	if err != nil || len(files) != 1 {
		t.Fatalf("b->a with file: %v %d", err, len(files))
	}
	files[0].Write([]byte("!"))
	files[0].Close()
	buf := make([]byte, 1)
	if n, _ := r.Read(buf); n != 1 || buf[0] != '!' {
		t.Fatal("passed descriptor does not reach the pipe")
	}
	var re *RemoteError
	if _, err := pa.Call(ctx, "x", IPCPQuery{Name: "fail"}, nil); !errors.As(err, &re) || re.Msg != "asked to fail" {
		t.Fatalf("remote error: %v", err)
	}
}

// TestPeerSurvivesMalformed writes garbage and an oversized record and
// checks the peer answers errors and keeps serving.
func TestPeerSurvivesMalformed(t *testing.T) {
	a, b := pair(t)
	pb := NewPeer(b, func(_ context.Context, r *Request) (any, []*os.File, error) { return nil, nil, nil }, nil)
	defer func() { pb.Close(); pb.Wait() }()
	raw := a.uc
	if _, err := raw.Write([]byte{0xc1, 0x00, 0x13}); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Write(make([]byte, MaxMsgSize+100)); err != nil {
		t.Fatal(err)
	}
	badV, _ := msgpack.Marshal(&Msg{V: 42, Kind: KindRequest, ID: 9, Op: "x"})
	raw.Write(badV)
	// The wrong-version request carries an ID, so it gets an error reply.
	m, _, err := a.Recv()
	if err == nil && (m.ID != 9 || !strings.Contains(m.Err, "version")) {
		t.Fatalf("reply to bad version: %+v", m)
	}
	pa := NewPeer(a, nil, nil)
	defer func() { pa.Close(); pa.Wait() }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := pa.Call(ctx, "ping", nil, nil); err != nil {
		t.Fatalf("peer stopped serving after bad input: %v", err)
	}
	if pb.Malformed() < 2 {
		t.Fatalf("malformed count = %d, want >= 2", pb.Malformed())
	}
}

func TestCallFailsWhenPeerCloses(t *testing.T) {
	a, b := pair(t)
	block := make(chan struct{})
	pb := NewPeer(b, func(ctx context.Context, r *Request) (any, []*os.File, error) {
		<-block
		return nil, nil, nil
	}, nil)
	pa := NewPeer(a, nil, nil)
	go func() { time.Sleep(20 * time.Millisecond); pb.Close() }()
	_, err := pa.Call(context.Background(), "x", nil, nil)
	if !errors.Is(err, ErrPeerClosed) && !errors.Is(err, net.ErrClosed) {
		t.Fatalf("want closed error, got %v", err)
	}
	close(block)
	pa.Close()
	pa.Wait()
	pb.Wait()
}

// TestBigReplySplit sends replies over one record: they arrive whole,
// split and joined, with their descriptor; one over the caller's
// MaxReply, or over DefaultMaxReply at the sender, fails its call with
// an error saying so, never silence.
func TestBigReplySplit(t *testing.T) {
	a, b := pair(t)
	var size atomic.Int64
	pb := NewPeer(b, func(_ context.Context, r *Request) (any, []*os.File, error) {
		var files []*os.File
		if r.NumFiles() > 0 {
			files = append(files, r.TakeFile(0))
		}
		return IPCPQuery{Name: strings.Repeat("x", int(size.Load()))}, files, nil
	}, nil)
	pa := NewPeerLimited(a, nil, nil, Limits{MaxReply: 1 << 20})
	defer func() { pa.Close(); pb.Close(); pa.Wait(); pb.Wait() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, n := range []int{MaxBody - 20, 5*MaxBody + 7, 1<<20 - 100} {
		size.Store(int64(n))
		r, w, _ := os.Pipe()
		var out IPCPQuery
		files, err := pa.Call(ctx, "big", nil, &out, w)
		w.Close()
		r.Close()
		if err != nil || len(out.Name) != n || strings.Trim(out.Name, "x") != "" || len(files) != 1 {
			t.Fatalf("reply of %d bytes: err %v, got %d bytes, %d files", n, err, len(out.Name), len(files))
		}
		CloseFiles(files)
	}
	size.Store(2 << 20)
	_, err := pa.Call(ctx, "big", nil, nil)
	if err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("reply over the caller's MaxReply: got %v", err)
	}
	size.Store(DefaultMaxReply + 1)
	var re *RemoteError
	if _, err := pa.Call(ctx, "big", nil, nil); err == nil || !strings.Contains(err.Error(), "too big") {
		t.Fatalf("reply over DefaultMaxReply: got %v", err)
	}
	// An oversized op name cannot be echoed back either.
	size.Store(1000)
	_, err = pa.Call(ctx, strings.Repeat("o", MaxMsgSize-200), nil, nil)
	if !errors.As(err, &re) || !strings.Contains(re.Msg, "too big") {
		t.Fatalf("reply to an oversized op: got %v, want a remote error saying too big", err)
	}
	if _, err := pa.Call(ctx, "small", nil, nil); err != nil {
		t.Fatalf("after the big replies: %v", err)
	}
}

// TestInFlightCap holds MaxInFlight requests in the handler: one more
// waits (back-pressure) and is then refused with ErrBusy; once the
// handler lets go, requests are served again.
func TestInFlightCap(t *testing.T) {
	a, b := pair(t)
	release := make(chan struct{})
	entered := make(chan struct{}, 8)
	pb := NewPeerLimited(b, func(_ context.Context, r *Request) (any, []*os.File, error) {
		if r.Op == "block" {
			entered <- struct{}{}
			<-release
		}
		return nil, nil, nil
	}, nil, Limits{MaxInFlight: 2, Wait: 50 * time.Millisecond})
	pa := NewPeer(a, nil, nil)
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	defer func() { free(); pa.Close(); pb.Close(); pa.Wait(); pb.Wait() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errs := make(chan error, 2)
	for range 2 {
		go func() { _, err := pa.Call(ctx, "block", nil, nil); errs <- err }()
	}
	<-entered
	<-entered
	_, err := pa.Call(ctx, "x", nil, nil)
	if err == nil || !strings.Contains(err.Error(), ErrBusy.Error()) {
		t.Fatalf("request beyond the cap: got %v, want %v", err, ErrBusy)
	}
	if pb.Refused() != 1 {
		t.Fatalf("refused = %d, want 1", pb.Refused())
	}
	free()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pa.Call(ctx, "x", nil, nil); err != nil {
		t.Fatalf("after the cap cleared: %v", err)
	}
}

// TestNonReaderDisconnected floods requests without ever reading the
// replies: the serving end must disconnect it, holding at most
// MaxInFlight requests meanwhile.
func TestNonReaderDisconnected(t *testing.T) {
	a, b := pair(t)
	pb := NewPeerLimited(b, func(_ context.Context, r *Request) (any, []*os.File, error) {
		return IPCPQuery{Name: strings.Repeat("r", 1000)}, nil, nil
	}, nil, Limits{MaxInFlight: 4, Wait: 10 * time.Millisecond, SendTimeout: 200 * time.Millisecond})
	defer func() { pb.Close(); pb.Wait() }()
	req, _ := Encode(&Msg{V: Version, Kind: KindRequest, ID: 1, Op: "x"})
	deadline := time.Now().Add(20 * time.Second)
	for {
		a.uc.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
		_, err := a.uc.Write(req)
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			break // disconnected
		}
		if time.Now().After(deadline) {
			t.Fatal("a peer that never reads was not disconnected")
		}
	}
	select {
	case <-pb.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("serving peer did not stop")
	}
	if pb.Refused() == 0 {
		t.Fatal("the disconnect was not counted")
	}
}

// TestHugeDeclaredLengthsCostNothing sends records of a few bytes that
// declare strings, arrays and maps of 2^31 elements: they are refused
// as malformed before the decoder sizes anything by them (a map32 of
// 2^31 pairs in a 13-byte body made it allocate 84 MB).
func TestHugeDeclaredLengthsCostNothing(t *testing.T) {
	envelope := []byte("\x85\xc6\xdd\xd4\xda?\x86\x19")
	bodies := map[string]struct {
		b []byte
		v any
	}{
		"str32":   {[]byte{0x81, 0xa4, 'n', 'a', 'm', 'e', 0xdb, 0x7f, 0xff, 0xff, 0xff}, &IPCPQuery{}},
		"array32": {[]byte{0x81, 0xa6, 'l', 'a', 'y', 'e', 'r', 's', 0xdd, 0x7f, 0xff, 0xff, 0xff}, &NameRegister{}},
		"map32":   {[]byte{0x81, 0xa6, 'p', 'a', 'r', 'a', 'm', 's', 0xdf, 0x7f, 0xff, 0xff, 0xff}, &IPCPBootstrap{}},
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.TotalAlloc
	if _, err := Decode(envelope); !errors.Is(err, ErrMalformed) {
		t.Errorf("envelope: %v, want ErrMalformed", err)
	}
	for name, c := range bodies {
		if err := Unmarshal(c.b, c.v); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	runtime.ReadMemStats(&ms)
	if got := ms.TotalAlloc - before; got > 256<<10 {
		t.Fatalf("decoding 4 tiny hostile records allocated %d bytes", got)
	}
}
