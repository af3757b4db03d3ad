package costmodel

import (
	"bytes"
	"math"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/tinyrecursive/trm/engine"
	"github.com/tinyrecursive/trm/engine/enginetest"
	"github.com/tinyrecursive/trm/trainer"
)

// stepConfigs are training configurations that between them reach every
// path of a step: the paper presets at their batch sizes (attention with
// rope, mlp_t) and the conformance suite's small configurations (learned
// positions, no puzzle embedding, the q_continue target's extra forward).
func stepConfigs(t *testing.T) map[string]trainer.Config {
	out := map[string]trainer.Config{}
	for _, p := range engine.PresetNames() {
		cfg, err := trainer.FromPreset(p)
		if err != nil {
			t.Fatal(err)
		}
		out[p] = cfg
	}
	for name, arch := range enginetest.StepConfigs() {
		cfg := trainer.DefaultConfig()
		cfg.Arch, cfg.GlobalBatchSize, cfg.EMA = arch, arch.BatchSize, true
		out[name] = cfg
	}
	return out
}

func relClose(got, want, tol float64) bool { return math.Abs(got-want) <= tol*math.Abs(want) }

// handGemmFLOPs counts a training step's GEMM FLOPs from the config alone,
// as 2 x weights x rows for every linear layer a row passes through:
// forward through all H_cycles x (L_cycles + 1) network calls (and once
// more without gradient for the q_continue target), and the backward's
// two products (input and weight gradient) per layer of the L_cycles + 1
// differentiated calls, the 6 x params x tokens rule of thumb per call.
func handGemmFLOPs(c engine.Config) (gemm, attn float64) {
	B, S, L, H, V := float64(c.BatchSize), float64(c.SeqTotal()), float64(c.SeqLen), float64(c.HiddenSize), float64(c.VocabSize)
	I := float64(c.Inter(c.HiddenSize))
	rows := B * S
	perLayer := 2 * rows * (3 * H * I) // SwiGLU MLP: up (2I x H) and down (H x I)
	var attnFwd float64
	if c.MLPT {
		It := float64(c.Inter(c.SeqTotal()))
		perLayer += 2 * (B * H) * (3 * S * It) // the token MLP over rows of S
	} else {
		perLayer += 2 * rows * (4 * H * H) // qkv (3H x H) and o (H x H)
		attnFwd = 2 * 2 * B * S * S * H    // q k^T and p v, all heads
	}
	layers := float64(c.LLayers)
	calls := float64(c.HCycles * (c.LCycles + 1))
	grads := float64(c.LCycles + 1)
	qHead := 2*B*H*2 + 2*B*2 // z_H[:,0] W_q^T and the bias as a rank-1 product
	fwd := calls*layers*perLayer + 2*B*L*H*V + qHead
	if !c.NoACTContinue && c.HaltMaxSteps > 1 {
		fwd += calls*layers*perLayer + qHead
	}
	bwd := grads*layers*2*perLayer + 2*(2*B*L*H*V) + 2*(2*B*H*2) + 2*B*2
	attn = calls * layers * attnFwd
	if !c.NoACTContinue && c.HaltMaxSteps > 1 {
		attn += calls * layers * attnFwd
	}
	attn += grads * layers * 2 * attnFwd
	return fwd + bwd, attn
}

// TestFLOPsMatchHandCount: the recorded GEMM and attention FLOPs of a
// whole training step equal the count from the config, and, where the
// step has no extra forward, engine.MatmulFLOPs plus the q head's bias.
func TestFLOPsMatchHandCount(t *testing.T) {
	for name, cfg := range stepConfigs(t) {
		if cfg.Group() != "trm" {
			continue // handGemmFLOPs counts the TRM's schedule (one network, L_cycles + 1 calls per cycle)
		}
		r, err := Predict(cfg, "H100")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		gemm, attn := handGemmFLOPs(r.Arch)
		if !relClose(r.GemmFLOPs, gemm, 1e-12) {
			t.Errorf("%s: GEMM FLOPs %.6g, counted from the config %.6g", name, r.GemmFLOPs, gemm)
		}
		if !relClose(r.AttnFLOPs, attn, 1e-12) {
			t.Errorf("%s: attention FLOPs %.6g, counted from the config %.6g", name, r.AttnFLOPs, attn)
		}
		if a := r.Arch; a.NoACTContinue {
			bias := 2*float64(a.BatchSize)*2 + 2*2*float64(a.BatchSize)
			if want := engine.MatmulFLOPs(a, true) + bias; !relClose(r.ModelFLOPs, want, 1e-12) {
				t.Errorf("%s: model FLOPs %.6g, engine.MatmulFLOPs + bias %.6g", name, r.ModelFLOPs, want)
			}
		}
		sum := 0.0
		for _, g := range r.Gemms {
			if g.Unit == TensorBF16 {
				sum += g.FLOPs
			}
		}
		if !relClose(sum, r.GemmFLOPs, 1e-12) {
			t.Errorf("%s: GEMM rows add up to %.6g FLOPs, the total is %.6g", name, sum, r.GemmFLOPs)
		}
	}
}

