package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/tinyrecursive/trm"
	"github.com/tinyrecursive/trm/puzzle"
	"github.com/tinyrecursive/trm/trainer/data/arc"
)

func init() { register(newServeCmd) }

// defaultServeAddr is serve's default address: loopback, on a port that
// none of Prometheus's own components or common exporters use (9090-9100
// are Prometheus, Alertmanager, Pushgateway and the node exporter; train's
// --metrics-addr examples use 9400).
const defaultServeAddr = "127.0.0.1:9410"

// serveFlags are the flags of serve.
type serveFlags struct {
	ckpt, model, modelConfig, dataDir, addr, tokenFile string
	batch, maxPuzzles, threads, arcVersions            int
	maxWait, timeout, readTimeout, drain               time.Duration
	maxBody                                            int64
}

func newServeCmd() *cobra.Command {
	var f serveFlags
	c := &cobra.Command{
		Use:   "serve (--checkpoint DIR | --model FILE --model-config PRESET|FILE) [flags]",
		Short: "serve a model over HTTP/JSON: POST /v1/solve, /healthz, /readyz, /metrics",
		Long: `Loads a model once and answers POST /v1/solve requests with JSON bodies holding
Sudoku or maze strings, raw token sequences, or an ARC task: the answer of each
puzzle, the supervision steps it took, the step where the halting head fired,
sigmoid(q_halt) per step and, with "trace": true, the answer after every step.
Requests are batched together on one model of --batch slots; an idle server
waits up to --max-wait for more puzzles before it starts a step, and each slot
takes the next puzzle as soon as its puzzle halts. "full_steps": true runs
every supervision step (the reference's evaluation, trm-train eval's answers).

Limits: --max-body bytes of request body (413), --max-puzzles puzzles per
request (413), --timeout per request (408); malformed JSON and wrong types get
400, puzzles the model cannot read 422. /healthz answers while the process
runs; /readyz once the model is loaded and until the drain starts; /metrics
serves Prometheus metrics (request latency, batch sizes, supervision steps,
errors by kind). The server binds loopback unless --addr names another
interface; with --token-file, /v1/solve and /metrics need the header
Authorization: Bearer TOKEN (the file's content, read once at start). SIGINT or SIGTERM drains: /readyz
turns 503, new requests get 503, requests in flight finish within --drain.`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			return runServe(c.Context(), c.ErrOrStderr(), &f)
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.ckpt, "checkpoint", "", "checkpoint directory (its best/ or newest step_* is used when given a root); verified against its manifest")
	fl.StringVar(&f.model, "model", "", "model weights: a .safetensors or a reference .pt (with --model-config)")
	fl.StringVar(&f.modelConfig, "model-config", "", "architecture of --model: a preset, a model config JSON or a reference YAML")
	fl.StringVar(&f.dataDir, "data", "", "the model's dataset, when its config lacks seq_len and vocab_size")
	fl.StringVar(&f.addr, "addr", defaultServeAddr, "listen address; a bare :PORT binds loopback, 0.0.0.0:PORT every interface")
	fl.IntVar(&f.batch, "batch", 16, "model batch: puzzles stepped together")
	fl.DurationVar(&f.maxWait, "max-wait", 2*time.Millisecond, "how long an idle server waits for more puzzles before a step")
	fl.IntVar(&f.maxPuzzles, "max-puzzles", 256, "most puzzles (or ARC queries) in one request")
	fl.Int64Var(&f.maxBody, "max-body", 1<<20, "most bytes in a request body")
	fl.DurationVar(&f.timeout, "timeout", 30*time.Second, "most time one request may take")
	fl.DurationVar(&f.readTimeout, "read-timeout", 10*time.Second, "most time to read a request (headers and body) from a client")
	fl.DurationVar(&f.drain, "drain", 30*time.Second, "on SIGINT/SIGTERM, how long requests in flight may take to finish")
	fl.IntVar(&f.threads, "threads", 0, "CPU threads of the model (0: all)")
	fl.IntVar(&f.arcVersions, "arc-versions", defaultARCVersions, "augmented versions of each ARC test input that vote on its two attempts")
	fl.StringVar(&f.tokenFile, "token-file", "", "file holding the bearer token that /v1/solve and /metrics require (default: none, no authentication)")
	return c
}

