package rendezvous

import (
	"bufio"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Wire format: frames of one type byte, a big-endian uint32 length and the
// payload.
//
// The handshake proves that both ends hold the job's secret without
// sending it: K = HMAC-SHA256(secret, magic+" key").
//
//	peer   -> rank 0  H  hello: magic, rank, world size, host, pid, peer nonce
//	rank 0 -> peer    C  rank 0's nonce Ns, HMAC(K, "rank0" | hello | Ns)
//	peer   -> rank 0  A  HMAC(K, "peer" | hello | Ns)
//	rank 0 -> peer    I  the id, sealed with AES-256-GCM under
//	                     HMAC(K, "id" | hello | Ns), once every rank arrived
//
// Both nonces are fresh random 32-byte values, so a recorded transcript
// replayed to rank 0 fails (Ns differs) and a process posing as rank 0
// cannot answer a peer's new nonce; the id travels encrypted under a key
// only the two ends can derive. Connections that do not complete this
// within handshakeTimeout are dropped and never count as a rank.
//
// After the exchange both sides send heartbeats; a failure frame from rank
// 0 tells every survivor which rank was lost; bye ends a connection
// cleanly. These frames carry no secrets; forging them needs a position on
// the path of an established connection.
const (
	frameHello     = 'H'
	frameChallenge = 'C'
	frameProof     = 'A'
	frameID        = 'I'
	frameHeartbeat = 'P'
	frameFail      = 'F'
	frameBye       = 'B'
	magic          = "trm-rendezvous-2"
	maxFrame       = 1 << 20
	// maxHandshakeFrame bounds what an unauthenticated connection can
	// make rank 0 read.
	maxHandshakeFrame = 1024
	nonceLen          = 32
	// maxPending bounds the handshakes in progress at rank 0; beyond it
	// new connections are closed at once (a real rank retries).
	maxPending = 64
)

// handshakeTimeout bounds one connection's handshake, so a peer that
// connects and goes quiet is dropped without holding anything up (a
// variable so that tests can shorten it).
var handshakeTimeout = 10 * time.Second

// Options configure Exchange.
type Options struct {
	// Env is this rank's place in the job, with the secret (FromEnv
	// reads both from the launcher's variables).
	Env Env
	// Timeout bounds the exchange: rank 0 waits this long for every rank
	// to arrive, the others this long to reach rank 0 and get the id.
	// 0: 5 minutes (nodes of one job may start minutes apart).
	Timeout time.Duration
	// Heartbeat is the interval of liveness messages after the exchange; a
	// connection silent for 5 intervals counts as a lost rank (a process
	// that is killed closes its sockets at once, which is noticed sooner).
	// 0: 2 seconds.
	Heartbeat time.Duration
	// Log, if set, gets one line per arriving rank, per refused
	// connection and per failure.
	Log io.Writer
}

// ErrRankLost is wrapped by the errors a Session reports when a rank
// disconnects or goes silent.
var ErrRankLost = errors.New("rank lost")

type frame struct {
	kind byte
	data []byte
}

func writeFrame(w io.Writer, kind byte, data []byte) error {
	var h [5]byte
	h[0] = kind
	binary.BigEndian.PutUint32(h[1:], uint32(len(data)))
	_, err := w.Write(append(h[:], data...))
	return err
}

// readFrame reads one frame of at most limit payload bytes.
func readFrame(r io.Reader, limit int) (frame, error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return frame{}, err
	}
	n := binary.BigEndian.Uint32(h[1:])
	if n > uint32(limit) {
		return frame{}, fmt.Errorf("frame of %d bytes: not a trm rendezvous peer", n)
	}
	f := frame{kind: h[0], data: make([]byte, n)}
	_, err := io.ReadFull(r, f.data)
	return f, err
}

// authKey is K, the handshake's key, from the secret.
func authKey(secret Secret) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	io.WriteString(m, magic+" key")
	return m.Sum(nil)
}

// mac is HMAC-SHA256 under key of a label and length-prefixed parts (so
// no two different transcripts hash alike).
func mac(key []byte, label string, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, key)
	io.WriteString(m, label)
	for _, p := range parts {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(p)))
		m.Write(n[:])
		m.Write(p)
	}
	return m.Sum(nil)
}