// TestTinyStepByHand counts one tiny step's GEMMs by hand (B 2, S 3+1, H
// 4, one layer, one cycle of each) against the recorder.
func TestTinyStepByHand(t *testing.T) {
	a := engine.DefaultConfig()
	a.BatchSize, a.SeqLen, a.VocabSize, a.NumPuzzleIdentifiers = 2, 3, 5, 2
	a.HiddenSize, a.NumHeads, a.Expansion = 4, 1, 4
	a.HCycles, a.LCycles, a.LLayers = 1, 1, 1
	a.PuzzleEmbNdim, a.PuzzleEmbLen = 4, 1
	a.HaltMaxSteps, a.HaltExplorationProb = 2, 0
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg := trainer.DefaultConfig()
	cfg.Arch, cfg.GlobalBatchSize = a, 2
	r, err := Predict(cfg, "A100")
	if err != nil {
		t.Fatal(err)
	}
	// I = 256 (4*4*2/3 rounded up to 256); rows = 2*4 = 8. Forward per
	// network call: qkv 2*8*12*4, o 2*8*4*4, up 2*8*512*4, down 2*8*4*256;
	// two calls (L then H); heads: lm 2*6*5*4, q 2*2*2*4 + bias 2*2*2*1.
	call := 2.0*8*12*4 + 2*8*4*4 + 2*8*512*4 + 2*8*4*256
	fwd := 2*call + 2*6*5*4 + 2*2*2*4 + 2*2*2*1
	// Backward: each call's linear layers twice over; lm head twice; the q
	// head's dW (2*2*4*2), db (2*1*2*2) and dz (2*2*4*2).
	bwd := 2*2*call + 2*2*6*5*4 + 2*2*4*2 + 2*1*2*2 + 2*2*4*2
	if r.GemmFLOPs != fwd+bwd {
		t.Errorf("GEMM FLOPs %v, by hand %v", r.GemmFLOPs, fwd+bwd)
	}
	// Attention: 4 S^2 hd per head forward (two calls), 8 backward.
	if want := 2*4*2*4*4*4.0 + 2*8*2*4*4*4.0; r.AttnFLOPs != want {
		t.Errorf("attention FLOPs %v, by hand %v", r.AttnFLOPs, want)
	}
}