// serveAddr resolves --addr: a bare :PORT binds loopback.
func serveAddr(s string) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil || port == "" {
		return "", usageErrorf("--addr %q: want [HOST]:PORT, e.g. :9410 (loopback) or 0.0.0.0:9410 (every interface)", s)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

func runServe(ctx context.Context, stderr io.Writer, f *serveFlags) error {
	if f.batch <= 0 || f.maxPuzzles <= 0 || f.maxBody <= 0 || f.timeout <= 0 || f.readTimeout <= 0 || f.maxWait < 0 || f.drain < 0 || f.arcVersions <= 0 {
		return usageErrorf("--batch, --max-puzzles, --max-body, --timeout, --read-timeout and --arc-versions must be positive, --max-wait and --drain not negative")
	}
	addr, err := serveAddr(f.addr)
	if err != nil {
		return err
	}
	token := ""
	if f.tokenFile != "" {
		b, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return err
		}
		if token = strings.TrimSpace(string(b)); token == "" {
			return fmt.Errorf("--token-file %s is empty", f.tokenFile)
		}
	}
	path, opt := f.ckpt, trm.LoadOptions{DataDir: f.dataDir}
	switch {
	case f.ckpt != "" && f.model == "":
	case f.ckpt == "" && f.model != "" && f.modelConfig != "":
		path, opt.Config = f.model, f.modelConfig
	default:
		return usageErrorf("give --checkpoint DIR, or --model FILE with --model-config PRESET|FILE")
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	m, err := trm.LoadContext(ctx, path, opt)
	if err != nil {
		return err
	}
	s, err := newServer(m, serverOptions{Batch: f.batch, MaxWait: f.maxWait, MaxPuzzles: f.maxPuzzles, MaxBody: f.maxBody,
		Timeout: f.timeout, Threads: f.threads, ARCVersions: f.arcVersions, Token: token})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		s.close()
		return err
	}
	fmt.Fprintf(stderr, "serving %s (%s, batch %d) on http://%s/v1/solve\n", m.Source(), m.Codec().Name(), f.batch, ln.Addr())
	return s.serve(ctx, ln, f.readTimeout, f.drain, stderr)
}

// serverOptions configure a server.
type serverOptions struct {
	Batch, MaxPuzzles, Threads, ARCVersions int
	MaxWait, Timeout                        time.Duration
	MaxBody                                 int64
	Token                                   string
}

// server answers /v1/solve with one trm.Solver.
type server struct {
	m        *trm.Model
	solver   *trm.Solver
	opt      serverOptions
	mux      *http.ServeMux
	draining atomic.Bool
	inflight atomic.Int64 // /v1/solve requests past the drain check
	// beforeSolve, when set, runs before each request's puzzles are put to
	// the model (tests hold requests in flight with it).
	beforeSolve func(ctx context.Context)

	reg      *prometheus.Registry
	latency  *prometheus.HistogramVec
	batches  prometheus.Histogram
	steps    prometheus.Histogram
	errs     *prometheus.CounterVec
	puzzles  prometheus.Counter
	inFlight prometheus.Gauge
}

func newServer(m *trm.Model, opt serverOptions) (*server, error) {
	s := &server{m: m, opt: opt, mux: http.NewServeMux(), reg: prometheus.NewRegistry()}
	s.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "trm_serve_request_duration_seconds",
		Help:    "Time from reading a /v1/solve request to its response, by puzzle kind and status code.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}, []string{"kind", "code"})
	s.batches = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "trm_serve_batch_size",
		Help:    "Busy slots of the model at each supervision step (the rest are padding).",
		Buckets: prometheus.LinearBuckets(1, max(1, float64(opt.Batch)/8), 9)})
	s.steps = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "trm_serve_supervision_steps",
		Help: "Supervision steps each answered puzzle used.", Buckets: prometheus.LinearBuckets(1, 1, 16)})
	s.errs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "trm_serve_errors_total",
		Help: "Requests answered with an error, by kind (bad_json, invalid_puzzle, too_large, timeout, canceled, draining, unauthorized, method, internal)."}, []string{"kind"})
	s.puzzles = prometheus.NewCounter(prometheus.CounterOpts{Name: "trm_serve_puzzles_total", Help: "Puzzles answered."})
	s.inFlight = prometheus.NewGauge(prometheus.GaugeOpts{Name: "trm_serve_requests_in_flight", Help: "/v1/solve requests being answered."})
	s.reg.MustRegister(s.latency, s.batches, s.steps, s.errs, s.puzzles, s.inFlight)
	solver, err := m.NewSolver(trm.SolverOptions{Batch: opt.Batch, MaxWait: opt.MaxWait, Threads: opt.Threads,
		OnStep: func(busy int) { s.batches.Observe(float64(busy)) }})
	if err != nil {
		return nil, err
	}
	s.solver = solver
	s.mux.HandleFunc("/v1/solve", s.handleSolve)
	s.mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	s.mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if s.draining.Load() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	metrics := promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{})
	s.mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(w, r) {
			return
		}
		metrics.ServeHTTP(w, r)
	})
	return s, nil
}

