package rendezvous

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The multi-process tests re-run this test binary as the other ranks:
// with TRM_RDV_CHILD set, TestMain plays one rank instead of testing.
func TestMain(m *testing.M) {
	if os.Getenv("TRM_RDV_CHILD") != "" {
		os.Exit(child())
	}
	os.Exit(m.Run())
}

// child is one rank > 0 in its own process. It prints "id <hex>" once it
// has the id, then waits: for its stdin to close (a clean end: it closes
// the session and prints "closed"), or for the session to fail (it prints
// "failed: <error>"). TRM_RDV_MODE=exit-after-id makes it die right after
// the exchange, without saying bye, as a crashed rank would.
func child() int {
	env, ok, err := FromEnv()
	if err != nil || !ok {
		fmt.Println("error: environment:", err, ok)
		return 2
	}
	timeout, _ := time.ParseDuration(os.Getenv("TRM_RDV_TIMEOUT"))
	s, id, err := Exchange(context.Background(), Options{Env: env, Timeout: timeout, Heartbeat: 100 * time.Millisecond}, nil)
	if err != nil {
		fmt.Println("error:", err)
		return 2
	}
	fmt.Println("id", hex.EncodeToString(id))
	if os.Getenv("TRM_RDV_MODE") == "exit-after-id" {
		return 7
	}
	eof := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(eof)
	}()
	select {
	case <-eof:
		s.Close()
		fmt.Println("closed")
	case <-s.Done():
		fmt.Println("failed:", s.Err())
	}
	return 0
}

// proc is a child rank: its output lines arrive on lines.
type proc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	out   strings.Builder
	mu    sync.Mutex
	exit  chan error
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func start(t *testing.T, rank, world, port int, timeout time.Duration, mode string) *proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "TRM_RDV_CHILD=1", "TRM_RDV_MODE="+mode, "TRM_RDV_TIMEOUT="+timeout.String(),
		"RANK="+strconv.Itoa(rank), "WORLD_SIZE="+strconv.Itoa(world), "LOCAL_RANK=0", "LOCAL_WORLD_SIZE=1",
		"MASTER_ADDR=127.0.0.1", "MASTER_PORT="+strconv.Itoa(port), "TRM_RDZV_SECRET="+testSecret)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, stdin: stdin, lines: make(chan string, 16), exit: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.mu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			p.lines <- sc.Text()
		}
		close(p.lines)
		p.exit <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
	})
	return p
}

