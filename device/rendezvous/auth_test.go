package rendezvous

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// rankEnv is rank r of a job of world ranks whose rank 0 is at
// 127.0.0.1:port.
func rankEnv(r, world, port int) Env {
	e := rank0(world, port)
	e.Rank = r
	return e
}

// result is what one in-process rank got.
type result struct {
	s   *Session
	id  []byte
	err error
}

// goRank runs Exchange for env in a goroutine.
func goRank(env Env, timeout time.Duration, id []byte, log io.Writer) chan result {
	ch := make(chan result, 1)
	go func() {
		s, got, err := Exchange(context.Background(), Options{Env: env, Timeout: timeout, Heartbeat: 100 * time.Millisecond, Log: log}, id)
		ch <- result{s, got, err}
	}()
	return ch
}

func wait(t *testing.T, ch chan result, within time.Duration, what string) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(within):
		t.Fatalf("%s: no result within %s", what, within)
	}
	return result{}
}

// logBuf collects a Session's log lines and lets a test wait for one.
type logBuf struct {
	mu    sync.Mutex
	lines []string
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, strings.TrimSpace(string(p)))
	return len(p), nil
}

// waitFor waits for n lines containing sub.
func (l *logBuf) waitFor(t *testing.T, sub string, n int) {
	t.Helper()
	for t0 := time.Now(); time.Since(t0) < 10*time.Second; time.Sleep(10 * time.Millisecond) {
		if l.count(sub) >= n {
			return
		}
	}
	t.Fatalf("no %d log line(s) with %q; log:\n%s", n, sub, l.String())
}

func (l *logBuf) count(sub string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.lines {
		if strings.Contains(s, sub) {
			n++
		}
	}
	return n
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// rawHandshake plays a peer by hand up to the proof: it sends hello,
// reads the challenge and sends proof(hello, challenge).
func rawHandshake(t *testing.T, port int, hello []byte, proof func(hello, ns []byte) []byte) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := bufio.NewReader(c)
	if err := writeFrame(c, frameHello, hello); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	f, err := readFrame(r, maxHandshakeFrame)
	if err != nil || f.kind != frameChallenge || len(f.data) != nonceLen+32 {
		t.Fatalf("no challenge from rank 0: %q %v", f.kind, err)
	}
	if err := writeFrame(c, frameProof, proof(hello, f.data[:nonceLen])); err != nil {
		t.Fatal(err)
	}
	return c, r
}

// refused reads what rank 0 sends an unauthenticated connection until it
// closes it: a failure frame at most, never the id.
func refused(t *testing.T, c net.Conn, r *bufio.Reader) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var got []string
	for {
		f, err := readFrame(r, maxFrame)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("rank 0 kept an unauthenticated connection open; it sent %q", got)
			}
			return strings.Join(got, "; ")
		}
		if f.kind == frameID {
			t.Fatal("rank 0 sent the id to an unauthenticated connection")
		}
		got = append(got, fmt.Sprintf("%c %s", f.kind, f.data))
	}
}

