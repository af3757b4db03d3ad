package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tinyrecursive/trm"
	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/puzzle"
	"github.com/tinyrecursive/trm/trainer"
)

// initModel writes an untrained model of the given puzzle shape (the
// engine's initialisation) and loads it: what serve does with a model of
// that shape does not depend on its training.
func initModel(t *testing.T, seqLen, vocab int, mlpT bool) *trm.Model {
	t.Helper()
	c := trainer.DemoConfig().Arch
	c.HiddenSize, c.NumHeads, c.Expansion, c.PuzzleEmbNdim = 16, 2, 2, 16
	c.HCycles, c.LCycles, c.LLayers, c.HaltMaxSteps = 1, 1, 1, 2
	c.SeqLen, c.VocabSize, c.NumPuzzleIdentifiers, c.BatchSize = seqLen, vocab, 1, 1
	c.MLPT = mlpT
	if !mlpT {
		c.PosEncodings = "rope"
	}
	dir := t.TempDir()
	cfgFile, weights := filepath.Join(dir, "arch.json"), filepath.Join(dir, "model.safetensors")
	b, _ := json.Marshal(c)
	if err := os.WriteFile(cfgFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := engine.SaveState(weights, engine.InitParams(engine.NewLayout(c), 1), nil); err != nil {
		t.Fatal(err)
	}
	m, err := trm.Load(weights, trm.LoadOptions{Config: cfgFile})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// testServer serves m on a loopback port until the returned stop is
// called; stop drains and returns serve's error.
func testServer(t testing.TB, m *trm.Model, opt serverOptions, hook func(context.Context)) (base string, s *server, stop func() error) {
	t.Helper()
	s, err := newServer(m, opt)
	if err != nil {
		t.Fatal(err)
	}
	s.beforeSolve = hook
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.serve(ctx, ln, 300*time.Millisecond, 5*time.Second, io.Discard) }()
	var once sync.Once
	var serr error
	stop = func() error {
		once.Do(func() { cancel(); serr = <-errc })
		return serr
	}
	t.Cleanup(func() { stop() })
	return "http://" + ln.Addr().String(), s, stop
}

// post sends body to /v1/solve and returns the status and decoded JSON.
func post(t *testing.T, base, body string, header ...string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/solve", strings.NewReader(body))
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %.60s: %v", body, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("POST %.60s: status %d, body %q is not JSON", body, resp.StatusCode, b)
	}
	return resp.StatusCode, out
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServeKindsAndHostileRequests: every kind of puzzle is answered (the
// answers equal the library's), and every hostile request gets a clear
// 4xx without taking the server down: an oversize body, wrong JSON types,
// invalid grids, a batch over the limit, a slow client, a client that
// disconnects, a request past its time limit, a missing token, a request
// during the drain.
func TestServeKindsAndHostileRequests(t *testing.T) {
	dir := t.TempDir()
	sud := filepath.Join(dir, "sudoku4")
	if err := trainer.BuildDemoSudoku(sud, 32, 8, 8, 0, 1, nil); err != nil {
		t.Fatal(err)
	}
	ck := tinyCheckpoint(t, sud, filepath.Join(dir, "run"))
	m, err := trm.Load(ck, trm.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var qs, ls []string
	var ps []trm.Puzzle
	for i := range 4 {
		ex, err := puzzle.ReadExample(sud, "test", i)
		if err != nil {
			t.Fatal(err)
		}
		qs, ls = append(qs, ex.Codec.Decode(ex.Input)), append(ls, ex.Codec.Decode(ex.Label))
		ps = append(ps, trm.Puzzle{Tokens: ex.Input})
	}
	lib, err := m.Solve(context.Background(), ps, trm.Request{FullSteps: true})
	if err != nil {
		t.Fatal(err)
	}

	hold := make(chan struct{})
	entered := make(chan struct{}, 8)
	var holding sync.Mutex
	held := false
	hook := func(ctx context.Context) {
		holding.Lock()
		h := held
		holding.Unlock()
		if !h {
			return
		}
		entered <- struct{}{}
		select {
		case <-hold:
		case <-ctx.Done():
		}
	}
	setHold := func(v bool) { holding.Lock(); held = v; holding.Unlock() }
	base, srv, stop := testServer(t, m, serverOptions{Batch: 4, MaxWait: time.Millisecond, MaxPuzzles: 8, MaxBody: 4096,
		Timeout: 2 * time.Second, ARCVersions: 4}, hook)

	if code, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, _ := get(t, base+"/readyz"); code != 200 {
		t.Errorf("/readyz: %d", code)
	}

	// Valid requests: Sudoku strings (with labels and the trace), raw
	// tokens, the kind inferred.
	reqBody, _ := json.Marshal(map[string]any{"kind": "sudoku", "puzzles": qs, "labels": ls, "full_steps": true, "trace": true})
	code, out := post(t, base, string(reqBody))
	if code != 200 {
		t.Fatalf("sudoku: %d %v", code, out)
	}
	var resp solveResponse
	rb, _ := json.Marshal(out)
	if err := json.Unmarshal(rb, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Kind != "sudoku" || resp.Model != "4x4 Sudoku" || len(resp.Results) != len(qs) || resp.TimeMS <= 0 || resp.Steps != len(qs)*m.HaltMaxSteps() {
		t.Fatalf("sudoku response %+v", resp)
	}
	for i, r := range resp.Results {
		if !slices.Equal(r.AnswerTokens, lib[i].Answer) || r.Answer != m.Codec().Decode(lib[i].Answer) || r.HaltStep != lib[i].HaltStep ||
			len(r.HaltProb) != r.Steps || len(r.Trace) != r.Steps || r.Trace[r.Steps-1] != r.Answer ||
			r.Valid == nil || r.MatchesLabel == nil || r.Verdict == "" {
			t.Errorf("result %d %+v; library %+v", i, r, lib[i])
		}
	}
	tok, _ := json.Marshal(map[string]any{"tokens": [][]int32{ps[0].Tokens}, "trace": true})
	if code, out := post(t, base, string(tok)); code != 200 || out["kind"] != "tokens" || len(out["results"].([]any)) != 1 {
		t.Errorf("tokens: %d %v", code, out)
	} else if r := out["results"].([]any)[0].(map[string]any); r["trace_tokens"] == nil || r["answer_tokens"] == nil {
		t.Errorf("tokens result %v", r)
	}
	if code, out := post(t, base, `{"puzzles": ["`+qs[0]+`"]}`); code != 200 || out["kind"] != "sudoku" {
		t.Errorf("sudoku, kind inferred: %d %v", code, out)
	}

	// Hostile requests.
	big := `{"puzzles": ["` + strings.Repeat(".", 5000) + `"]}`
	nine, _ := json.Marshal(map[string]any{"puzzles": slices.Repeat(qs[:1], 9)})
	for _, c := range []struct {
		name, body string
		code       int
		kind       string
	}{
		{"oversize body", big, 413, "too_large"},
		{"batch over the limit", string(nine), 413, "too_large"},
		{"not JSON", `puzzles: 1`, 400, "bad_json"},
		{"puzzles a number", `{"puzzles": 5}`, 400, "bad_json"},
		{"full_steps a string", `{"puzzles": ["` + qs[0] + `"], "full_steps": "yes"}`, 400, "bad_json"},
		{"tokens of strings", `{"tokens": [["1"]]}`, 400, "bad_json"},
		{"unknown field", `{"puzzle": ["` + qs[0] + `"]}`, 400, "bad_json"},
		{"two values", `{"puzzles": ["` + qs[0] + `"]} {}`, 400, "bad_json"},
		{"nothing", `{}`, 400, "bad_json"},
		{"two inputs", `{"puzzles": ["` + qs[0] + `"], "tokens": [[1]]}`, 400, "bad_json"},
		{"unknown kind", `{"kind": "chess", "puzzles": ["` + qs[0] + `"]}`, 400, "bad_json"},
		{"empty list", `{"puzzles": []}`, 400, "bad_json"},
		{"short grid", `{"puzzles": ["1.3"]}`, 422, "invalid_puzzle"},
		{"bad digit", `{"puzzles": ["9` + qs[0][1:] + `"]}`, 422, "invalid_puzzle"},
		{"bad label", `{"puzzles": ["` + qs[0] + `"], "labels": ["12"]}`, 422, "invalid_puzzle"},
		{"maze to a Sudoku model", `{"kind": "maze", "puzzles": ["#S#"]}`, 422, "invalid_puzzle"},
		{"ARC to a Sudoku model", `{"task": {"train": [], "test": []}}`, 422, "invalid_puzzle"},
		{"token outside the vocabulary", `{"tokens": [[` + strings.Repeat("1,", 15) + `99]]}`, 422, "invalid_puzzle"},
		{"tokens of the wrong length", `{"tokens": [[1, 2]]}`, 422, "invalid_puzzle"},
		{"puzzle id out of range", `{"tokens": [[` + strings.Repeat("1,", 15) + `1]], "puzzle_ids": [5]}`, 422, "invalid_puzzle"},
	} {
		code, out := post(t, base, c.body)
		if code != c.code || out["kind"] != c.kind || out["error"] == "" {
			t.Errorf("%s: %d %v; want %d %s", c.name, code, out, c.code, c.kind)
		}
	}
	if resp, err := http.Get(base + "/v1/solve"); err != nil || resp.StatusCode != 405 {
		t.Errorf("GET /v1/solve: %v %v", resp, err)
	}

	// A slow client: headers, then a body slower than the read timeout.
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST /v1/solve HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"puz")
	time.Sleep(500 * time.Millisecond)
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	line, _ := bufio.NewReader(conn).ReadString('\n')
	if line != "" && !strings.Contains(line, "408") && !strings.Contains(line, "400") {
		t.Errorf("slow client answered %q", line)
	}
	conn.Close()

	// A client that disconnects while its puzzles wait.
	setHold(true)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/solve", strings.NewReader(string(reqBody)))
	gone := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		gone <- err
	}()
	<-entered
	cancel()
	if err := <-gone; err == nil {
		t.Error("the disconnected client got an answer")
	}

	// A request past its time limit.
	short, _, stopShort := testServer(t, m, serverOptions{Batch: 2, MaxPuzzles: 8, MaxBody: 4096, Timeout: 50 * time.Millisecond, ARCVersions: 2, Token: "s3cret"},
		func(ctx context.Context) { <-ctx.Done() })
	if code, out := post(t, short, string(reqBody), "Authorization", "Bearer s3cret"); code != 408 || out["kind"] != "timeout" {
		t.Errorf("request past its time: %d %v", code, out)
	}
	for _, h := range [][]string{nil, {"Authorization", "Bearer wrong!"}, {"Authorization", "s3cret"}} {
		if code, out := post(t, short, string(reqBody), h...); code != 401 || out["kind"] != "unauthorized" {
			t.Errorf("token %v: %d %v", h, code, out)
		}
	}
	if code, _ := get(t, short+"/metrics"); code != 401 {
		t.Errorf("/metrics without the token: %d", code)
	}
	if err := stopShort(); err != nil {
		t.Error(err)
	}

	// The server still answers, and its metrics counted all of it.
	setHold(false)
	if code, out := post(t, base, `{"puzzles": ["`+qs[1]+`"]}`); code != 200 {
		t.Fatalf("after the hostile requests: %d %v", code, out)
	}
	code, metrics := get(t, base+"/metrics")
	for _, want := range []string{`trm_serve_errors_total{kind="too_large"} 2`, `trm_serve_errors_total{kind="canceled"} 1`,
		`trm_serve_errors_total{kind="invalid_puzzle"} 8`, `trm_serve_request_duration_seconds_count{code="200",kind="sudoku"} 3`,
		"trm_serve_batch_size_count", "trm_serve_supervision_steps_bucket", "trm_serve_puzzles_total"} {
		if code != 200 || !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// The drain: a request in flight finishes, /readyz and new requests
	// get 503, serve returns.
	setHold(true)
	first := make(chan int, 1)
	go func() {
		resp, err := http.Post(base+"/v1/solve", "application/json", bytes.NewReader(reqBody))
		if err != nil {
			first <- 0
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	<-entered
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	for deadline := time.Now().Add(5 * time.Second); !srv.draining.Load() && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if code, _ := get(t, base+"/readyz"); code != 503 {
		t.Errorf("/readyz during the drain: %d", code)
	}
	if code, out := post(t, base, `{"puzzles": ["`+qs[0]+`"]}`); code != 503 || out["kind"] != "draining" {
		t.Errorf("request during the drain: %d %v", code, out)
	}
	close(hold)
	if code := <-first; code != 200 {
		t.Errorf("the request in flight at the drain: %d", code)
	}
	if err := <-stopped; err != nil {
		t.Errorf("serve after the drain: %v", err)
	}
}

// TestServeMazeAndARC: maze strings and an ARC task reach models of
// their shapes, and the ARC answer is two attempts per test input.
func TestServeMazeAndARC(t *testing.T) {
	maze := initModel(t, 25, 6, true)
	base, _, _ := testServer(t, maze, serverOptions{Batch: 2, MaxPuzzles: 8, MaxBody: 1 << 16, Timeout: 10 * time.Second, ARCVersions: 2}, nil)
	text := "S   #\n### #\n    #\n ####\n    G"
	b, _ := json.Marshal(map[string]any{"kind": "maze", "puzzles": []string{text}, "trace": true})
	if code, out := post(t, base, string(b)); code != 200 || out["kind"] != "maze" || out["model"] != "5x5 maze" {
		t.Errorf("maze: %d %v", code, out)
	}
	if code, out := post(t, base, `{"kind": "maze", "puzzles": ["S #\nx G"]}`); code != 422 {
		t.Errorf("invalid maze: %d %v", code, out)
	}

	a := initModel(t, puzzle.ARCSeqLen, 12, false)
	base, _, _ = testServer(t, a, serverOptions{Batch: 4, MaxPuzzles: 8, MaxBody: 1 << 16, Timeout: 30 * time.Second, ARCVersions: 2}, nil)
	task := `{"train": [{"input": [[1,0],[0,1]], "output": [[0,1],[1,0]]}], "test": [{"input": [[1,1],[0,0]], "output": [[0,0],[1,1]]}]}`
	code, out := post(t, base, `{"task": `+task+`}`)
	if code != 200 || out["kind"] != "arc" {
		t.Fatalf("arc: %d %v", code, out)
	}
	res := out["arc"].([]any)
	if len(res) != 1 || res[0].(map[string]any)["attempt_1"] == nil || res[0].(map[string]any)["correct"] == nil {
		t.Errorf("arc result %v", res)
	}
	if code, out := post(t, base, `{"task": {"train": [{"input": [[1,0],[0]], "output": [[1]]}], "test": [{"input": [[1]]}]}}`); code != 422 {
		t.Errorf("ragged ARC grid: %d %v", code, out)
	}
	if code, out := post(t, base, `{"task": "no"}`); code != 422 {
		t.Errorf("ARC task a string: %d %v", code, out)
	}
}

// TestServeFlags: bad flag values are usage errors; the default address
// is loopback.
func TestServeFlags(t *testing.T) {
	if a, err := serveAddr(":9410"); err != nil || a != "127.0.0.1:9410" {
		t.Errorf(":9410 -> %q %v", a, err)
	}
	if a, _ := serveAddr(defaultServeAddr); !strings.HasPrefix(a, "127.0.0.1:") {
		t.Errorf("default address %q is not loopback", a)
	}
	for _, args := range [][]string{
		{"serve"},
		{"serve", "--checkpoint", "x", "--batch", "0"},
		{"serve", "--checkpoint", "x", "--addr", "nohost"},
		{"serve", "--model", "x.safetensors"},
	} {
		if code, _, errs := runCmd(args...); code != 2 {
			t.Errorf("%v: exit %d, want 2: %s", args, code, errs)
		}
	}
}
