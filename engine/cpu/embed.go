package cpu

import (
	"github.com/tinyrecursive/trm/engine"
)

// Embed implements engine.Backend. Position s < P holds the puzzle row,
// flattened over [P, H] and zero-padded past Ndim; position P+l holds the
// token row. With learned positions the sum with pos is scaled by
// PosScale before the input scale, in the reference's order.
// FLOPs 1-3 per element; bytes 8-12 per element.
func (b *Backend) Embed(x, tok, pos, puzzle, inputs, pids engine.Buf, d engine.EmbedDims) {
	S := d.P + d.L
	if !b.need("Embed", req{"x", x, d.B * S * d.H}, req{"tok", tok, d.V * d.H}, req{"inputs", inputs, d.B * d.L}, req{"pids", pids, d.B}) {
		return
	}
	if d.Ndim > 0 && !b.need("Embed", req{"puzzle", puzzle, d.NumPuzzles * d.Ndim}) {
		return
	}
	if pos != nil && !b.need("Embed", req{"pos", pos, S * d.H}) {
		return
	}
	xx, tt, pp, pz, in, id := f32s(x), f32s(tok), f32s(pos), f32s(puzzle), i32s(inputs), i32s(pids)
	for i, t := range in[:d.B*d.L] {
		if t < 0 || int(t) >= d.V {
			b.fail("Embed: row %d position %d: token %d outside [0, %d)", i/d.L, i%d.L, t, d.V)
			return
		}
	}
	if d.Ndim > 0 {
		for i, p := range id[:d.B] {
			if p < 0 || int(p) >= d.NumPuzzles {
				b.fail("Embed: row %d: puzzle identifier %d outside [0, %d)", i, p, d.NumPuzzles)
				return
			}
		}
	}
	j := &b.jobs.embed
	*j = embedJob{x: xx, tok: tt, pos: pp, puzzle: pz, in: in, id: id, d: d}
	b.pool.run(j, d.B*S, rowGrain(d.H))
	*j = embedJob{}
}

// embedJob writes the input rows of positions [lo, hi) of [B*S].
type embedJob struct {
	x, tok, pos, puzzle []float32
	in, id              []int32
	d                   engine.EmbedDims
}

func (j *embedJob) run(_, lo, hi int) {
	d := j.d
	S, H := d.P+d.L, d.H
	for r := lo; r < hi; r++ {
		bi, s := r/S, r%S
		row := j.x[r*H : (r+1)*H]
		if s < d.P {
			clear(row)
			if f0 := s * H; f0 < d.Ndim {
				src := j.puzzle[int(j.id[bi])*d.Ndim:]
				copy(row[:min(H, d.Ndim-f0)], src[f0:d.Ndim])
			}
		} else {
			t := int(j.in[bi*d.L+s-d.P])
			copy(row, j.tok[t*H:(t+1)*H])
		}
		if j.pos != nil {
			pr := j.pos[s*H : (s+1)*H]
			for i := range row {
				row[i] = d.PosScale * (row[i] + pr[i])
			}
		}
		scale(row, d.Scale)
	}
}

// EmbedBackward implements engine.Backend. The token gradient is a
// scatter-add; to keep it deterministic without atomics, each worker owns a
// range of hidden channels and walks every position in order.
func (b *Backend) EmbedBackward(dTok, dPos, dLocal, dx, inputs engine.Buf, d engine.EmbedDims) {
	S := d.P + d.L
	if !b.need("EmbedBackward", req{"dTok", dTok, d.V * d.H}, req{"dx", dx, d.B * S * d.H}, req{"inputs", inputs, d.B * d.L}) {
		return
	}
	g, dl := f32s(dx), f32s(dLocal)
	H := d.H
	gs := d.Scale * d.PosScale
	j := &b.jobs.embedBack
	*j = embedBackJob{g: g, dt: f32s(dTok), dp: f32s(dPos), in: i32s(inputs), d: d, scale: gs}
	// Units are ranges of channels: each channel's sums run over the
	// positions in order whatever the split.
	b.pool.run(j, H, max(1, H/(4*b.threads)))
	*j = embedBackJob{}
	if d.Ndim > 0 && dl != nil {
		if !b.need("EmbedBackward", req{"dLocal", dLocal, d.B * d.Ndim}) {
			return
		}
		for bi := 0; bi < d.B; bi++ {
			src, dst := g[bi*S*H:bi*S*H+d.Ndim], dl[bi*d.Ndim:(bi+1)*d.Ndim]
			for i := range dst {
				dst[i] = gs * src[i]
			}
		}
	}
}

// embedBackJob accumulates the token and position gradients of channels
// [lo, hi).
type embedBackJob struct {
	g, dt, dp []float32
	in        []int32
	d         engine.EmbedDims
	scale     float32
}

func (j *embedBackJob) run(_, lo, hi int) {
	d := j.d
	S, H := d.P+d.L, d.H
	for bi := 0; bi < d.B; bi++ {
		for l := 0; l < d.L; l++ {
			t := int(j.in[bi*d.L+l])
			src := j.g[(bi*S+d.P+l)*H:]
			dst := j.dt[t*H:]
			for i := lo; i < hi; i++ {
				dst[i] += j.scale * src[i]
			}
		}
	}
	if j.dp != nil {
		for bi := 0; bi < d.B; bi++ {
			for s := 0; s < S; s++ {
				src, dst := j.g[(bi*S+s)*H:], j.dp[s*H:]
				for i := lo; i < hi; i++ {
					dst[i] += j.scale * src[i]
				}
			}
		}
	}
}