// TestStrangersDropped: while a 3-rank job gathers, a process with the
// wrong secret claiming rank 2, one claiming the rank already taken, and
// one sending garbage are each dropped; none gets the id, and the real
// ranks complete with rank 0's id and a healthy group.
func TestStrangersDropped(t *testing.T) {
	port := freePort(t)
	id := randomID(t)
	log := &logBuf{}
	r0 := goRank(rank0(3, port), 20*time.Second, id, log)
	log.waitFor(t, "listening", 1)
	r1 := goRank(rankEnv(1, 3, port), 20*time.Second, nil, nil)
	log.waitFor(t, "rank 1 (host", 1)

	// A stranger running this very code with a guessed secret: rank 0's
	// proof does not check out, so it stops before proving anything.
	stranger := rankEnv(2, 3, port)
	stranger.Secret = "not-the-job-secret-at-all"
	if _, _, err := Exchange(context.Background(), Options{Env: stranger, Timeout: 5 * time.Second}, nil); err == nil || !strings.Contains(err.Error(), "did not prove it holds TRM_RDZV_SECRET") {
		t.Fatalf("stranger: %v", err)
	}
	// Strangers that ignore rank 0's proof and answer with MACs under
	// their own key, claiming a free rank and the taken one.
	wrong := authKey("not-the-job-secret-at-all")
	for _, claim := range []int{2, 1} {
		c, r := rawHandshake(t, port, hello(rankEnv(claim, 3, port), nonce()), func(h, ns []byte) []byte { return mac(wrong, "peer", h, ns) })
		if got := refused(t, c, r); !strings.Contains(got, "authentication failed") {
			t.Fatalf("stranger claiming rank %d was told %q", claim, got)
		}
	}
	// Garbage: a non-hello frame, and a header announcing 1 GB.
	for _, junk := range [][]byte{[]byte("GET / HTTP/1.1\r\n\r\n"), {frameHello, 0x40, 0, 0, 0}} {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			t.Fatal(err)
		}
		c.Write(junk)
		refused(t, c, bufio.NewReader(c))
		c.Close()
	}
	log.waitFor(t, "dropped a connection", 5)
	if n := log.count("failed authentication"); n != 2 {
		t.Fatalf("%d authentication failures logged, want 2:\n%s", n, log)
	}

	r2 := goRank(rankEnv(2, 3, port), 20*time.Second, nil, nil)
	res := []result{wait(t, r0, 15*time.Second, "rank 0"), wait(t, r1, 15*time.Second, "rank 1"), wait(t, r2, 15*time.Second, "rank 2")}
	for r, x := range res {
		if x.err != nil {
			t.Fatalf("rank %d: %v\nrank 0's log:\n%s", r, x.err, log)
		}
		if !bytes.Equal(x.id, id) {
			t.Fatalf("rank %d got a different id", r)
		}
	}
	time.Sleep(300 * time.Millisecond) // a few heartbeats
	for r, x := range res {
		if err := x.s.Err(); err != nil {
			t.Fatalf("rank %d reports %v", r, err)
		}
	}
	for _, x := range res {
		x.s.Close()
	}
	if n := log.count("arrived"); n != 2 {
		t.Fatalf("%d arrivals logged, want 2:\n%s", n, log)
	}
}

// tap is a TCP proxy that records both directions of one connection.
type tap struct {
	mu       sync.Mutex
	toServer bytes.Buffer
	toClient bytes.Buffer
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// listen forwards one connection from a fresh port to 127.0.0.1:target.
func (tp *tap) listen(t *testing.T, target int) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(target))
		if err != nil {
			c.Close()
			return
		}
		go func() { io.Copy(io.MultiWriter(s, lockedWriter{&tp.mu, &tp.toServer}), c); s.Close() }()
		go func() { io.Copy(io.MultiWriter(c, lockedWriter{&tp.mu, &tp.toClient}), s); c.Close() }()
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// frames splits a recorded stream.
func (tp *tap) frames(t *testing.T, toServer bool) []frame {
	tp.mu.Lock()
	b := tp.toClient.Bytes()
	if toServer {
		b = tp.toServer.Bytes()
	}
	r := bytes.NewReader(bytes.Clone(b))
	tp.mu.Unlock()
	var fs []frame
	for {
		f, err := readFrame(r, maxFrame)
		if err != nil {
			return fs
		}
		fs = append(fs, f)
	}
}