// sealer is the AEAD of one connection's id frame. Its key is used for one
// message only, so the nonce can be fixed.
func sealer(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

func nonce() []byte {
	n := make([]byte, nonceLen)
	if _, err := rand.Read(n); err != nil {
		panic("rendezvous: no randomness: " + err.Error()) // crypto/rand does not fail on supported systems
	}
	return n
}

// peerConn is one TCP connection with serialised writes.
type peerConn struct {
	c    net.Conn
	r    *bufio.Reader
	mu   sync.Mutex
	rank int
	desc string      // "rank 3 (host node2, pid 77)"
	key  []byte      // the id frame's key, from the handshake
	bye  atomic.Bool // the other side ended the connection cleanly
	// member: this connection is one of the job's ranks (rank 0 also
	// holds authenticated connections that came too late or twice).
	member atomic.Bool
}

func (p *peerConn) send(kind byte, data []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = p.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return writeFrame(p.c, kind, data)
}

// Session is a finished exchange that keeps watching the group until
// Close: rank 0 holds a connection to every other rank, the others one to
// rank 0.
type Session struct {
	env   Env
	opt   Options
	key   []byte      // K
	peers []*peerConn // rank 0: ranks 1..n-1; others: rank 0 only
	lns   []net.Listener

	mu      sync.Mutex
	conns   map[net.Conn]bool // rank 0: every accepted connection, true once it is a member
	err     error
	onFail  []func(error)
	done    chan struct{}
	closing bool
	wg      sync.WaitGroup
	// ready is set once the exchange succeeded: before, losses are the
	// exchange's own errors (reported by serve or fetch), not the
	// watchdog's.
	ready atomic.Bool
}

// Env is the layout this session was started with.
func (s *Session) Env() Env { return s.env }

// Err returns the first failure seen (a lost rank), or nil.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Done is closed when the session fails or is closed.
func (s *Session) Done() <-chan struct{} { return s.done }

// OnFailure registers f to be called once with the failure (at once if it
// already happened): typically the communicator's Abort, so a collective
// waiting for a dead rank returns.
func (s *Session) OnFailure(f func(error)) {
	s.mu.Lock()
	err := s.err
	if err == nil {
		s.onFail = append(s.onFail, f)
	}
	s.mu.Unlock()
	if err != nil {
		f(err)
	}
}

// fail records the first failure and runs the callbacks (outside the lock).
func (s *Session) fail(err error) {
	s.mu.Lock()
	if s.err != nil || s.closing {
		s.mu.Unlock()
		return
	}
	s.err = err
	fs := s.onFail
	s.onFail = nil
	close(s.done)
	s.mu.Unlock()
	s.logf("rendezvous: %v", err)
	if s.env.Rank == 0 {
		// Tell every survivor why, so their error names the lost rank
		// rather than saying "rank 0 went away".
		for _, p := range s.peers {
			_ = p.send(frameFail, []byte(err.Error()))
		}
	}
	for _, f := range fs {
		f(err)
	}
}

func (s *Session) logf(format string, args ...any) {
	if s.opt.Log != nil {
		fmt.Fprintf(s.opt.Log, format+"\n", args...)
	}
}

// closeListeners stops accepting connections.
func (s *Session) closeListeners() {
	for _, ln := range s.lns {
		ln.Close()
	}
	s.lns = nil
}

// closeConns closes rank 0's accepted connections: all of them, or only
// those that are not ranks of the job (handshakes still in progress,
// late or duplicate arrivals), whose goroutines then end at once.
func (s *Session) closeConns(all bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c, member := range s.conns {
		if all || !member {
			c.Close()
		}
	}
}

// Close ends the session cleanly: peers are told (so they do not take the
// closed connection for a crash) and the watchers stop.
func (s *Session) Close() error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil
	}
	s.closing = true
	failed := s.err != nil
	if !failed {
		close(s.done)
	}
	s.mu.Unlock()
	for _, p := range s.peers {
		if !failed {
			_ = p.send(frameBye, nil)
		}
		p.c.Close()
	}
	s.closeListeners()
	s.closeConns(true)
	s.wg.Wait()
	return nil
}