// serve answers on ln until ctx ends, then drains: /readyz and new
// requests get 503 while the requests in flight finish (at most drain),
// and the listener closes.
func (s *server) serve(ctx context.Context, ln net.Listener, readTimeout, drain time.Duration, log io.Writer) error {
	hs := &http.Server{Handler: s.mux, ReadHeaderTimeout: readTimeout, ReadTimeout: readTimeout,
		WriteTimeout: readTimeout + s.opt.Timeout + 5*time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		s.close()
		return err
	case <-ctx.Done():
	}
	s.draining.Store(true)
	fmt.Fprintf(log, "draining: waiting up to %v for the requests in flight\n", drain)
	deadline := time.Now().Add(drain)
	for s.inflight.Load() > 0 {
		if time.Now().After(deadline) {
			fmt.Fprintf(log, "drain time over: closing with %d requests in flight\n", s.inflight.Load())
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := hs.Shutdown(sctx)
	s.close()
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

func (s *server) close() { s.solver.Close() }

// solveRequest is the body of POST /v1/solve. Exactly one of Puzzles,
// Tokens and Task is given.
type solveRequest struct {
	Kind      string          `json:"kind"`
	Puzzles   []string        `json:"puzzles"`
	Tokens    [][]int32       `json:"tokens"`
	PuzzleIDs []int32         `json:"puzzle_ids"`
	Labels    []string        `json:"labels"`
	Task      json.RawMessage `json:"task"`
	FullSteps bool            `json:"full_steps"`
	Trace     bool            `json:"trace"`
}

// solveResult is one puzzle's answer.
type solveResult struct {
	Answer       string    `json:"answer,omitempty"`
	AnswerTokens []int32   `json:"answer_tokens"`
	Steps        int       `json:"steps"`
	HaltStep     int       `json:"halt_step"`
	HaltProb     []float64 `json:"halt_prob"`
	Trace        []string  `json:"trace,omitempty"`
	TraceTokens  [][]int32 `json:"trace_tokens,omitempty"`
	Valid        *bool     `json:"valid,omitempty"`
	MatchesLabel *bool     `json:"matches_label,omitempty"`
	Verdict      string    `json:"verdict,omitempty"`
}

// arcResult is the vote on one test input of an ARC task.
type arcResult struct {
	Index    int      `json:"index"`
	Attempt1 arc.Grid `json:"attempt_1"`
	Attempt2 arc.Grid `json:"attempt_2"`
	Correct  *bool    `json:"correct,omitempty"`
}

// solveResponse is the body of a successful POST /v1/solve.
type solveResponse struct {
	Kind    string        `json:"kind"`
	Model   string        `json:"model"`
	Results []solveResult `json:"results,omitempty"`
	ARC     []arcResult   `json:"arc,omitempty"`
	Steps   int           `json:"supervision_steps"`
	TimeMS  float64       `json:"time_ms"`
}

// errorResponse is the body of every error answer.
type errorResponse struct {
	Error string `json:"error"`
	Kind  string `json:"kind"`
}

// httpError is an error answered with a status code and a kind.
type httpError struct {
	code int
	kind string
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(code int, kind, format string, args ...any) *httpError {
	return &httpError{code: code, kind: kind, msg: fmt.Sprintf(format, args...)}
}

// authorized checks the bearer token when one is set.
func (s *server) authorized(w http.ResponseWriter, r *http.Request) bool {
	if s.opt.Token == "" {
		return true
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if ok && len(got) == len(s.opt.Token) && subtleEqual(got, s.opt.Token) {
		return true
	}
	s.errs.WithLabelValues("unauthorized").Inc()
	w.Header().Set("WWW-Authenticate", `Bearer realm="trm"`)
	writeJSON(w, http.StatusUnauthorized, errorResponse{Error: "missing or wrong bearer token", Kind: "unauthorized"})
	return false
}

// subtleEqual compares in time independent of where the strings differ.
func subtleEqual(a, b string) bool {
	var d byte
	for i := range len(a) {
		d |= a[i] ^ b[i]
	}
	return d == 0
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func (s *server) handleSolve(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	kind := "unknown"
	code := http.StatusOK
	defer func() {
		s.latency.WithLabelValues(kind, fmt.Sprint(code)).Observe(time.Since(start).Seconds())
	}()
	fail := func(e *httpError) {
		code = e.code
		s.errs.WithLabelValues(e.kind).Inc()
		writeJSON(w, e.code, errorResponse{Error: e.msg, Kind: e.kind})
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		fail(badRequest(http.StatusMethodNotAllowed, "method", "POST a JSON body to /v1/solve"))
		return
	}
	if !s.authorized(w, r) {
		code = http.StatusUnauthorized
		return
	}
	s.inflight.Add(1)
	defer s.inflight.Add(-1)
	if s.draining.Load() {
		w.Header().Set("Connection", "close")
		w.Header().Set("Retry-After", "1")
		fail(badRequest(http.StatusServiceUnavailable, "draining", "the server is shutting down"))
		return
	}
	s.inFlight.Inc()
	defer s.inFlight.Dec()
	ctx, cancel := context.WithTimeout(r.Context(), s.opt.Timeout)
	defer cancel()
	var req solveRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, s.opt.MaxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			fail(badRequest(http.StatusRequestEntityTooLarge, "too_large", "request body over %d bytes", s.opt.MaxBody))
		case ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded):
			fail(badRequest(http.StatusRequestTimeout, "timeout", "reading the request body took too long"))
		default:
			fail(badRequest(http.StatusBadRequest, "bad_json", "request body: %v", err))
		}
		return
	}
	if dec.More() {
		fail(badRequest(http.StatusBadRequest, "bad_json", "request body: more than one JSON value"))
		return
	}
	if s.beforeSolve != nil {
		s.beforeSolve(ctx)
	}
	resp, herr := s.solve(ctx, &req)
	if resp != nil {
		kind = resp.Kind
	}
	if herr != nil {
		if herr.kind == "canceled" {
			code = 499 // the client went away: nothing is written
			s.errs.WithLabelValues(herr.kind).Inc()
			return
		}
		fail(herr)
		return
	}
	resp.TimeMS = float64(time.Since(start).Microseconds()) / 1000
	writeJSON(w, http.StatusOK, resp)
}

// solve checks a request against the model and runs it.
func (s *server) solve(ctx context.Context, req *solveRequest) (*solveResponse, *httpError) {
	cd := s.m.Codec()
	given := 0
	for _, b := range []bool{req.Puzzles != nil, req.Tokens != nil, req.Task != nil} {
		if b {
			given++
		}
	}
	if given != 1 {
		return nil, badRequest(http.StatusBadRequest, "bad_json", `give exactly one of "puzzles" (Sudoku or maze strings), "tokens" (token lists) or "task" (an ARC task)`)
	}
	kind := req.Kind
	if kind == "" {
		switch {
		case req.Task != nil:
			kind = "arc"
		case req.Tokens != nil:
			kind = "tokens"
		default:
			switch cd.(type) {
			case puzzle.SudokuCodec:
				kind = "sudoku"
			case puzzle.MazeCodec:
				kind = "maze"
			default:
				return nil, badRequest(http.StatusUnprocessableEntity, "invalid_puzzle", "the model reads %s, not Sudoku or maze strings: send \"tokens\"", cd.Name())
			}
		}
	}
	resp := &solveResponse{Kind: kind, Model: cd.Name()}
	wantCodec := func(ok bool, what string) *httpError {
		if !ok {
			return badRequest(http.StatusUnprocessableEntity, "invalid_puzzle", "the model reads %s, not %s", cd.Name(), what)
		}
		return nil
	}
	var ps []trm.Puzzle
	var labels [][]int32
	switch kind {
	case "sudoku", "maze":
		if req.Puzzles == nil {
			return resp, badRequest(http.StatusBadRequest, "bad_json", `kind %q takes "puzzles": a list of strings`, kind)
		}
		var e *httpError
		if kind == "sudoku" {
			_, ok := cd.(puzzle.SudokuCodec)
			e = wantCodec(ok, "Sudoku")
		} else {
			_, ok := cd.(puzzle.MazeCodec)
			e = wantCodec(ok, "mazes")
		}
		if e != nil {
			return resp, e
		}
		if req.Labels != nil && len(req.Labels) != len(req.Puzzles) {
			return resp, badRequest(http.StatusBadRequest, "bad_json", "%d labels for %d puzzles", len(req.Labels), len(req.Puzzles))
		}
		if len(req.Puzzles) > s.opt.MaxPuzzles {
			return resp, badRequest(http.StatusRequestEntityTooLarge, "too_large", "%d puzzles in one request; the limit is %d", len(req.Puzzles), s.opt.MaxPuzzles)
		}
		for i, text := range req.Puzzles {
			tokens, err := cd.Encode(text)
			if err == nil && kind == "sudoku" && sudokuCells(text) != cd.SeqLen() {
				err = fmt.Errorf("a %s has %d cells, got %d", cd.Name(), cd.SeqLen(), sudokuCells(text))
			}
			if err != nil {
				return resp, badRequest(http.StatusUnprocessableEntity, "invalid_puzzle", "puzzle %d: %v", i, err)
			}
			ps = append(ps, trm.Puzzle{Tokens: tokens})
			if req.Labels != nil {
				l, err := cd.Encode(req.Labels[i])
				if err != nil {
					return resp, badRequest(http.StatusUnprocessableEntity, "invalid_puzzle", "label %d: %v", i, err)
				}
				labels = append(labels, l)
			}
		}
	case "tokens":
		if req.Tokens == nil {
			return resp, badRequest(http.StatusBadRequest, "bad_json", `kind "tokens" takes "tokens": a list of token lists`)
		}
		if len(req.Tokens) > s.opt.MaxPuzzles {
			return resp, badRequest(http.StatusRequestEntityTooLarge, "too_large", "%d puzzles in one request; the limit is %d", len(req.Tokens), s.opt.MaxPuzzles)
		}
		if req.PuzzleIDs != nil && len(req.PuzzleIDs) != len(req.Tokens) {
			return resp, badRequest(http.StatusBadRequest, "bad_json", "%d puzzle_ids for %d token lists", len(req.PuzzleIDs), len(req.Tokens))
		}
		for i, t := range req.Tokens {
			p := trm.Puzzle{Tokens: t}
			if req.PuzzleIDs != nil {
				p.ID = req.PuzzleIDs[i]
			}
			ps = append(ps, p)
		}
	case "arc":
		if req.Task == nil {
			return resp, badRequest(http.StatusBadRequest, "bad_json", `kind "arc" takes "task": an ARC task object`)
		}
		if e := wantCodec(s.m.SeqLen() == puzzle.ARCSeqLen && s.m.VocabSize() == 12, "ARC tasks"); e != nil {
			return resp, e
		}
		return s.solveARC(ctx, req, resp)
	default:
		return resp, badRequest(http.StatusBadRequest, "bad_json", `kind %q: want sudoku, maze, arc or tokens`, kind)
	}
	if len(ps) == 0 {
		return resp, badRequest(http.StatusBadRequest, "bad_json", "no puzzles in the request")
	}
	sols, err := s.solveAll(ctx, ps, trm.Request{FullSteps: req.FullSteps, Trace: req.Trace})
	if err != nil {
		return resp, err
	}
	_, raw := cd.(puzzle.TokensCodec)
	for i, sol := range sols {
		r := solveResult{AnswerTokens: sol.Answer, Steps: sol.Steps, HaltStep: sol.HaltStep, HaltProb: sol.HaltProb}
		resp.Steps += sol.Steps
		if kind != "tokens" && !raw {
			r.Answer = cd.Decode(sol.Answer)
			var label []int32
			if labels != nil {
				label = labels[i]
			}
			v := cd.Check(ps[i].Tokens, sol.Answer, label)
			r.Valid, r.Verdict = &v.Valid, v.String()
			if v.HasLabel {
				r.MatchesLabel = &v.MatchesLabel
			}
		}
		if req.Trace {
			if kind != "tokens" && !raw {
				for _, p := range sol.Trace {
					r.Trace = append(r.Trace, cd.Decode(p))
				}
			} else {
				r.TraceTokens = sol.Trace
			}
		}
		resp.Results = append(resp.Results, r)
	}
	return resp, nil
}

// solveAll runs puzzles on the solver, mapping its errors onto answers.
func (s *server) solveAll(ctx context.Context, ps []trm.Puzzle, req trm.Request) ([]trm.Solution, *httpError) {
	sols, err := s.solver.Solve(ctx, ps, req)
	switch {
	case err == nil:
	case errors.Is(err, context.DeadlineExceeded):
		return nil, badRequest(http.StatusRequestTimeout, "timeout", "the request took longer than %v", s.opt.Timeout)
	case errors.Is(err, context.Canceled):
		return nil, badRequest(499, "canceled", "the client went away")
	case errors.Is(err, trm.ErrClosed):
		return nil, badRequest(http.StatusServiceUnavailable, "draining", "the server is shutting down")
	case strings.Contains(err.Error(), "trm: puzzle "):
		return nil, badRequest(http.StatusUnprocessableEntity, "invalid_puzzle", "%s", strings.TrimPrefix(err.Error(), "trm: "))
	default:
		return nil, badRequest(http.StatusInternalServerError, "internal", "%v", err)
	}
	for _, sol := range sols {
		s.steps.Observe(float64(sol.Steps))
	}
	s.puzzles.Add(float64(len(sols)))
	return sols, nil
}

// solveARC puts the task's test inputs to the model in drawn augmented
// versions (blank puzzle identifier) and votes on two attempts each.
func (s *server) solveARC(ctx context.Context, req *solveRequest, resp *solveResponse) (*solveResponse, *httpError) {
	tasks, err := puzzle.ParseARCTasks(req.Task, "task")
	if err != nil {
		return resp, badRequest(http.StatusUnprocessableEntity, "invalid_puzzle", "task: %v", err)
	}
	if len(tasks) != 1 {
		return resp, badRequest(http.StatusUnprocessableEntity, "invalid_puzzle", "task: one task per request, got %d", len(tasks))
	}
	task := tasks[0]
	versions := puzzle.DrawARCVersions(0, s.opt.ARCVersions-1)
	queries := puzzle.ARCQueries(task, versions)
	if len(queries) > s.opt.MaxPuzzles {
		return resp, badRequest(http.StatusRequestEntityTooLarge, "too_large", "%d test inputs x %d versions = %d queries; the limit is %d", len(task.Test), len(versions), len(queries), s.opt.MaxPuzzles)
	}
	ps := make([]trm.Puzzle, len(queries))
	for i, q := range queries {
		ps[i] = trm.Puzzle{Tokens: q.Input, ID: q.Version.Identifier}
	}
	sols, herr := s.solveAll(ctx, ps, trm.Request{FullSteps: req.FullSteps})
	if herr != nil {
		return resp, herr
	}
	vote := puzzle.NewARCVote(task, versions)
	for i, q := range queries {
		// The vote weighs each version by its last step's q_halt logit,
		// as evaluation does.
		resp.Steps += sols[i].Steps
		if err := vote.Add(q, sols[i].Answer, float64(sols[i].QHalt[len(sols[i].QHalt)-1])); err != nil {
			return resp, badRequest(http.StatusInternalServerError, "internal", "vote: %v", err)
		}
	}
	for _, t := range vote.Result().Tests {
		r := arcResult{Index: t.Index, Attempt1: t.Attempts.Attempt1, Attempt2: t.Attempts.Attempt2}
		if t.HasOutput {
			c := t.Correct
			r.Correct = &c
		}
		resp.ARC = append(resp.ARC, r)
	}
	return resp, nil
}