// TestReplay: a real rank's handshake, recorded on the wire, gets nowhere
// when replayed to rank 0 (its nonce is new), and rank 0's recorded
// answers replayed by a fake rank 0 are rejected by a real rank (its nonce
// is new). The id never appears in clear on the wire.
func TestReplay(t *testing.T) {
	port := freePort(t)
	id := randomID(t)
	log := &logBuf{}
	r0 := goRank(rank0(3, port), 20*time.Second, id, log)
	log.waitFor(t, "listening", 1)
	var tp tap
	via := rankEnv(1, 3, port)
	via.MasterPort = tp.listen(t, port)
	r1 := goRank(via, 20*time.Second, nil, nil)
	log.waitFor(t, "rank 1 (host", 1)

	// Replay rank 1's hello and proof on a new connection.
	up := tp.frames(t, true)
	if len(up) < 2 || up[0].kind != frameHello || up[1].kind != frameProof {
		t.Fatalf("recorded %d frames from rank 1", len(up))
	}
	c, r := rawHandshake(t, port, up[0].data, func(_, _ []byte) []byte { return up[1].data })
	if got := refused(t, c, r); !strings.Contains(got, "authentication failed") {
		t.Fatalf("replayed handshake was told %q", got)
	}

	r2 := goRank(rankEnv(2, 3, port), 20*time.Second, nil, nil)
	res := []result{wait(t, r0, 15*time.Second, "rank 0"), wait(t, r1, 15*time.Second, "rank 1"), wait(t, r2, 15*time.Second, "rank 2")}
	for r, x := range res {
		if x.err != nil || !bytes.Equal(x.id, id) {
			t.Fatalf("rank %d: %v (id equal: %v)", r, x.err, bytes.Equal(x.id, id))
		}
	}
	defer func() {
		for _, x := range res {
			x.s.Close()
		}
	}()
	// The tap records what it forwards just after forwarding it.
	var down []frame
	var sealed []byte
	for t0 := time.Now(); sealed == nil && time.Since(t0) < 5*time.Second; time.Sleep(10 * time.Millisecond) {
		down = tp.frames(t, false)
		for _, f := range down {
			if f.kind == frameID {
				sealed = f.data
			}
		}
	}
	if sealed == nil || down[0].kind != frameChallenge {
		t.Fatalf("recorded %d frames from rank 0, no id frame among them", len(down))
	}
	if bytes.Contains(sealed, id[:16]) {
		t.Fatal("the id crossed the wire in clear")
	}

	// A fake rank 0 that replays the recorded challenge and id.
	fake, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	go func() {
		c, err := fake.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		readFrame(br, maxFrame)
		writeFrame(c, frameChallenge, down[0].data)
		readFrame(br, maxFrame)
		writeFrame(c, frameID, sealed)
		io.Copy(io.Discard, br)
	}()
	victim := rankEnv(1, 3, fake.Addr().(*net.TCPAddr).Port)
	_, got, err := Exchange(context.Background(), Options{Env: victim, Timeout: 5 * time.Second}, nil)
	if err == nil || !strings.Contains(err.Error(), "did not prove it holds TRM_RDZV_SECRET") || got != nil {
		t.Fatalf("rank facing a replaying rank 0: id %x, %v", got, err)
	}
}

// TestHalfOpen: connections that send half a frame header, or a hello and
// then nothing, neither hold up the exchange nor delay Close, although
// the exchange timeout is 30 s; rank 0 closes them once the job is
// complete.
func TestHalfOpen(t *testing.T) {
	port := freePort(t)
	log := &logBuf{}
	t0 := time.Now()
	r0 := goRank(rank0(2, port), 30*time.Second, randomID(t), log)
	log.waitFor(t, "listening", 1)
	var idle []net.Conn
	for _, b := range [][]byte{{frameHello, 0, 0}, nil} {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if b == nil {
			writeFrame(c, frameHello, hello(rankEnv(1, 2, port), nonce()))
		} else {
			c.Write(b)
		}
		idle = append(idle, c)
	}
	time.Sleep(100 * time.Millisecond)
	r1 := goRank(rankEnv(1, 2, port), 30*time.Second, nil, nil)
	a, b := wait(t, r0, 5*time.Second, "rank 0"), wait(t, r1, 5*time.Second, "rank 1")
	if a.err != nil || b.err != nil {
		t.Fatalf("exchange: %v / %v", a.err, b.err)
	}
	for i, c := range idle {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		// EOF, or a reset when rank 0 closed it with bytes unread.
		var ne net.Error
		if _, err := io.Copy(io.Discard, c); errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("half-open connection %d not closed by rank 0 after the exchange: %v", i, err)
		}
	}
	done := make(chan struct{})
	go func() { a.s.Close(); b.s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("Close held up by half-open connections")
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Fatalf("exchange and close took %s", d)
	}
}

