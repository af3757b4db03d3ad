package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/spf13/cobra"

	"github.com/tinyrecursive/trm/trainer"
)

func init() { register(newPlotCmd) }

func newPlotCmd() *cobra.Command {
	var out, set string
	var bins int
	var width, height float64
	c := &cobra.Command{
		Use:   "plot RUN.jsonl [-o curves.png] [flags]",
		Short: "draw loss and accuracy curves per supervision step from a run's JSONL log",
		Long: `Draws, from the JSONL log of trm-train train --log (or OUT/run.jsonl), one
curve per supervision step k of: the training LM loss, token accuracy and
exact accuracy of the examples at their k-th step, and the evaluation's exact
(solid) and token (dashed) accuracy after step k. For people without Grafana.`,
		Example: `  trm-train plot runs/sudoku/run.jsonl -o curves.png`,
		Args:    cobra.ArbitraryArgs,
		RunE: func(c *cobra.Command, args []string) error {
			return runPlot(c.OutOrStdout(), args, out, set, bins, width, height)
		},
	}
	fl := c.Flags()
	fl.StringVarP(&out, "output", "o", "curves.png", "output image; the extension picks the format: png, jpg, svg, pdf, eps, tif")
	fl.StringVar(&set, "set", "", "test set of the evaluation panel (default: the first one in the log)")
	fl.IntVar(&bins, "bins", 200, "training curves are averaged into at most this many step bins (example-weighted), which smooths batch noise")
	fl.Float64Var(&width, "width", 12, "image width in inches (96 pixels each in raster formats)")
	fl.Float64Var(&height, "height", 9, "image height in inches")
	return c
}