// Exchange runs the rendezvous. Rank 0 passes the id to distribute (for
// NCCL, its unique id) and gets it back; every other rank passes nil and
// receives it. It returns when every rank has the id, or with an error
// naming the ranks that did not arrive or that were lost on the way.
//
// Every connection must prove it holds opt.Env.Secret (see the wire format
// above); one that does not, or that sends anything malformed, is dropped
// and logged without affecting the job. A job without a secret is refused
// unless opt.Env.Insecure (see Env.CheckAuth).
func Exchange(ctx context.Context, opt Options, id []byte) (*Session, []byte, error) {
	if err := opt.Env.CheckAuth(); err != nil {
		return nil, nil, err
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 5 * time.Minute
	}
	if opt.Heartbeat <= 0 {
		opt.Heartbeat = 2 * time.Second
	}
	s := &Session{env: opt.Env, opt: opt, key: authKey(opt.Env.Secret), done: make(chan struct{}), conns: map[net.Conn]bool{}}
	var err error
	if opt.Env.Rank == 0 {
		if len(id) == 0 || len(id) > maxFrame-64 {
			return nil, nil, fmt.Errorf("rendezvous: rank 0 needs an id of 1..%d bytes to distribute", maxFrame-64)
		}
		err = s.serve(ctx, id)
	} else {
		id, err = s.fetch(ctx)
	}
	if err != nil {
		s.mu.Lock()
		s.closing = true
		close(s.done)
		s.mu.Unlock()
		for _, p := range s.peers {
			p.c.Close()
		}
		s.closeListeners()
		s.closeConns(true)
		s.wg.Wait()
		return nil, nil, err
	}
	return s, id, nil
}

func hello(e Env, n []byte) []byte {
	host, _ := os.Hostname()
	if host == "" || strings.ContainsAny(host, " \t\n") {
		host = "unknown"
	}
	return fmt.Appendf(nil, "%s %d %d %s %d %s", magic, e.Rank, e.WorldSize, host, os.Getpid(), hex.EncodeToString(n))
}

// helloMsg is a parsed hello. Everything in it is the peer's claim until
// the handshake completes.
type helloMsg struct {
	rank, world, pid int
	host             string
}

func parseHello(b []byte) (helloMsg, error) {
	var h helloMsg
	f := strings.Fields(string(b))
	if len(f) != 6 || f[0] != magic {
		if len(f) > 0 && strings.HasPrefix(f[0], "trm-rendezvous-") {
			return h, fmt.Errorf("speaks %s, this build %s (ranks of different trm-train versions?)", f[0], magic)
		}
		return h, fmt.Errorf("not a trm rendezvous hello")
	}
	var err1, err2, err3, err4 error
	h.rank, err1 = strconv.Atoi(f[1])
	h.world, err2 = strconv.Atoi(f[2])
	h.host = f[3]
	h.pid, err3 = strconv.Atoi(f[4])
	n, err4 := hex.DecodeString(f[5])
	if err := errors.Join(err1, err2, err3, err4); err != nil || len(n) != nonceLen {
		return h, fmt.Errorf("malformed hello")
	}
	return h, nil
}

// listenAddrs are where rank 0 listens: TRM_RDZV_BIND when set, else
// MASTER_ADDR itself, or each address it resolves to. Not every
// interface: the other ranks reach rank 0 through MASTER_ADDR, so no
// other interface needs to accept connections.
func listenAddrs(ctx context.Context, e Env) ([]string, error) {
	if e.Bind != "" {
		return []string{joinHostPort(e.Bind, e.MasterPort)}, nil
	}
	host := strings.TrimSuffix(strings.TrimPrefix(e.MasterAddr, "["), "]")
	if net.ParseIP(host) != nil {
		return []string{joinHostPort(host, e.MasterPort)}, nil
	}
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("rendezvous: rank 0 cannot resolve MASTER_ADDR %q: %w", e.MasterAddr, err)
	}
	var out []string
	for _, ip := range ips {
		a := joinHostPort(ip.String(), e.MasterPort)
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out, nil
}