// line waits for the child's next output line.
func (p *proc) line(t *testing.T, within time.Duration) string {
	t.Helper()
	select {
	case l, ok := <-p.lines:
		if !ok {
			t.Fatalf("rank ended without output; it printed:\n%s", p.output())
		}
		return l
	case <-time.After(within):
		t.Fatalf("no output within %s; so far:\n%s", within, p.output())
	}
	return ""
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// testSecret is the secret the test's ranks share.
const testSecret = "0123456789abcdef0123456789abcdef"

func rank0(world, port int) Env {
	return Env{Rank: 0, WorldSize: world, LocalWorldSize: 1, MasterAddr: "127.0.0.1", MasterPort: port, Source: "test", Secret: testSecret}
}

func randomID(t *testing.T) []byte {
	id := make([]byte, 128)
	if _, err := rand.Read(id); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestExchange: three processes get rank 0's id, then end cleanly with no
// rank reporting a failure.
func TestExchange(t *testing.T) {
	port := freePort(t)
	kids := []*proc{start(t, 1, 3, port, 20*time.Second, ""), start(t, 2, 3, port, 20*time.Second, "")}
	id := randomID(t)
	s, got, err := Exchange(context.Background(), Options{Env: rank0(3, port), Timeout: 20 * time.Second, Heartbeat: 100 * time.Millisecond}, id)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, id) {
		t.Fatal("rank 0 got back a different id")
	}
	for r, k := range kids {
		if l := k.line(t, 10*time.Second); l != "id "+hex.EncodeToString(id) {
			t.Fatalf("rank %d: %q, want the id", r+1, l)
		}
	}
	// Several heartbeat periods pass with everyone healthy.
	time.Sleep(700 * time.Millisecond)
	if err := s.Err(); err != nil {
		t.Fatalf("healthy group reported %v", err)
	}
	for _, k := range kids {
		k.stdin.Close()
	}
	for r, k := range kids {
		if l := k.line(t, 10*time.Second); l != "closed" {
			t.Fatalf("rank %d: %q after a clean close; output:\n%s", r+1, l, k.output())
		}
		if err := <-k.exit; err != nil {
			t.Fatalf("rank %d exited: %v", r+1, err)
		}
	}
	// The peers' byes must not count as losses.
	time.Sleep(300 * time.Millisecond)
	if err := s.Err(); err != nil {
		t.Fatalf("clean close reported %v", err)
	}
	s.Close()
}

// TestRankNeverArrives: rank 2 of 3 is never started; rank 0 gives up at
// its timeout naming it, and rank 1 is told the same.
func TestRankNeverArrives(t *testing.T) {
	port := freePort(t)
	k := start(t, 1, 3, port, 20*time.Second, "")
	t0 := time.Now()
	_, _, err := Exchange(context.Background(), Options{Env: rank0(3, port), Timeout: 1500 * time.Millisecond}, randomID(t))
	if err == nil {
		t.Fatal("exchange without rank 2 succeeded")
	}
	if !strings.Contains(err.Error(), "rank(s) 2 of 3 did not arrive") {
		t.Fatalf("error does not name rank 2: %v", err)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Fatalf("gave up after %s, timeout 1.5s", d)
	}
	l := k.line(t, 10*time.Second)
	if !strings.HasPrefix(l, "error:") || !strings.Contains(l, "rank(s) 2 of 3 did not arrive") {
		t.Fatalf("rank 1 reported %q", l)
	}
}

// TestNoRankZero: a rank whose rank 0 never comes up names the address.
func TestNoRankZero(t *testing.T) {
	port := freePort(t)
	k := start(t, 1, 2, port, time.Second, "")
	l := k.line(t, 10*time.Second)
	if !strings.Contains(l, "could not reach rank 0 at 127.0.0.1:"+strconv.Itoa(port)) {
		t.Fatalf("rank 1 reported %q", l)
	}
}

// logLines is a Log writer that hands each line to a channel.
type logLines chan string

func (c logLines) Write(p []byte) (int, error) {
	c <- strings.TrimSpace(string(p))
	return len(p), nil
}

// TestRankKilledDuringExchange: of 4 ranks, 1 and 2 arrive, then rank 1
// is killed before rank 3 shows up. Rank 0 must fail at once (not at its
// 30 s timeout) naming rank 1, and rank 2 must be told.
func TestRankKilledDuringExchange(t *testing.T) {
	port := freePort(t)
	k1, k2 := start(t, 1, 4, port, 30*time.Second, ""), start(t, 2, 4, port, 30*time.Second, "")
	logs := make(logLines, 16)
	type result struct {
		err error
	}
	res := make(chan result, 1)
	t0 := time.Now()
	go func() {
		_, _, err := Exchange(context.Background(), Options{Env: rank0(4, port), Timeout: 30 * time.Second, Log: logs}, randomID(t))
		res <- result{err}
	}()
	for arrived := 0; arrived < 2; {
		select {
		case l := <-logs:
			if strings.Contains(l, "arrived") {
				arrived++
			}
		case <-time.After(15 * time.Second):
			t.Fatal("ranks 1 and 2 did not arrive")
		}
	}
	go func() {
		for range logs {
		}
	}()
	if err := k1.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	var r result
	select {
	case r = <-res:
	case <-time.After(10 * time.Second):
		t.Fatal("rank 0 still waiting 10 s after rank 1 was killed")
	}
	pid := strconv.Itoa(k1.cmd.Process.Pid)
	if r.err == nil || !errors.Is(r.err, ErrRankLost) || !strings.Contains(r.err.Error(), "rank 1 (host") || !strings.Contains(r.err.Error(), "pid "+pid) {
		t.Fatalf("rank 0: want rank 1 (pid %s) named as lost, got %v", pid, r.err)
	}
	if d := time.Since(t0); d > 20*time.Second {
		t.Fatalf("took %s", d)
	}
	l := k2.line(t, 10*time.Second)
	if !strings.HasPrefix(l, "error:") || !strings.Contains(l, "rank 1 (host") {
		t.Fatalf("rank 2 reported %q", l)
	}
}

// TestRankDiesAfterExchange is the watchdog: rank 2 exits without a word
// after getting the id; rank 0's failure callback (where training aborts
// its communicator) names it, and rank 1 learns it from rank 0.
func TestRankDiesAfterExchange(t *testing.T) {
	port := freePort(t)
	k1, k2 := start(t, 1, 3, port, 20*time.Second, ""), start(t, 2, 3, port, 20*time.Second, "exit-after-id")
	s, _, err := Exchange(context.Background(), Options{Env: rank0(3, port), Timeout: 20 * time.Second, Heartbeat: 100 * time.Millisecond}, randomID(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	aborted := make(chan error, 1)
	s.OnFailure(func(err error) { aborted <- err })
	k1.line(t, 10*time.Second)
	k2.line(t, 10*time.Second)
	select {
	case err := <-aborted:
		if !errors.Is(err, ErrRankLost) || !strings.Contains(err.Error(), "rank 2 (host") {
			t.Fatalf("failure does not name rank 2: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("rank 0 did not notice rank 2's death within 10 s")
	}
	l := k1.line(t, 10*time.Second)
	if !strings.HasPrefix(l, "failed:") || !strings.Contains(l, "rank 2 (host") {
		t.Fatalf("rank 1 reported %q", l)
	}
	// A callback registered after the failure runs at once.
	late := make(chan error, 1)
	s.OnFailure(func(err error) { late <- err })
	select {
	case <-late:
	default:
		t.Fatal("late OnFailure was not called")
	}
}

// TestWrongWorldSize: a rank launched with another WORLD_SIZE is refused
// with both numbers in the message.
func TestWrongWorldSize(t *testing.T) {
	port := freePort(t)
	k := start(t, 1, 3, port, 5*time.Second, "")
	_, _, err := Exchange(context.Background(), Options{Env: rank0(2, port), Timeout: 1500 * time.Millisecond}, randomID(t))
	if err == nil || !strings.Contains(err.Error(), "rank(s) 1 of 2 did not arrive") {
		t.Fatalf("rank 0: %v", err)
	}
	if l := k.line(t, 10*time.Second); !strings.Contains(l, "WORLD_SIZE 3, rank 0 has 2") {
		t.Fatalf("rank 1 reported %q", l)
	}
}

func lookup(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestParse(t *testing.T) {
	e, ok, err := Parse(lookup(map[string]string{"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "3", "LOCAL_WORLD_SIZE": "4",
		"MASTER_ADDR": "node0", "MASTER_PORT": "29500", "TRM_RDZV_SECRET": " s3cr3t-s3cr3t-s3cr3t\n"}))
	if err != nil || !ok || e != (Env{Rank: 3, WorldSize: 8, LocalRank: 3, LocalWorldSize: 4, MasterAddr: "node0", MasterPort: 29500, Source: "torchrun", Secret: "s3cr3t-s3cr3t-s3cr3t"}) {
		t.Fatalf("torchrun: %+v %v %v", e, ok, err)
	}
	e, ok, err = Parse(lookup(map[string]string{"SLURM_NTASKS": "8", "SLURM_PROCID": "5", "SLURM_LOCALID": "1",
		"SLURM_NTASKS_PER_NODE": "4(x2)", "MASTER_ADDR": "n1", "MASTER_PORT": "1234"}))
	if err != nil || !ok || e != (Env{Rank: 5, WorldSize: 8, LocalRank: 1, LocalWorldSize: 4, MasterAddr: "n1", MasterPort: 1234, Source: "slurm"}) {
		t.Fatalf("slurm: %+v %v %v", e, ok, err)
	}
	// Under torchrun the agent holds MASTER_PORT; TRM_MASTER_PORT moves us.
	e, _, err = Parse(lookup(map[string]string{"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "29500", "TRM_MASTER_PORT": "29511"}))
	if err != nil || e.MasterPort != 29511 {
		t.Fatalf("TRM_MASTER_PORT: %+v %v", e, err)
	}
	// Kubernetes operators: one process per pod, no LOCAL_* variables.
	e, ok, err = Parse(lookup(map[string]string{"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "job-0.svc", "MASTER_PORT": "23456"}))
	if err != nil || !ok || e.LocalRank != 0 || e.LocalWorldSize != 1 {
		t.Fatalf("one per pod: %+v %v %v", e, ok, err)
	}
	for _, m := range []map[string]string{{}, {"WORLD_SIZE": "1"}, {"SLURM_NTASKS": "1", "SLURM_PROCID": "0"}} {
		if _, ok, err := Parse(lookup(m)); ok || err != nil {
			t.Errorf("%v: want a single process, got ok=%v err=%v", m, ok, err)
		}
	}
	for _, c := range []struct {
		env  map[string]string
		want []string
	}{
		{map[string]string{"WORLD_SIZE": "4"}, []string{"RANK is not set", "MASTER_ADDR is not set", "MASTER_PORT is not set"}},
		{map[string]string{"WORLD_SIZE": "4", "RANK": "x", "MASTER_ADDR": "h", "MASTER_PORT": "1"}, []string{`RANK="x" is not an integer`}},
		{map[string]string{"WORLD_SIZE": "4", "RANK": "4", "MASTER_ADDR": "h", "MASTER_PORT": "1"}, []string{"rank 4 is outside 0..3"}},
		{map[string]string{"WORLD_SIZE": "4", "RANK": "1", "LOCAL_RANK": "2", "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "1"}, []string{"local rank 2 is outside 0..1"}},
		{map[string]string{"WORLD_SIZE": "4", "RANK": "1", "MASTER_ADDR": "h", "MASTER_PORT": "70000"}, []string{"MASTER_PORT 70000"}},
		{map[string]string{"SLURM_NTASKS": "2", "MASTER_ADDR": "h", "MASTER_PORT": "1"}, []string{"SLURM_PROCID is not set"}},
		{map[string]string{"WORLD_SIZE": "2", "RANK": "1", "MASTER_ADDR": "h", "MASTER_PORT": "1", "TRM_RDZV_INSECURE": "maybe"}, []string{`TRM_RDZV_INSECURE="maybe"`}},
	} {
		_, _, err := Parse(lookup(c.env))
		if err == nil {
			t.Errorf("%v: no error", c.env)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q lacks %q", c.env, err, w)
			}
		}
	}
}