func runPlot(stdout io.Writer, pos []string, out, set string, bins int, width, height float64) error {
	if len(pos) != 1 {
		return usageErrorf("want exactly one JSONL log, got %d arguments", len(pos))
	}
	if bins < 1 || width <= 0 || height <= 0 {
		return usageErrorf("--bins, --width and --height must be positive")
	}
	format := strings.TrimPrefix(strings.ToLower(filepath.Ext(out)), ".")
	switch format {
	case "png", "jpg", "jpeg", "svg", "pdf", "eps", "tif", "tiff":
	default:
		return usageErrorf("-o %s: unknown image format %q (want png, jpg, svg, pdf, eps or tif)", out, format)
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return err
	}
	defer f.Close()
	lc, err := readLog(f)
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	if set != "" && lc.eval[set] == nil && len(lc.eval) > 0 {
		return fmt.Errorf("%s: no evaluation of test set %q (have: %s)", pos[0], set, strings.Join(lc.sets(), ", "))
	}
	c, err := drawCurves(lc, set, bins, vg.Length(width)*vg.Inch, vg.Length(height)*vg.Inch, format, filepath.Base(pos[0]))
	if err != nil {
		return err
	}
	w, err := os.Create(out)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(w); err != nil {
		w.Close()
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: %d training steps, %d evaluations, %d supervision steps\n", out, len(lc.train), lc.evals(), lc.maxSteps)
	return nil
}

// trainPoint is one training step of the log: per supervision step k
// (index k-1) the number of examples and their means (NaN without any).
type trainPoint struct {
	step                  int
	count                 []float64
	lmLoss, acc, exactAcc []float64
}

// evalPoint is one evaluation of one test set: the per-step curve.
type evalPoint struct {
	step          int
	acc, exactAcc []float64
}

// logCurves is what plot reads from a JSONL log.
type logCurves struct {
	maxSteps int
	train    []trainPoint
	eval     map[string][]evalPoint
	// perStep is false for a log written before the per-supervision-step
	// records: its training curves are the batch means of the examples
	// that halted, drawn as one line.
	perStep bool
}

func (lc *logCurves) sets() []string {
	s := make([]string, 0, len(lc.eval))
	for k := range lc.eval {
		s = append(s, k)
	}
	sort.Strings(s)
	return s
}

func (lc *logCurves) evals() int {
	n := 0
	for _, e := range lc.eval {
		n = max(n, len(e))
	}
	return n
}

// logLine holds the fields of a JSONL record that plot uses; pointers
// tell a missing value (JSON null: no example at that step) from zero.
type logLine struct {
	Type    string `json:"type"`
	Step    int    `json:"step"`
	SupStep *struct {
		Count         []float64  `json:"count"`
		LMLoss        []*float64 `json:"lm_loss"`
		Accuracy      []*float64 `json:"accuracy"`
		ExactAccuracy []*float64 `json:"exact_accuracy"`
	} `json:"sup_step"`
	Count         *float64                     `json:"train/count"`
	LMLoss        *float64                     `json:"train/lm_loss"`
	Accuracy      *float64                     `json:"train/accuracy"`
	ExactAccuracy *float64                     `json:"train/exact_accuracy"`
	Curve         map[string]trainer.StepCurve `json:"curve"`
}

// readLog collects the training and evaluation records. A log may hold
// several runs appended by resumes: records are kept in file order and
// sorted by step, so a resumed run continues its curve.
func readLog(r io.Reader) (*logCurves, error) {
	lc := &logCurves{eval: map[string][]evalPoint{}, perStep: true}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	legacy := 0
	for n := 1; sc.Scan(); n++ {
		if len(strings.TrimSpace(sc.Text())) == 0 {
			continue
		}
		var l logLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		switch l.Type {
		case "train":
			if l.SupStep != nil {
				ss := l.SupStep
				k := len(ss.Count)
				if len(ss.LMLoss) != k || len(ss.Accuracy) != k || len(ss.ExactAccuracy) != k {
					return nil, fmt.Errorf("line %d: sup_step arrays of different lengths", n)
				}
				lc.maxSteps = max(lc.maxSteps, k)
				lc.train = append(lc.train, trainPoint{step: l.Step, count: ss.Count, lmLoss: orNaN(ss.LMLoss), acc: orNaN(ss.Accuracy), exactAcc: orNaN(ss.ExactAccuracy)})
			} else if l.LMLoss != nil && l.Count != nil {
				legacy++
				lc.train = append(lc.train, trainPoint{step: l.Step, count: []float64{*l.Count},
					lmLoss: []float64{*l.LMLoss}, acc: []float64{deref(l.Accuracy)}, exactAcc: []float64{deref(l.ExactAccuracy)}})
			}
		case "eval":
			for set, c := range l.Curve {
				lc.eval[set] = append(lc.eval[set], evalPoint{step: l.Step, acc: c.Accuracy, exactAcc: c.ExactAccuracy})
				lc.maxSteps = max(lc.maxSteps, len(c.Accuracy))
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(lc.train) == 0 && len(lc.eval) == 0 {
		return nil, errors.New("no training or evaluation records (is this a trm-train JSONL log?)")
	}
	if legacy > 0 {
		if legacy != len(lc.train) {
			return nil, errors.New("training records with and without per-supervision-step data are mixed")
		}
		lc.perStep = false
	}
	sort.SliceStable(lc.train, func(i, j int) bool { return lc.train[i].step < lc.train[j].step })
	for _, e := range lc.eval {
		sort.SliceStable(e, func(i, j int) bool { return e[i].step < e[j].step })
	}
	return lc, nil
}

func orNaN(v []*float64) []float64 {
	out := make([]float64, len(v))
	for i, p := range v {
		out[i] = deref(p)
	}
	return out
}

func deref(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}

// binned averages the training points into at most nbins bins of equal
// step width: per bin and supervision step, the example-weighted mean of
// the chosen field, at the bin's mean step. Bins where no example ran
// step k are left out of k's line.
func binned(pts []trainPoint, nbins int, field func(*trainPoint) []float64, k int) plotter.XYs {
	if len(pts) == 0 {
		return nil
	}
	lo, hi := pts[0].step, pts[len(pts)-1].step
	width := max(1, (hi-lo+nbins)/nbins)
	var out plotter.XYs
	for i := 0; i < len(pts); {
		end := i
		limit := lo + ((pts[i].step-lo)/width+1)*width
		var sx, sw, sv float64
		for ; end < len(pts) && pts[end].step < limit; end++ {
			p := &pts[end]
			vals := field(p)
			if k >= len(vals) || k >= len(p.count) || math.IsNaN(vals[k]) || p.count[k] <= 0 {
				continue
			}
			w := p.count[k]
			sx += w * float64(p.step)
			sw += w
			sv += w * vals[k]
		}
		if sw > 0 {
			out = append(out, plotter.XY{X: sx / sw, Y: sv / sw})
		}
		i = end
	}
	return out
}

// stepColor spreads supervision steps 1..n over a perceptually ordered
// ramp (viridis' anchors), so depth reads as dark to light.
func stepColor(k, n int) color.Color {
	anchors := [][3]float64{{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}}
	t := 0.0
	if n > 1 {
		t = float64(k) / float64(n-1)
	}
	pos := t * float64(len(anchors)-1)
	i := min(int(pos), len(anchors)-2)
	f := pos - float64(i)
	var c [3]uint8
	for j := range c {
		c[j] = uint8(math.Round(anchors[i][j]*(1-f) + anchors[i+1][j]*f))
	}
	return color.RGBA{R: c[0], G: c[1], B: c[2], A: 255}
}

// legendStep tells whether step k (0-based) of n gets a legend entry:
// every one up to 8, else about 8 evenly spaced including the first and
// the last, so the legend does not cover the curves.
func legendStep(k, n int) bool {
	if n <= 8 {
		return true
	}
	stride := (n + 7) / 8
	return k == 0 || k == n-1 || k%stride == stride-1 && n-1-k >= stride/2
}

// drawCurves lays out the four panels on a canvas of the given format.
func drawCurves(lc *logCurves, set string, nbins int, w, h vg.Length, format, title string) (vg.CanvasWriterTo, error) {
	n := lc.maxSteps
	if !lc.perStep {
		n = 1
	}
	trainPanel := func(name, ylabel string, field func(*trainPoint) []float64, unit bool) (*plot.Plot, error) {
		p := plot.New()
		p.Title.Text = name
		p.X.Label.Text = "training step"
		p.Y.Label.Text = ylabel
		if unit {
			p.Y.Min, p.Y.Max = 0, 1
		}
		// Loss falls and accuracy rises, so the legend goes where the
		// curves usually are not: top right for loss, top left for accuracy.
		p.Legend.Top, p.Legend.Left = true, unit
		p.Add(plotter.NewGrid())
		for k := range n {
			xys := binned(lc.train, nbins, field, k)
			if len(xys) == 0 {
				continue
			}
			l, err := plotter.NewLine(xys)
			if err != nil {
				return nil, err
			}
			l.Color = stepColor(k, n)
			l.Width = vg.Points(1.5)
			p.Add(l)
			if !lc.perStep {
				p.Legend.Add("halted examples (old log: no per-step data)", l)
			} else if legendStep(k, n) {
				p.Legend.Add(fmt.Sprintf("step %d", k+1), l)
			}
		}
		if len(lc.train) == 0 {
			p.Title.Text += " (no training records)"
		}
		return p, nil
	}
	loss, err := trainPanel(title+": train LM loss per supervision step", "cross-entropy per token", func(p *trainPoint) []float64 { return p.lmLoss }, false)
	if err != nil {
		return nil, err
	}
	acc, err := trainPanel("train token accuracy per supervision step", "accuracy", func(p *trainPoint) []float64 { return p.acc }, true)
	if err != nil {
		return nil, err
	}
	exact, err := trainPanel("train exact accuracy per supervision step", "exact accuracy", func(p *trainPoint) []float64 { return p.exactAcc }, true)
	if err != nil {
		return nil, err
	}
	ev, err := evalPanel(lc, set)
	if err != nil {
		return nil, err
	}
	c, err := draw.NewFormattedCanvas(w, h, format)
	if err != nil {
		return nil, err
	}
	dc := draw.New(c)
	tiles := draw.Tiles{Rows: 2, Cols: 2, PadX: vg.Millimeter * 6, PadY: vg.Millimeter * 6,
		PadTop: vg.Millimeter * 3, PadBottom: vg.Millimeter * 3, PadLeft: vg.Millimeter * 3, PadRight: vg.Millimeter * 3}
	plots := [][]*plot.Plot{{loss, acc}, {exact, ev}}
	cs := plot.Align(plots, tiles, dc)
	for i := range plots {
		for j, p := range plots[i] {
			p.Draw(cs[i][j])
		}
	}
	return c, nil
}

// evalPanel draws the evaluation curve of one set: exact accuracy (solid)
// and token accuracy (dashed) after each supervision step, at every
// evaluation.
func evalPanel(lc *logCurves, set string) (*plot.Plot, error) {
	p := plot.New()
	p.X.Label.Text = "training step"
	p.Y.Label.Text = "accuracy"
	p.Y.Min, p.Y.Max = 0, 1
	p.Legend.Top, p.Legend.Left = true, true
	p.Add(plotter.NewGrid())
	if set == "" {
		if s := lc.sets(); len(s) > 0 {
			set = s[0]
		}
	}
	pts := lc.eval[set]
	if len(pts) == 0 {
		p.Title.Text = "evaluation: no evaluation records"
		return p, nil
	}
	p.Title.Text = fmt.Sprintf("eval %q: exact (solid) and token (dashed) accuracy after step k", set)
	n := lc.maxSteps
	for k := range n {
		for _, dashed := range []bool{false, true} {
			var xys plotter.XYs
			for _, e := range pts {
				vals := e.exactAcc
				if dashed {
					vals = e.acc
				}
				if k < len(vals) {
					xys = append(xys, plotter.XY{X: float64(e.step), Y: vals[k]})
				}
			}
			if len(xys) == 0 {
				continue
			}
			l, s, err := plotter.NewLinePoints(xys)
			if err != nil {
				return nil, err
			}
			l.Color = stepColor(k, n)
			l.Width = vg.Points(1.5)
			s.Color = l.Color
			s.Radius = vg.Points(1.5)
			if dashed {
				l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
			}
			p.Add(l, s)
			if !dashed && legendStep(k, n) {
				p.Legend.Add(fmt.Sprintf("step %d", k+1), l)
			}
		}
	}
	return p, nil
}
