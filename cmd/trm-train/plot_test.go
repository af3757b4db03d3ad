package main

import (
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gonum.org/v1/plot/vg"

	"github.com/tinyrecursive/trm/trainer"
)

// TestPlotRealLog trains a few steps with a JSONL log and plots it, as a
// user would, then checks the picture is a drawn PNG of the asked size.
func TestPlotRealLog(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "sudoku4")
	if err := trainer.BuildDemoSudoku(data, 64, 16, 8, 0, 1, nil); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "run.jsonl")
	code, stdout, stderr := runCmd("train", "--quiet", "--log", log,
		"data_paths=["+data+"]", "global_batch_size=16", "epochs=2", "eval_interval=1",
		"arch.hidden_size=32", "arch.num_heads=2", "arch.puzzle_emb_ndim=32", "arch.H_cycles=1", "arch.L_cycles=1",
		"arch.halt_max_steps=3", "lr=1e-3", "lr_warmup_steps=2", "run_name=plot-fixture")
	if code != 0 {
		t.Fatalf("train: exit %d\n%s\n%s", code, stdout, stderr)
	}
	f, err := os.Open(log)
	if err != nil {
		t.Fatal(err)
	}
	lc, err := readLog(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !lc.perStep || lc.maxSteps != 3 || len(lc.train) != 8 || len(lc.eval["all"]) != 2 {
		t.Fatalf("read perStep %v, %d supervision steps, %d train records, evals %v", lc.perStep, lc.maxSteps, len(lc.train), lc.sets())
	}
	// Every batch of the log ran step 1 for all 16 examples at the first
	// step (a fresh carry), and the counts add up to the batch each step.
	if c := lc.train[0].count; c[0] != 16 || c[1] != 0 || !math.IsNaN(lc.train[0].lmLoss[1]) {
		t.Errorf("first step: counts %v, lm loss %v", c, lc.train[0].lmLoss)
	}
	for _, p := range lc.train {
		if s := p.count[0] + p.count[1] + p.count[2]; s != 16 {
			t.Errorf("step %d: %v examples, want 16", p.step, s)
		}
	}

	out := filepath.Join(dir, "curves.png")
	code, stdout, stderr = runCmd("plot", log, "-o", out, "--width", "8", "--height", "6")
	if code != 0 || !strings.Contains(stdout, "8 training steps, 2 evaluations, 3 supervision steps") {
		t.Fatalf("plot: exit %d\n%s\n%s", code, stdout, stderr)
	}
	pf, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	img, err := png.Decode(pf)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 8*96 || b.Dy() != 6*96 {
		t.Errorf("image is %dx%d, want 768x576", b.Dx(), b.Dy())
	}
	// Some pixels carry a curve's colour (neither grey nor white).
	coloured := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r != g || g != bl {
				coloured++
			}
		}
	}
	if coloured < 500 {
		t.Errorf("only %d coloured pixels: no curves drawn?", coloured)
	}

	for _, ext := range []string{"svg", "pdf"} {
		if code, _, stderr := runCmd("plot", "-o", filepath.Join(dir, "c."+ext), log); code != 0 {
			t.Errorf("plot to %s: exit %d, %s", ext, code, stderr)
		}
	}
	checkFigure(t, lc, log)
}

