package rendezvous

import (
	"bufio"
	"context"
	"encoding/binary"
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
	"time"
)

// Wire format: frames of one type byte, a big-endian uint32 length and the
// payload. A peer says hello (its rank, world size, host and pid); rank 0
// answers with the id once every rank has arrived, or with a failure. After
// the exchange both sides send heartbeats; a failure frame from rank 0
// tells every survivor which rank was lost; bye ends a connection cleanly.
const (
	frameHello     = 'H'
	frameID        = 'I'
	frameHeartbeat = 'P'
	frameFail      = 'F'
	frameBye       = 'B'
	magic          = "trm-rendezvous-1"
	maxFrame       = 1 << 20
)

// Options configure Exchange.
type Options struct {
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
	// Log, if set, gets one line per arriving rank and per failure.
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

func readFrame(r io.Reader) (frame, error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return frame{}, err
	}
	n := binary.BigEndian.Uint32(h[1:])
	if n > maxFrame {
		return frame{}, fmt.Errorf("frame of %d bytes: not a trm rendezvous peer", n)
	}
	f := frame{kind: h[0], data: make([]byte, n)}
	_, err := io.ReadFull(r, f.data)
	return f, err
}

// peerConn is one TCP connection with serialised writes.
type peerConn struct {
	c    net.Conn
	r    *bufio.Reader
	mu   sync.Mutex
	rank int
	desc string      // "rank 3 (host node2, pid 77)"
	bye  atomic.Bool // the other side ended the connection cleanly
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
	peers []*peerConn // rank 0: ranks 1..n-1; others: rank 0 only
	ln    net.Listener
	conns []net.Conn // rank 0: every accepted connection, closed on failure (guarded by mu)

	mu      sync.Mutex
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
	if s.ln != nil {
		s.ln.Close()
	}
	s.wg.Wait()
	return nil
}

// Exchange runs the rendezvous. Rank 0 passes the id to distribute (for
// NCCL, its unique id) and gets it back; every other rank passes nil and
// receives it. It returns when every rank has the id, or with an error
// naming the ranks that did not arrive or that were lost on the way.
func Exchange(ctx context.Context, opt Options, id []byte) (*Session, []byte, error) {
	if opt.Timeout <= 0 {
		opt.Timeout = 5 * time.Minute
	}
	if opt.Heartbeat <= 0 {
		opt.Heartbeat = 2 * time.Second
	}
	s := &Session{env: opt.Env, opt: opt, done: make(chan struct{})}
	var err error
	if opt.Env.Rank == 0 {
		if len(id) == 0 || len(id) > maxFrame {
			return nil, nil, fmt.Errorf("rendezvous: rank 0 needs an id of 1..%d bytes to distribute", maxFrame)
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
		if s.ln != nil {
			s.ln.Close()
		}
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
		return nil, nil, err
	}
	return s, id, nil
}

func hello(e Env) []byte {
	host, _ := os.Hostname()
	return []byte(fmt.Sprintf("%s %d %d %s %d", magic, e.Rank, e.WorldSize, host, os.Getpid()))
}

// listenAddr is where rank 0 listens: MASTER_ADDR itself when it is a
// loopback address (a single-host job need not open a port to the
// network), otherwise every interface, since MASTER_ADDR is often a name
// (a headless service, a SLURM host) that resolves to one of several
// interfaces of this host.
func listenAddr(e Env) string {
	if ip := net.ParseIP(e.MasterAddr); ip != nil && ip.IsLoopback() {
		return e.Addr()
	}
	if e.MasterAddr == "localhost" {
		return joinHostPort("127.0.0.1", e.MasterPort)
	}
	return ":" + strconv.Itoa(e.MasterPort)
}

// event is what a connection's reader reports to rank 0's loop.
type event struct {
	p   *peerConn
	f   frame
	err error // the connection ended (EOF, reset, silence)
}

// serve is rank 0's side: accept every rank, then send the id. Each
// connection has one reader goroutine for its whole life (bufio.Reader is
// not safe for two), reporting hellos, byes and losses as events; after
// the exchange the same events drive the watchdog.
func (s *Session) serve(ctx context.Context, id []byte) error {
	e := s.env
	ln, err := net.Listen("tcp", listenAddr(e))
	if err != nil {
		return fmt.Errorf("rendezvous: rank 0 cannot listen on %s (MASTER_PORT in use by another job?): %w", listenAddr(e), err)
	}
	s.ln = ln
	deadline := time.Now().Add(s.opt.Timeout)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	events := make(chan event, 4*e.WorldSize)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return // listener closed
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go s.readLoop(c, deadline, events)
		}
	}()
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
				if old := byRank[ev.p.rank]; old != nil {
					err := fmt.Errorf("rank %d is already taken by %s (two processes with RANK=%d?)", ev.p.rank, old.desc, ev.p.rank)
					_ = ev.p.send(frameFail, []byte(err.Error()))
					ev.p.c.Close()
					return failAll(fmt.Errorf("rendezvous at %s: %s: %w", e.Addr(), ev.p.desc, err))
				}
				byRank[ev.p.rank] = ev.p
				s.logf("rendezvous: %s arrived (%d of %d)", ev.p.desc, len(byRank)+1, e.WorldSize)
			}
		}
	}
	// Stop accepting: a late or duplicate process must not be left
	// waiting for an id that will never come.
	ln.Close()
	s.ln = nil
	ranks := make([]int, 0, len(byRank))
	for r := range byRank {
		ranks = append(ranks, r)
	}
	slices.Sort(ranks)
	for _, r := range ranks {
		s.peers = append(s.peers, byRank[r])
	}
	for _, p := range s.peers {
		if err := p.send(frameID, id); err != nil {
			return failAll(fmt.Errorf("rendezvous: sending the id to %s: %w", p.desc, err))
		}
	}
	s.ready.Store(true)
	s.wg.Add(1)
	go s.dispatch(events)
	return nil
}