// listen binds every address of listenAddrs that belongs to this host (a
// name may resolve to addresses of several hosts, or of both IP
// families where only one is configured).
func (s *Session) listen(ctx context.Context) error {
	e := s.env
	addrs, err := listenAddrs(ctx, e)
	if err != nil {
		return err
	}
	var skipped []string
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			if errors.Is(err, syscall.EADDRNOTAVAIL) {
				skipped = append(skipped, a)
				continue
			}
			s.closeListeners()
			return fmt.Errorf("rendezvous: rank 0 cannot listen on %s (MASTER_PORT in use by another job?): %w", a, err)
		}
		s.lns = append(s.lns, ln)
	}
	if len(s.lns) == 0 {
		return fmt.Errorf("rendezvous: rank 0 cannot listen on MASTER_ADDR %s (%s): not an address of this host; run rank 0 on that host, or set TRM_RDZV_BIND to the local address the others' connections arrive at", e.MasterAddr, strings.Join(skipped, ", "))
	}
	var bound []string
	loopback := true
	for _, ln := range s.lns {
		bound = append(bound, ln.Addr().String())
		if ta, ok := ln.Addr().(*net.TCPAddr); !ok || !ta.IP.IsLoopback() {
			loopback = false
		}
	}
	s.logf("rendezvous: rank 0 listening on %s", strings.Join(bound, ", "))
	if loopback && e.WorldSize > e.LocalWorldSize {
		s.logf("rendezvous: warning: MASTER_ADDR %s is a loopback address of rank 0's host, but WORLD_SIZE %d > LOCAL_WORLD_SIZE %d: ranks on other nodes cannot reach it", e.MasterAddr, e.WorldSize, e.LocalWorldSize)
	}
	return nil
}

// event is what a connection's reader reports to rank 0's loop.
type event struct {
	p   *peerConn
	f   frame
	err error // the connection ended (EOF, reset, silence)
}

// serve is rank 0's side: accept every rank, then send the id. Each
// connection has one reader goroutine for its whole life (bufio.Reader is
// not safe for two): it runs the handshake under its own deadline, so a
// slow or silent connection never holds up another, then reports hellos,
// byes and losses as events; after the exchange the same events drive the
// watchdog.
func (s *Session) serve(ctx context.Context, id []byte) error {
	e := s.env
	if err := s.listen(ctx); err != nil {
		return err
	}
	deadline := time.Now().Add(s.opt.Timeout)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	events := make(chan event, 4*e.WorldSize)
	for _, ln := range s.lns {
		go s.accept(ln, deadline, events)
	}
	byRank := map[int]*peerConn{}
	failAll := func(err error) error {
		for _, p := range byRank {
			_ = p.send(frameFail, []byte(err.Error()))
			p.c.Close()
		}
		return err
	}
	for len(byRank) < e.WorldSize-1 {
		select {
		case <-ctx.Done():
			var missing []string
			for r := 1; r < e.WorldSize; r++ {
				if byRank[r] == nil {
					missing = append(missing, strconv.Itoa(r))
				}
			}
			why := "did not arrive within " + s.opt.Timeout.String()
			if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				why = "had not arrived when the rendezvous was cancelled"
			}
			return failAll(fmt.Errorf("rendezvous at %s: rank(s) %s of %d %s (%d of %d arrived)",
				e.Addr(), strings.Join(missing, ", "), e.WorldSize, why, len(byRank)+1, e.WorldSize))
		case ev := <-events:
			switch {
			case ev.err != nil || ev.f.kind == frameBye:
				if byRank[ev.p.rank] == ev.p {
					why := "said bye"
					if ev.err != nil {
						why = ev.err.Error()
					}
					return failAll(fmt.Errorf("rendezvous at %s: %w: %s disconnected during the exchange (%s)", e.Addr(), ErrRankLost, ev.p.desc, why))
				}
			case ev.f.kind == frameHello:
				// Only authenticated peers get here: two of them with
				// one rank is a launch error, which ends the job.
				if old := byRank[ev.p.rank]; old != nil {
					err := fmt.Errorf("rank %d is already taken by %s (two processes with RANK=%d?)", ev.p.rank, old.desc, ev.p.rank)
					_ = ev.p.send(frameFail, []byte(err.Error()))
					ev.p.c.Close()
					return failAll(fmt.Errorf("rendezvous at %s: %s: %w", e.Addr(), ev.p.desc, err))
				}
				byRank[ev.p.rank] = ev.p
				ev.p.member.Store(true)
				s.mu.Lock()
				s.conns[ev.p.c] = true
				s.mu.Unlock()
				s.logf("rendezvous: %s arrived (%d of %d)", ev.p.desc, len(byRank)+1, e.WorldSize)
			}
		}
	}
	// Stop accepting, and drop every connection that is not a rank (a
	// handshake in progress, a late or duplicate process): none of them
	// may hold up the job or be left waiting for an id.
	s.closeListeners()
	s.closeConns(false)
	ranks := make([]int, 0, len(byRank))
	for r := range byRank {
		ranks = append(ranks, r)
	}
	slices.Sort(ranks)
	for _, r := range ranks {
		s.peers = append(s.peers, byRank[r])
	}
	for _, p := range s.peers {
		aead, err := sealer(p.key)
		if err != nil {
			return failAll(fmt.Errorf("rendezvous: sealing the id for %s: %w", p.desc, err))
		}
		sealed := aead.Seal(nil, make([]byte, aead.NonceSize()), id, nil)
		if err := p.send(frameID, sealed); err != nil {
			return failAll(fmt.Errorf("rendezvous: sending the id to %s: %w", p.desc, err))
		}
	}
	s.ready.Store(true)
	s.wg.Add(1)
	go s.dispatch(events)
	return nil
}