// TestRoofline checks the time arithmetic on launches made by hand.
func TestRoofline(t *testing.T) {
	g, err := LookupGPU("H100")
	if err != nil {
		t.Fatal(err)
	}
	r := NewRecorder()
	f32 := func(n int) engine.Buf { return r.Alloc(engine.F32, n) }
	const n = 4096
	// Compute-bound: 2 n^3 FLOPs against 12 n^2 bytes.
	r.Gemm(engine.Gemm{M: n, N: n, K: n, Alpha: 1, A: f32(n * n), Lda: n, B: f32(n * n), Ldb: n, C: f32(n * n), Ldc: n})
	// Memory-bound: 1 FLOP and 12 bytes per element.
	x := f32(1 << 20)
	r.Add(x, x, x)
	if err := r.Sync(); err != nil {
		t.Fatal(err)
	}
	rep := newReport(r, g, true, engine.Config{}, "hand-made", 0)
	gemmT := 2.0*n*n*n/989.4e12 + GraphOverheads.Launch
	addT := 12.0*(1<<20)/3.35e12 + GraphOverheads.Launch
	want := gemmT + addT + GraphOverheads.Sync
	if !relClose(rep.Time, want, 1e-12) {
		t.Errorf("step %.9g s, want %.9g", rep.Time, want)
	}
	if !relClose(rep.GemmTime, gemmT, 1e-12) || !relClose(rep.OtherTime, addT, 1e-12) || rep.AttnTime != 0 {
		t.Errorf("GEMM %.9g, other %.9g, attention %.9g; want %.9g, %.9g, 0", rep.GemmTime, rep.OtherTime, rep.AttnTime, gemmT, addT)
	}
	if mfu := 2.0 * n * n * n / (want * 989.4e12); !relClose(rep.MFU, mfu, 1e-12) {
		t.Errorf("MFU %.9g, want %.9g", rep.MFU, mfu)
	}
	if s := 1 - gemmT/want; !relClose(rep.OutsideGEMMShare(), s, 1e-12) {
		t.Errorf("share outside GEMMs %.9g, want %.9g", rep.OutsideGEMMShare(), s)
	}
	bounds := map[string]string{}
	for _, k := range rep.Kernels {
		bounds[k.Kernel] = k.Bound()
	}
	if bounds["cublas gemm bf16"] != "compute" || bounds["trm_add"] != "memory" {
		t.Errorf("bounds %v: want the GEMM compute-bound and the add memory-bound", bounds)
	}
	// Eager launches cost more per launch.
	if e := newReport(r, g, false, engine.Config{}, "hand-made", 0); !relClose(e.Time-rep.Time, 2*(EagerOverheads.Launch-GraphOverheads.Launch), 1e-9) {
		t.Errorf("eager %.9g s against graphs %.9g s", e.Time, rep.Time)
	}
}

// documentedKernels reads the kernel names out of kernels/README.md's cost
// table, expanding `trm_fill_f32/f64/i32` and `trm_attn_fwd_d{16,32}`.
func documentedKernels(t *testing.T) map[string]bool {
	raw, err := os.ReadFile("../../kernels/README.md")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	brace := regexp.MustCompile(`^(.*)\{([0-9,]+)\}$`)
	for _, m := range regexp.MustCompile("`(trm_[A-Za-z0-9_/{},*]+)`").FindAllStringSubmatch(string(raw), -1) {
		name := m[1]
		if b := brace.FindStringSubmatch(name); b != nil {
			for _, d := range strings.Split(b[2], ",") {
				out[b[1]+d] = true
			}
			continue
		}
		if strings.HasSuffix(name, "_d*") {
			for _, d := range []string{"16", "32", "64", "128", "256"} {
				out[strings.TrimSuffix(name, "*")+d] = true
			}
			continue
		}
		parts := strings.Split(name, "/")
		out[parts[0]] = true
		if len(parts) > 1 {
			stem := parts[0][:strings.LastIndex(parts[0], "_")+1]
			for _, p := range parts[1:] {
				out[stem+p] = true
			}
		}
	}
	return out
}

// TestEveryOpCosted: over the step configurations, every op of the
// engine.Backend interface that does work is called and recorded, and
// every launch names a kernel of kernels/README.md's table (or a cuBLAS
// product or a copy) with finite, non-negative costs. An op added to the
// interface fails here until the recorder costs it and a step exercises it.
func TestEveryOpCosted(t *testing.T) {
	doc := documentedKernels(t)
	for _, k := range []string{"trm_add", "trm_axpby", "trm_fill_f64", "trm_attn_bwd_dq_d64", "trm_sumsq_final"} {
		if !doc[k] {
			t.Fatalf("reading kernels/README.md: %s not found (parsed %d names)", k, len(doc))
		}
	}
	library := map[string]bool{"cublas gemm bf16": true, "cublas gemm fp32": true, "memcpy D2D": true, "memcpy H2D": true, "memcpy D2H": true}
	seen := map[string]bool{}
	for name, cfg := range stepConfigs(t) {
		r, err := Predict(cfg, "H200")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, l := range r.Launches {
			seen[l.Op] = true
			if !doc[l.Kernel] && !library[l.Kernel] {
				t.Errorf("%s: op %s launches %q, which kernels/README.md does not document", name, l.Op, l.Kernel)
			}
			for _, v := range []float64{l.FLOPs, l.Bytes, l.ModelFLOPs} {
				if !(v >= 0) || math.IsInf(v, 0) {
					t.Errorf("%s: %s (%s) has a cost of %v", name, l.Kernel, l.Op, v)
				}
			}
			if l.Bytes == 0 {
				t.Errorf("%s: %s (%s) moves no bytes", name, l.Kernel, l.Op)
			}
		}
	}
	bt := reflect.TypeOf((*engine.Backend)(nil)).Elem()
	for i := 0; i < bt.NumMethod(); i++ {
		m := bt.Method(i).Name
		switch m {
		case "Name", "Alloc", "Slice", "Sync":
			continue // bookkeeping: no work on the device
		}
		if !seen[m] {
			t.Errorf("engine.Backend.%s is never recorded in a training step: cost it in the recorder and exercise it here", m)
		}
	}
}