// readLoop owns one accepted connection on rank 0: the hello, then every
// frame until the connection ends; heartbeats to the peer start with it.
func (s *Session) readLoop(c net.Conn, deadline time.Time, events chan<- event) {
	defer s.wg.Done()
	p, err := s.greet(c, deadline)
	if err != nil {
		c.Close()
		s.logf("rendezvous: refused a connection from %s: %v", c.RemoteAddr(), err)
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
		c.Close()
		return
	}
	s.wg.Add(1)
	go s.heartbeat(p)
	for {
		_ = c.SetReadDeadline(time.Now().Add(5 * s.opt.Heartbeat))
		f, err := readFrame(p.r)
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

// describe turns a read deadline into what it means here.
func (s *Session) describe(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("silent for %s", 5*s.opt.Heartbeat)
	}
	return err
}

// dispatch is rank 0's watchdog after the exchange: a connection that
// ends without bye is a lost rank.
func (s *Session) dispatch(events <-chan event) {
	defer s.wg.Done()
	for {
		select {
		case <-s.done:
			return
		case ev := <-events:
			if ev.err != nil {
				s.lost(ev.p, ev.err)
			}
		}
	}
}

// greet reads and checks a peer's hello.
func (s *Session) greet(c net.Conn, deadline time.Time) (*peerConn, error) {
	_ = c.SetReadDeadline(deadline)
	p := &peerConn{c: c, r: bufio.NewReader(c)}
	f, err := readFrame(p.r)
	if err != nil {
		return nil, err
	}
	var m, host string
	var rank, world, pid int
	if f.kind != frameHello {
		return nil, fmt.Errorf("expected a hello, got frame %q", f.kind)
	}
	if _, err := fmt.Sscanf(string(f.data), "%s %d %d %s %d", &m, &rank, &world, &host, &pid); err != nil || m != magic {
		return nil, fmt.Errorf("not a trm rendezvous peer (%q)", f.data)
	}
	p.rank, p.desc = rank, fmt.Sprintf("rank %d (host %s, pid %d)", rank, host, pid)
	var bad error
	switch {
	case world != s.env.WorldSize:
		bad = fmt.Errorf("%s has WORLD_SIZE %d, rank 0 has %d", p.desc, world, s.env.WorldSize)
	case rank <= 0 || rank >= s.env.WorldSize:
		bad = fmt.Errorf("%s: rank outside 1..%d", p.desc, s.env.WorldSize-1)
	}
	if bad != nil {
		_ = p.send(frameFail, []byte(bad.Error()))
		return nil, bad
	}
	return p, nil
}

// fetch is the side of ranks > 0: reach rank 0 (retrying while it is not
// up yet), say hello, wait for the id.
func (s *Session) fetch(ctx context.Context) ([]byte, error) {
	e := s.env
	dialCtx, cancel := context.WithTimeout(ctx, s.opt.Timeout)
	defer cancel()
	var c net.Conn
	var lastErr error
	for c == nil {
		d := net.Dialer{Timeout: 5 * time.Second}
		conn, err := d.DialContext(dialCtx, "tcp", e.Addr())
		if err == nil {
			c = conn
			break
		}
		lastErr = err
		select {
		case <-dialCtx.Done():
			return nil, fmt.Errorf("rendezvous: rank %d could not reach rank 0 at %s within %s: %v", e.Rank, e.Addr(), s.opt.Timeout, lastErr)
		case <-time.After(200 * time.Millisecond):
		}
	}
	p := &peerConn{c: c, r: bufio.NewReader(c), rank: 0, desc: "rank 0 at " + e.Addr()}
	if err := p.send(frameHello, hello(e)); err != nil {
		c.Close()
		return nil, fmt.Errorf("rendezvous: rank %d saying hello to %s: %w", e.Rank, e.Addr(), err)
	}
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
		f, err := readFrame(p.r)
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
		s.ready.Store(true)
		s.wg.Add(1)
		go s.watch(p)
		return f.data, nil
	}
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
		f, err := readFrame(p.r)
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
	s.fail(fmt.Errorf("%w: %s (seen from rank %d): %v", ErrRankLost, p.desc, s.env.Rank, err))
}