// TestSecretRequired: without TRM_RDZV_SECRET (or with a short one) every
// rank refuses to start, before rank 0 opens its port; TRM_RDZV_INSECURE=1
// runs without one, and a rank with a secret does not join a rank 0
// without (or with another) one.
func TestSecretRequired(t *testing.T) {
	port := freePort(t)
	for _, c := range []struct {
		secret Secret
		want   string
	}{{"", "TRM_RDZV_SECRET is not set"}, {"job-1234", "TRM_RDZV_SECRET has 8 characters"}} {
		for r := range 2 {
			e := rankEnv(r, 2, port)
			e.Secret = c.secret
			_, _, err := Exchange(context.Background(), Options{Env: e, Timeout: 2 * time.Second}, randomID(t))
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "TRM_RDZV_INSECURE=1") && c.secret == "" {
				t.Fatalf("rank %d, secret %q: %v", r, c.secret, err)
			}
		}
	}
	if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
		c.Close()
		t.Fatal("a refused rank 0 listened")
	}
	// Insecure on both sides works.
	a, b := rank0(2, port), rankEnv(1, 2, port)
	a.Secret, b.Secret, a.Insecure, b.Insecure = "", "", true, true
	id := randomID(t)
	r0, r1 := goRank(a, 10*time.Second, id, nil), goRank(b, 10*time.Second, nil, nil)
	x, y := wait(t, r0, 10*time.Second, "rank 0"), wait(t, r1, 10*time.Second, "rank 1")
	if x.err != nil || y.err != nil || !bytes.Equal(y.id, id) {
		t.Fatalf("insecure: %v / %v", x.err, y.err)
	}
	x.s.Close()
	y.s.Close()
	// An insecure rank 0 and a rank holding a secret do not mix.
	port = freePort(t)
	a.MasterPort, b.MasterPort, b.Secret = port, port, testSecret
	r0 = goRank(a, 1500*time.Millisecond, id, nil)
	if _, _, err := Exchange(context.Background(), Options{Env: b, Timeout: 5 * time.Second}, nil); err == nil || !strings.Contains(err.Error(), "different secrets") {
		t.Fatalf("secret against insecure rank 0: %v", err)
	}
	if x := wait(t, r0, 10*time.Second, "rank 0"); x.err == nil || !strings.Contains(x.err.Error(), "rank(s) 1 of 2 did not arrive") {
		t.Fatalf("insecure rank 0: %v", x.err)
	}
}

// TestSecretNotPrinted: no fmt verb prints an Env's secret.
func TestSecretNotPrinted(t *testing.T) {
	e := rank0(2, 1)
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		if s := fmt.Sprintf(f, e); strings.Contains(s, testSecret) || strings.Contains(s, fmt.Sprintf("%x", testSecret)) {
			t.Errorf("%s prints the secret: %s", f, s)
		}
	}
	if s := e.String(); strings.Contains(s, testSecret) {
		t.Errorf("String prints the secret: %s", s)
	}
}