// TestRecorderChecksShapes: a buffer too small for an op is an error at
// Sync, as on the real backends, so a wrong shape cannot be costed silently.
func TestRecorderChecksShapes(t *testing.T) {
	r := NewRecorder()
	r.Add(r.Alloc(engine.F32, 10), r.Alloc(engine.F32, 9), r.Alloc(engine.F32, 10))
	if err := r.Sync(); err == nil || !strings.Contains(err.Error(), "Add: a has 9 elements, needs 10") {
		t.Errorf("Sync after a short Add: %v", err)
	}
	if err := r.Sync(); err != nil {
		t.Errorf("the error was not cleared: %v", err)
	}
}

func TestLookupGPU(t *testing.T) {
	for in, want := range map[string]string{"h100": "H100 SXM5 80GB", "NVIDIA H200": "H200 SXM 141GB", "NVIDIA A100-SXM4-80GB": "A100 SXM4 80GB", "L40S": "L40S 48GB"} {
		g, err := LookupGPU(in)
		if err != nil || g.Name != want {
			t.Errorf("LookupGPU(%q) = %q, %v; want %q", in, g.Name, err, want)
		}
	}
	if _, err := LookupGPU("V100"); err == nil || !strings.Contains(err.Error(), "H100") {
		t.Errorf("LookupGPU(V100): %v; want an error listing the known GPUs", err)
	}
	if len(GPUs()) != 4 {
		t.Errorf("GPUs() = %v", GPUs())
	}
}

// TestWriteTable: the table lists every kernel of the report, the totals
// and the summary lines.
func TestWriteTable(t *testing.T) {
	cfg, err := trainer.FromPreset("sudoku-mlp")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Predict(cfg, "H100")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, k := range r.Kernels {
		if !strings.Contains(out, "| "+k.Kernel+" |") {
			t.Errorf("the table lacks kernel %s", k.Kernel)
		}
	}
	for _, s := range []string{"**total**", "predicted MFU", "time outside the GEMMs", "batch 768", "| GEMM M x N x K |"} {
		if !strings.Contains(out, s) {
			t.Errorf("the table lacks %q:\n%s", s, out)
		}
	}
	share := r.SyncTime / r.Time
	for _, k := range r.Kernels {
		share += k.Share
	}
	if !relClose(share, 1, 1e-9) {
		t.Errorf("kernel shares and synchronisations add up to %v", share)
	}
}

// TestModelStepIsPartOfTrainingStep: the model step bench/gpu times is the
// training step without the read-back and the optimizer: the same GEMMs
// and attention, fewer launches.
func TestModelStepIsPartOfTrainingStep(t *testing.T) {
	cfg, err := trainer.FromPreset("sudoku-att")
	if err != nil {
		t.Fatal(err)
	}
	full, err := Predict(cfg, "H100")
	if err != nil {
		t.Fatal(err)
	}
	step, err := PredictModelStep(cfg.Arch, "H100", true)
	if err != nil {
		t.Fatal(err)
	}
	if step.ModelFLOPs != full.ModelFLOPs || !(step.Time < full.Time) || !(step.Calls < full.Calls) {
		t.Errorf("model step: %v FLOPs, %v s, %d calls; training step: %v, %v, %d", step.ModelFLOPs, step.Time, step.Calls, full.ModelFLOPs, full.Time, full.Calls)
	}
	for _, l := range step.Launches {
		switch l.Op {
		case "AdamATan2", "EMA", "SignSGDRows", "SumSquares", "Download":
			t.Errorf("the model step records %s", l.Op)
		}
	}
}