// checkFigure checks the figure of a real log: the title names the run,
// every legend lies beside its panel's data area (inside the image, over
// no data), and with records cut out of the log the training curves break
// at the hole instead of bridging it.
func checkFigure(t *testing.T, lc *logCurves, log string) {
	if lc.run != "plot-fixture" {
		t.Errorf("run name %q, want the log's run_name plot-fixture", lc.run)
	}
	fig, err := newFigure(lc, "", 200)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(fig.title, "plot-fixture") {
		t.Errorf("title %q does not name the run", fig.title)
	}
	const w, h = 8 * vg.Inch, 6 * vg.Inch
	_, lay, err := fig.draw(w, h, "png")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		for j := range 2 {
			d, l := lay.data[i][j], lay.legend[i][j]
			if l.Size().X <= 0 || l.Size().Y <= 0 {
				t.Errorf("panel %d,%d has no legend", i, j)
				continue
			}
			overlaps := l.Min.X < d.Max.X && d.Min.X < l.Max.X && l.Min.Y < d.Max.Y && d.Min.Y < l.Max.Y
			if overlaps || l.Max.X > w || l.Min.X < 0 {
				t.Errorf("panel %d,%d: legend %v overlaps the data area %v or leaves the image", i, j, l, d)
			}
			if d.Max.Y >= lay.titleY {
				t.Errorf("panel %d,%d: data area %v reaches the title at %v", i, j, d, lay.titleY)
			}
		}
	}

	// Cut the training records of steps 4 and 5 out of the log.
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if strings.Contains(line, `"type":"train"`) && (strings.Contains(line, `"step":4,`) || strings.Contains(line, `"step":5,`)) {
			continue
		}
		kept = append(kept, line)
	}
	cut, err := readLog(strings.NewReader(strings.Join(kept, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	if len(cut.train) != len(lc.train)-2 {
		t.Fatalf("cut log has %d training records, want %d", len(cut.train), len(lc.train)-2)
	}
	fig, err = newFigure(cut, "", 200)
	if err != nil {
		t.Fatal(err)
	}
	loss := fig.panels[0][0]
	if len(loss.series[0]) != 2 {
		t.Errorf("step 1's loss curve has %d segments, want 2 (broken at steps 4-5)", len(loss.series[0]))
	}
	for k, segs := range loss.series {
		for _, sg := range segs {
			for i := range sg {
				// Each bin of a segment holds a record with data for step k.
				has := false
				for _, p := range cut.train {
					if p.step == int(sg[i].x) && p.count[k] > 0 {
						has = true
					}
				}
				if !has {
					t.Errorf("step %d: segment point %v has no record", k+1, sg[i])
				}
				if i > 0 && (sg[i].bin != sg[i-1].bin+1 || sg[i-1].x < 4 && sg[i].x > 5) {
					t.Errorf("step %d: segment spans from %v to %v across an empty bin", k+1, sg[i-1], sg[i])
				}
			}
		}
	}
}

// TestPlotColours: supervision steps get lighter with k (viridis is
// ordered in lightness, so the order reads in grey too), and the lightest
// stays visible on the white background.
func TestPlotColours(t *testing.T) {
	luma := func(k, n int) float64 {
		r, g, b, _ := stepColor(k, n).RGBA()
		return (0.2126*float64(r) + 0.7152*float64(g) + 0.0722*float64(b)) / 65535
	}
	for _, n := range []int{2, 6, 16} {
		for k := 1; k < n; k++ {
			if luma(k, n) <= luma(k-1, n) {
				t.Errorf("%d steps: step %d (luma %.3f) is not lighter than step %d (%.3f)", n, k+1, luma(k, n), k, luma(k-1, n))
			}
		}
		if l := luma(n-1, n); l > 0.75 {
			t.Errorf("%d steps: the last colour's luma %.3f is too light for a white background", n, l)
		}
	}
}

func TestPlotBinning(t *testing.T) {
	nan := math.NaN()
	pts := []trainPoint{
		{step: 1, count: []float64{3, 0}, lmLoss: []float64{1, nan}},
		{step: 2, count: []float64{1, 2}, lmLoss: []float64{3, 5}},
		{step: 3, count: []float64{2, 2}, lmLoss: []float64{2, 1}},
		{step: 4, count: []float64{2, 2}, lmLoss: []float64{4, 3}},
	}
	lm := func(p *trainPoint) []float64 { return p.lmLoss }
	// Two bins: steps 1-2 and 3-4, example-weighted.
	got := binned(pts, 2, lm, 0)
	if len(got) != 2 || got[0].y != 1.5 || got[0].x != 1.25 || got[1].y != 3 || got[1].x != 3.5 {
		t.Errorf("step 1 line: %v", got)
	}
	got = binned(pts, 2, lm, 1)
	if len(got) != 2 || got[0].y != 5 || got[0].x != 2 || got[1].y != 2 {
		t.Errorf("step 2 line: %v (the NaN of step 1 must be left out)", got)
	}
	if got := binned(pts, 10, lm, 0); len(got) != 4 {
		t.Errorf("more bins than steps: %d points, want 4", len(got))
	}
}

func TestPlotErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.jsonl")
	if err := os.WriteFile(empty, []byte(`{"type":"start","total_steps":3}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.jsonl")
	if err := os.WriteFile(bad, []byte("{\"type\":\"train\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"plot"}, 2, "exactly one JSONL log"},
		{[]string{"plot", empty, "-o", filepath.Join(dir, "x.gif")}, 2, "unknown image format"},
		{[]string{"plot", empty, "-o", filepath.Join(dir, "x.png")}, 1, "no training or evaluation records"},
		{[]string{"plot", bad, "-o", filepath.Join(dir, "x.png")}, 1, "line 1"},
		{[]string{"plot", filepath.Join(dir, "missing.jsonl")}, 1, "missing.jsonl"},
	} {
		code, _, stderr := runCmd(c.args...)
		if code != c.code || !strings.Contains(stderr, c.msg) {
			t.Errorf("%v: exit %d, %q; want %d and %q", c.args, code, stderr, c.code, c.msg)
		}
	}
}
