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
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
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
(solid) and token (dashed) accuracy after step k. For people without Grafana.

The figure is titled with the run's name (run_name, else the run label, else
the log's directory). Supervision steps go from dark to light along viridis,
a perceptually ordered colour map that also reads in grey; legends sit beside
the panels, never over the curves. Training curves are averaged into step
bins; where a step has no data (no example reached it, or the log has no
records there) the curve is broken, not bridged.`,
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
	if lc.run == "" {
		// A log without a start record: the run directory's name, else the file's.
		lc.run = filepath.Base(filepath.Dir(pos[0]))
		if lc.run == "." || lc.run == string(filepath.Separator) {
			lc.run = strings.TrimSuffix(filepath.Base(pos[0]), filepath.Ext(pos[0]))
		}
	}
	fig, err := newFigure(lc, set, bins)
	if err != nil {
		return err
	}
	c, _, err := fig.draw(vg.Length(width)*vg.Inch, vg.Length(height)*vg.Inch, format)
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
	// run and project name the run (its start record's run_name, or the
	// run label, and project_name): the figure's title.
	run, project string
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
	Run           string                       `json:"run"`
	Config        *struct {
		RunName     string `json:"run_name"`
		ProjectName string `json:"project_name"`
	} `json:"config"`
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
		case "start":
			// A resumed run appends a start record: the last one names it.
			if l.Config != nil && l.Config.RunName != "" {
				lc.run = l.Config.RunName
			} else if l.Run != "" {
				lc.run = l.Run
			}
			if l.Config != nil && l.Config.ProjectName != "" {
				lc.project = l.Config.ProjectName
			}
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

// binPoint is one bin of a training curve: the example-weighted mean
// step and value of the bin's records that have data for the curve.
type binPoint struct {
	bin  int
	x, y float64
}

// binWidth is the width in steps of the training bins: at least the
// span over nbins, and at least the usual spacing of the logged steps,
// so that a bin without data means missing data, not a log that records
// every few steps.
func binWidth(pts []trainPoint, nbins int) int {
	if len(pts) == 0 {
		return 1
	}
	lo, hi := pts[0].step, pts[len(pts)-1].step
	width := max(1, (hi-lo+nbins)/nbins)
	if len(pts) > 1 {
		gaps := make([]int, 0, len(pts)-1)
		for i := 1; i < len(pts); i++ {
			if d := pts[i].step - pts[i-1].step; d > 0 {
				gaps = append(gaps, d)
			}
		}
		if len(gaps) > 0 {
			sort.Ints(gaps)
			width = max(width, gaps[len(gaps)/2])
		}
	}
	return width
}

// binned averages the training points into bins of binWidth steps: per
// bin and supervision step k, the example-weighted mean of the chosen
// field, at the bin's mean step. Bins where no example ran step k are
// left out of k's points.
func binned(pts []trainPoint, nbins int, field func(*trainPoint) []float64, k int) []binPoint {
	if len(pts) == 0 {
		return nil
	}
	lo := pts[0].step
	width := binWidth(pts, nbins)
	var out []binPoint
	for i := 0; i < len(pts); {
		bin := (pts[i].step - lo) / width
		end := i
		var sx, sw, sv float64
		for ; end < len(pts) && (pts[end].step-lo)/width == bin; end++ {
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
			out = append(out, binPoint{bin: bin, x: sx / sw, y: sv / sw})
		}
		i = end
	}
	return out
}

// segments splits binned points into runs of adjacent bins: a line is
// drawn within a run and never across a bin without data.
func segments(pts []binPoint) [][]binPoint {
	var out [][]binPoint
	for i, p := range pts {
		if i == 0 || p.bin != pts[i-1].bin+1 {
			out = append(out, nil)
		}
		out[len(out)-1] = append(out[len(out)-1], p)
	}
	return out
}

// viridis holds anchors of matplotlib's viridis colour map at t = 0,
// 1/8, ..., 1: perceptually uniform, ordered in lightness (so the order
// of supervision steps reads in grey too) and safe for colour blindness.
var viridis = [][3]float64{
	{68, 1, 84}, {71, 44, 122}, {59, 81, 139}, {44, 113, 142}, {33, 144, 141},
	{39, 173, 129}, {92, 200, 99}, {170, 220, 50}, {253, 231, 37},
}

// viridisMax cuts the map before its lightest yellows, which vanish on
// the white background.
const viridisMax = 0.8

// stepColor spreads supervision steps 0..n-1 from dark to light over
// viridis[0, viridisMax].
func stepColor(k, n int) color.Color {
	t := 0.0
	if n > 1 {
		t = viridisMax * float64(k) / float64(n-1)
	}
	pos := t * float64(len(viridis)-1)
	i := min(int(pos), len(viridis)-2)
	f := pos - float64(i)
	var c [3]uint8
	for j := range c {
		c[j] = uint8(math.Round(viridis[i][j]*(1-f) + viridis[i+1][j]*f))
	}
	return color.RGBA{R: c[0], G: c[1], B: c[2], A: 255}
}

// legendStep tells whether step k (0-based) of n gets a legend entry:
// every one up to 8, else about 8 evenly spaced including the first and
// the last, so the legend stays short.
func legendStep(k, n int) bool {
	if n <= 8 {
		return true
	}
	stride := (n + 7) / 8
	return k == 0 || k == n-1 || k%stride == stride-1 && n-1-k >= stride/2
}

// panel is one plot of the figure with its legend, drawn beside the plot
// rather than inside it.
type panel struct {
	p      *plot.Plot
	legend plot.Legend
	// width is the legend's width (widest entry).
	width vg.Length
	// series are the training curves' segments, per supervision step.
	series map[int][][]binPoint
}

func newPanel(title, xlabel, ylabel string, unit bool) *panel {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xlabel
	p.Y.Label.Text = ylabel
	if unit {
		p.Y.Min, p.Y.Max = 0, 1
	}
	p.Add(plotter.NewGrid())
	l := plot.NewLegend()
	l.Top, l.Left = true, true
	l.TextStyle.Font.Size = vg.Points(9)
	l.ThumbnailWidth = vg.Points(16)
	return &panel{p: p, legend: l, series: map[int][][]binPoint{}}
}

// add adds a legend entry.
func (pn *panel) add(name string, th ...plot.Thumbnailer) {
	pn.legend.Add(name, th...)
	w := pn.legend.ThumbnailWidth + pn.legend.TextStyle.Rectangle(" "+name).Max.X
	pn.width = max(pn.width, w)
}

// figure is the four panels and the title of a plot.
type figure struct {
	title, subtitle string
	panels          [2][2]*panel
}

// newFigure builds the panels of lc: training LM loss, token and exact
// accuracy per supervision step, and set's evaluation curves.
func newFigure(lc *logCurves, set string, nbins int) (*figure, error) {
	n := lc.maxSteps
	if !lc.perStep {
		n = 1
	}
	trainPanel := func(name, ylabel string, field func(*trainPoint) []float64, unit bool) (*panel, error) {
		pn := newPanel(name, "training step", ylabel, unit)
		if len(lc.train) == 0 {
			pn.p.Title.Text += " (no training records)"
		}
		for k := range n {
			segs := segments(binned(lc.train, nbins, field, k))
			if len(segs) == 0 {
				continue
			}
			pn.series[k] = segs
			col := stepColor(k, n)
			var thumb plot.Thumbnailer
			for _, sg := range segs {
				xys := make(plotter.XYs, len(sg))
				for i, b := range sg {
					xys[i] = plotter.XY{X: b.x, Y: b.y}
				}
				if len(sg) == 1 {
					// A lone bin: a dot, since a line needs two.
					sc, err := plotter.NewScatter(xys)
					if err != nil {
						return nil, err
					}
					sc.Color, sc.Radius, sc.Shape = col, vg.Points(1.5), draw.CircleGlyph{}
					pn.p.Add(sc)
					continue
				}
				l, err := plotter.NewLine(xys)
				if err != nil {
					return nil, err
				}
				l.Color = col
				l.Width = vg.Points(1.5)
				pn.p.Add(l)
				thumb = l
			}
			if thumb == nil {
				thumb = &plotter.Line{LineStyle: draw.LineStyle{Color: col, Width: vg.Points(1.5)}}
			}
			if !lc.perStep {
				pn.add("halted examples", thumb)
			} else if legendStep(k, n) {
				pn.add(fmt.Sprintf("step %d", k+1), thumb)
			}
		}
		return pn, nil
	}
	f := &figure{title: lc.run}
	if lc.project != "" {
		f.title = lc.project + " / " + lc.run
	}
	f.subtitle = fmt.Sprintf("%d training steps, %d evaluations, %d supervision steps", len(lc.train), lc.evals(), lc.maxSteps)
	if !lc.perStep {
		f.subtitle += " (a log without per-step data: one curve of the halted examples)"
	}
	var err error
	if f.panels[0][0], err = trainPanel("train LM loss per supervision step", "cross-entropy per token", func(p *trainPoint) []float64 { return p.lmLoss }, false); err != nil {
		return nil, err
	}
	if f.panels[0][1], err = trainPanel("train token accuracy per supervision step", "accuracy", func(p *trainPoint) []float64 { return p.acc }, true); err != nil {
		return nil, err
	}
	if f.panels[1][0], err = trainPanel("train exact accuracy per supervision step", "exact accuracy", func(p *trainPoint) []float64 { return p.exactAcc }, true); err != nil {
		return nil, err
	}
	if f.panels[1][1], err = evalPanel(lc, set); err != nil {
		return nil, err
	}
	return f, nil
}

// figureLayout is where draw put each panel's data area and legend, in
// canvas coordinates.
type figureLayout struct {
	data, legend [2][2]vg.Rectangle
	// titleY is the baseline of the title; titleStyle its style.
	titleY vg.Length
}

// draw lays the figure out on a canvas of the given format: the title on
// top, the panels in two rows and two columns, each panel's legend in a
// strip to the right of its plot, top-aligned with its data area.
func (f *figure) draw(w, h vg.Length, format string) (vg.CanvasWriterTo, figureLayout, error) {
	var lay figureLayout
	c, err := draw.NewFormattedCanvas(w, h, format)
	if err != nil {
		return nil, lay, err
	}
	dc := draw.New(c)
	titleSty := text.Style{Font: font.From(plot.DefaultFont, 14), Handler: plot.DefaultTextHandler, XAlign: draw.XCenter}
	subSty := text.Style{Font: font.From(plot.DefaultFont, 10), Handler: plot.DefaultTextHandler, XAlign: draw.XCenter}
	th := titleSty.Rectangle(f.title).Size().Y
	sh := subSty.Rectangle(f.subtitle).Size().Y
	lay.titleY = dc.Max.Y - th - vg.Millimeter*2
	dc.FillText(titleSty, vg.Point{X: dc.Center().X, Y: lay.titleY}, f.title)
	dc.FillText(subSty, vg.Point{X: dc.Center().X, Y: lay.titleY - sh - vg.Millimeter}, f.subtitle)
	top := th + sh + vg.Millimeter*6
	gap := vg.Millimeter * 2
	tiles := draw.Tiles{Rows: 2, Cols: 2, PadX: vg.Millimeter * 6, PadY: vg.Millimeter * 6,
		PadTop: top, PadBottom: vg.Millimeter * 3, PadLeft: vg.Millimeter * 3, PadRight: vg.Millimeter * 3}
	// The legend strips of a column share the widest legend's width, so
	// the data areas of a column stay aligned.
	var colW [2]vg.Length
	plots := make([][]*plot.Plot, 2)
	for i := range 2 {
		plots[i] = make([]*plot.Plot, 2)
		for j := range 2 {
			colW[j] = max(colW[j], f.panels[i][j].width)
			plots[i][j] = f.panels[i][j].p
		}
	}
	cs := plot.Align(plots, tiles, dc)
	for i := range 2 {
		for j := range 2 {
			pn := f.panels[i][j]
			tc := cs[i][j]
			strip := colW[j]
			if strip > 0 {
				strip += gap
			}
			pc := draw.Crop(tc, 0, -strip, 0, 0)
			pn.p.Draw(pc)
			da := pn.p.DataCanvas(pc)
			lay.data[i][j] = da.Rectangle
			lc := tc
			lc.Min.X = tc.Max.X - colW[j]
			lc.Min.Y, lc.Max.Y = da.Min.Y, da.Max.Y
			if colW[j] > 0 {
				pn.legend.Draw(lc)
				r := lc.Rectangle
				r.Max.X = r.Min.X + pn.width
				lay.legend[i][j] = r
			}
		}
	}
	return c, lay, nil
}

// evalPanel draws the evaluation curve of one set: exact accuracy (solid)
// and token accuracy (dashed) after each supervision step, at every
// evaluation.
func evalPanel(lc *logCurves, set string) (*panel, error) {
	pn := newPanel("", "training step", "accuracy", true)
	if set == "" {
		if s := lc.sets(); len(s) > 0 {
			set = s[0]
		}
	}
	pts := lc.eval[set]
	if len(pts) == 0 {
		pn.p.Title.Text = "evaluation: no evaluation records"
		return pn, nil
	}
	pn.p.Title.Text = fmt.Sprintf("eval %q: exact (solid) and token (dashed) accuracy", set)
	n := lc.maxSteps
	for k := range n {
		for _, dashed := range []bool{false, true} {
			var xys plotter.XYs
			for _, e := range pts {
				vals := e.exactAcc
				if dashed {
					vals = e.acc
				}
				if k < len(vals) && !math.IsNaN(vals[k]) {
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
			pn.p.Add(l, s)
			if !dashed && legendStep(k, n) {
				pn.add(fmt.Sprintf("step %d", k+1), l)
			}
		}
	}
	return pn, nil
}