// accept takes connections on one listener until it is closed, each
// handled by its own goroutine.
func (s *Session) accept(ln net.Listener, deadline time.Time, events chan<- event) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return // listener closed
		}
		s.mu.Lock()
		pending := 0
		for _, member := range s.conns {
			if !member {
				pending++
			}
		}
		if s.closing || pending >= maxPending {
			s.mu.Unlock()
			c.Close()
			continue
		}
		s.conns[c] = false
		s.wg.Add(1)
		s.mu.Unlock()
		go s.readLoop(c, deadline, events)
	}
}

// forget removes a connection rank 0 is done with.
func (s *Session) forget(c net.Conn) {
	c.Close()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// readLoop owns one accepted connection on rank 0: the handshake, then
// every frame until the connection ends; heartbeats to the peer start
// with it.
func (s *Session) readLoop(c net.Conn, deadline time.Time, events chan<- event) {
	defer s.wg.Done()
	p, err := s.greet(c, deadline)
	if err != nil {
		s.forget(c)
		if !s.ready.Load() && !s.isClosing() {
			s.logf("rendezvous: dropped a connection from %s: %v", c.RemoteAddr(), err)
		}
		return
	}
	if s.ready.Load() {
		_ = p.send(frameFail, []byte("the job already has all its ranks (a duplicate or late process)"))
		s.forget(c)
		return
	}
	post := func(ev event) bool {
		select {
		case events <- ev:
			return true
		case <-s.done:
			return false
		}
	}
	if !post(event{p: p, f: frame{kind: frameHello}}) {
		s.forget(c)
		return
	}
	s.wg.Add(1)
	go s.heartbeat(p)
	for {
		_ = c.SetReadDeadline(time.Now().Add(5 * s.opt.Heartbeat))
		f, err := readFrame(p.r, maxFrame)
		if err != nil {
			post(event{p: p, err: s.describe(err)})
			return
		}
		if f.kind == frameHeartbeat {
			continue
		}
		if f.kind == frameBye {
			p.bye.Store(true)
		}
		if !post(event{p: p, f: f}) || f.kind == frameBye {
			return
		}
	}
}

func (s *Session) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// describe turns a read deadline into what it means here.
func (s *Session) describe(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("silent for %s", 5*s.opt.Heartbeat)
	}
	return err
}

// dispatch is rank 0's watchdog after the exchange: a rank's connection
// that ends without bye is a lost rank.
func (s *Session) dispatch(events <-chan event) {
	defer s.wg.Done()
	for {
		select {
		case <-s.done:
			return
		case ev := <-events:
			if ev.err != nil && ev.p.member.Load() {
				s.lost(ev.p, ev.err)
			}
		}
	}
}