// TestListenAddress: rank 0 listens on MASTER_ADDR only, not on every
// interface: with MASTER_ADDR=127.0.0.2 a connection to 127.0.0.1 on the
// same port is refused. Names resolve to their addresses, TRM_RDZV_BIND
// overrides, and an address of another host is an error naming the fix.
func TestListenAddress(t *testing.T) {
	port := freePort(t)
	if ln, err := net.Listen("tcp", "127.0.0.2:"+strconv.Itoa(port)); err != nil {
		t.Skipf("this host cannot bind 127.0.0.2 (a loopback /8 is needed): %v", err)
	} else {
		ln.Close()
	}
	log := &logBuf{}
	e := rank0(2, port)
	e.MasterAddr = "127.0.0.2"
	r0 := goRank(e, 10*time.Second, randomID(t), log)
	log.waitFor(t, "listening on 127.0.0.2:"+strconv.Itoa(port), 1)
	if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
		c.Close()
		t.Fatal("rank 0 accepts connections on 127.0.0.1 though MASTER_ADDR is 127.0.0.2")
	}
	peer := rankEnv(1, 2, port)
	peer.MasterAddr = "127.0.0.2"
	r1 := goRank(peer, 10*time.Second, nil, nil)
	x, y := wait(t, r0, 10*time.Second, "rank 0"), wait(t, r1, 10*time.Second, "rank 1")
	if x.err != nil || y.err != nil {
		t.Fatalf("exchange on 127.0.0.2: %v / %v", x.err, y.err)
	}
	x.s.Close()
	y.s.Close()

	ctx := context.Background()
	for _, c := range []struct {
		addr, bind string
		want       string
	}{
		{"127.0.0.1", "", "127.0.0.1:7"},
		{"::1", "", "[::1]:7"},
		{"[::1]", "", "[::1]:7"},
		{"localhost", "", "127.0.0.1:7"},
		{"node0.example", "0.0.0.0", "0.0.0.0:7"},
	} {
		got, err := listenAddrs(ctx, Env{MasterAddr: c.addr, MasterPort: 7, Bind: c.bind})
		if err != nil || !strings.Contains(strings.Join(got, " "), c.want) {
			t.Errorf("MASTER_ADDR %q, bind %q: %v %v, want %s among them", c.addr, c.bind, got, err, c.want)
		}
		if c.bind == "" && strings.Contains(strings.Join(got, " "), "0.0.0.0") {
			t.Errorf("MASTER_ADDR %q listens on every interface: %v", c.addr, got)
		}
	}
	// 192.0.2.1 (TEST-NET-1) is no address of this host.
	e.MasterAddr = "192.0.2.1"
	_, _, err := Exchange(ctx, Options{Env: e, Timeout: time.Second}, randomID(t))
	if err == nil || !strings.Contains(err.Error(), "not an address of this host") || !strings.Contains(err.Error(), "TRM_RDZV_BIND") {
		t.Fatalf("foreign MASTER_ADDR: %v", err)
	}
}

// TestHandshakeDeadline: while the job gathers, a connection that does
// not finish its handshake in time is dropped, and a flood of silent
// connections (more than rank 0 handles at once) delays a real rank by
// one handshake deadline at most, then it joins.
func TestHandshakeDeadline(t *testing.T) {
	defer func(d time.Duration) { handshakeTimeout = d }(handshakeTimeout)
	handshakeTimeout = 300 * time.Millisecond
	port := freePort(t)
	log := &logBuf{}
	r0 := goRank(rank0(2, port), 20*time.Second, randomID(t), log)
	log.waitFor(t, "listening", 1)
	var flood []net.Conn
	for range maxPending + 8 {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte{frameHello})
		flood = append(flood, c)
	}
	// Rank 1 arrives while every handshake slot is taken: it is turned
	// away and retries until the silent connections have been dropped.
	t0 := time.Now()
	r1 := goRank(rankEnv(1, 2, port), 20*time.Second, nil, nil)
	a, b := wait(t, r0, 10*time.Second, "rank 0"), wait(t, r1, 10*time.Second, "rank 1")
	if n := log.count("handshake not completed within 300ms"); n < maxPending {
		t.Fatalf("%d silent connections dropped at their deadline, want %d:\n%s", n, maxPending, log)
	}
	if a.err != nil || b.err != nil {
		t.Fatalf("exchange after the flood: %v / %v", a.err, b.err)
	}
	if d := time.Since(t0); d > 3*time.Second {
		t.Fatalf("rank 1 joined %s after the flood", d)
	}
	a.s.Close()
	b.s.Close()
}