// greet runs rank 0's side of the handshake on a new connection: the
// hello, the challenge, the proof, then the layout checks. Nothing the
// peer says is trusted before its proof checks out.
func (s *Session) greet(c net.Conn, deadline time.Time) (*peerConn, error) {
	d := time.Now().Add(handshakeTimeout)
	if deadline.Before(d) {
		d = deadline
	}
	_ = c.SetDeadline(d)
	p := &peerConn{c: c, r: bufio.NewReader(c)}
	f, err := readFrame(p.r, maxHandshakeFrame)
	if err != nil {
		return nil, fmt.Errorf("no hello: %w", s.describeHandshake(err))
	}
	if f.kind != frameHello {
		return nil, fmt.Errorf("expected a hello, got frame %q", f.kind)
	}
	h, err := parseHello(f.data)
	if err != nil {
		return nil, err
	}
	claim := fmt.Sprintf("a process claiming rank %d (host %s, pid %d)", h.rank, h.host, h.pid)
	ns := nonce()
	if err := writeFrame(c, frameChallenge, append(slices.Clip(ns), mac(s.key, "rank0", f.data, ns)...)); err != nil {
		return nil, fmt.Errorf("%s: %w", claim, err)
	}
	proof, err := readFrame(p.r, maxHandshakeFrame)
	if err != nil {
		return nil, fmt.Errorf("%s sent no proof: %w", claim, s.describeHandshake(err))
	}
	if proof.kind != frameProof || !hmac.Equal(proof.data, mac(s.key, "peer", f.data, ns)) {
		_ = writeFrame(c, frameFail, []byte("authentication failed: this process does not hold rank 0's TRM_RDZV_SECRET"))
		return nil, fmt.Errorf("%s failed authentication (a different TRM_RDZV_SECRET, or not a rank of this job)", claim)
	}
	p.key = mac(s.key, "id", f.data, ns)
	p.rank, p.desc = h.rank, fmt.Sprintf("rank %d (host %s, pid %d)", h.rank, h.host, h.pid)
	var bad error
	switch {
	case h.world != s.env.WorldSize:
		bad = fmt.Errorf("%s has WORLD_SIZE %d, rank 0 has %d", p.desc, h.world, s.env.WorldSize)
	case h.rank <= 0 || h.rank >= s.env.WorldSize:
		bad = fmt.Errorf("%s: rank outside 1..%d", p.desc, s.env.WorldSize-1)
	}
	if bad != nil {
		_ = p.send(frameFail, []byte(bad.Error()))
		return nil, bad
	}
	_ = c.SetDeadline(time.Time{})
	return p, nil
}

// describeHandshake names a handshake deadline.
func (s *Session) describeHandshake(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("handshake not completed within %s", handshakeTimeout)
	}
	return err
}

// fetch is the side of ranks > 0: reach rank 0 (retrying while it is not
// up yet, or closes the connection before answering), prove the secret,
// check rank 0's proof, wait for the id.
func (s *Session) fetch(ctx context.Context) ([]byte, error) {
	e := s.env
	dialCtx, cancel := context.WithTimeout(ctx, s.opt.Timeout)
	defer cancel()
	var p *peerConn
	var lastErr error
	for p == nil {
		d := net.Dialer{Timeout: 5 * time.Second}
		c, err := d.DialContext(dialCtx, "tcp", e.Addr())
		if err == nil {
			p, err = s.handshake(c)
			if err != nil {
				c.Close()
				var hard hardError
				if errors.As(err, &hard) {
					return nil, hard.error
				}
			}
		}
		if p != nil {
			break
		}
		lastErr = err
		select {
		case <-dialCtx.Done():
			return nil, fmt.Errorf("rendezvous: rank %d could not reach rank 0 at %s within %s: %v", e.Rank, e.Addr(), s.opt.Timeout, lastErr)
		case <-time.After(200 * time.Millisecond):
		}
	}
	c := p.c
	s.peers = []*peerConn{p}
	s.wg.Add(1)
	go s.heartbeat(p)
	// Rank 0 answers within its own timeout, which started before it
	// accepted us: with the id, or with a failure naming the missing
	// ranks. Allow a little more so its explanation is what we report.
	_ = c.SetReadDeadline(time.Now().Add(s.opt.Timeout + 5*time.Second))
	stop := context.AfterFunc(ctx, func() { _ = c.SetReadDeadline(time.Now()) })
	defer stop()
	for {
		f, err := readFrame(p.r, maxFrame)
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return nil, fmt.Errorf("rendezvous: rank %d: %w", e.Rank, ctx.Err())
			}
			return nil, fmt.Errorf("rendezvous: rank %d waiting for the id from %s: %w: %v", e.Rank, p.desc, ErrRankLost, err)
		case f.kind == frameHeartbeat:
			continue
		case f.kind == frameFail:
			return nil, fmt.Errorf("rendezvous (rank %d): rank 0 reports: %s", e.Rank, f.data)
		case f.kind != frameID:
			return nil, fmt.Errorf("rendezvous: rank %d got frame %q instead of the id", e.Rank, f.kind)
		}
		aead, err := sealer(p.key)
		if err != nil {
			return nil, err
		}
		id, err := aead.Open(nil, make([]byte, aead.NonceSize()), f.data, nil)
		if err != nil {
			return nil, fmt.Errorf("rendezvous: rank %d: the id from %s failed its integrity check (tampered with on the way?)", e.Rank, p.desc)
		}
		s.ready.Store(true)
		s.wg.Add(1)
		go s.watch(p)
		return id, nil
	}
}

// hardError is a handshake failure that retrying cannot fix.
type hardError struct{ error }

// handshake is a peer's side of the handshake on a fresh connection to
// rank 0. A connection that ends before rank 0's challenge is worth
// another try (rank 0 may be starting, or busy with other handshakes);
// a wrong proof or a refusal is a hardError.
func (s *Session) handshake(c net.Conn) (*peerConn, error) {
	e := s.env
	p := &peerConn{c: c, r: bufio.NewReader(c), rank: 0, desc: "rank 0 at " + e.Addr()}
	_ = c.SetDeadline(time.Now().Add(handshakeTimeout))
	nc := nonce()
	h := hello(e, nc)
	if err := writeFrame(c, frameHello, h); err != nil {
		return nil, fmt.Errorf("saying hello: %w", err)
	}
	f, err := readFrame(p.r, maxHandshakeFrame)
	if err != nil {
		return nil, fmt.Errorf("waiting for rank 0's challenge: %w", err)
	}
	switch {
	case f.kind == frameFail:
		return nil, hardError{fmt.Errorf("rendezvous (rank %d): rank 0 reports: %s", e.Rank, f.data)}
	case f.kind != frameChallenge || len(f.data) != nonceLen+sha256.Size:
		return nil, hardError{fmt.Errorf("rendezvous: rank %d: the process at %s is not a trm rendezvous of this version (frame %q)", e.Rank, e.Addr(), f.kind)}
	}
	ns, proof := f.data[:nonceLen], f.data[nonceLen:]
	if !hmac.Equal(proof, mac(s.key, "rank0", h, ns)) {
		return nil, hardError{fmt.Errorf("rendezvous: rank %d: the process at %s did not prove it holds TRM_RDZV_SECRET: the ranks were given different secrets, or it is not this job's rank 0", e.Rank, e.Addr())}
	}
	if err := writeFrame(c, frameProof, mac(s.key, "peer", h, ns)); err != nil {
		return nil, fmt.Errorf("sending the proof: %w", err)
	}
	p.key = mac(s.key, "id", h, ns)
	_ = c.SetDeadline(time.Time{})
	return p, nil
}

// heartbeat keeps the other side's read deadline from passing.
func (s *Session) heartbeat(p *peerConn) {
	defer s.wg.Done()
	t := time.NewTicker(s.opt.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
			if err := p.send(frameHeartbeat, nil); err != nil {
				s.lost(p, err)
				return
			}
		}
	}
}

// watch is the watchdog of ranks > 0 after the exchange: it reads rank 0's
// connection until bye, a failure report, or loss.
func (s *Session) watch(p *peerConn) {
	defer s.wg.Done()
	for {
		_ = p.c.SetReadDeadline(time.Now().Add(5 * s.opt.Heartbeat))
		f, err := readFrame(p.r, maxFrame)
		if err != nil {
			s.lost(p, s.describe(err))
			return
		}
		switch f.kind {
		case frameBye:
			p.bye.Store(true)
			return
		case frameFail:
			s.fail(fmt.Errorf("%w: rank 0 reports: %s", ErrRankLost, f.data))
			return
		}
	}
}

// lost reports a connection that ended without bye, unless we are closing.
func (s *Session) lost(p *peerConn, err error) {
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing || p.bye.Load() || !s.ready.Load() {
		return
	}
	if s.env.Rank == 0 && !p.member.Load() {
		return
	}
	s.fail(fmt.Errorf("%w: %s (seen from rank %d): %v", ErrRankLost, p.desc, s.env.Rank, err))
}
