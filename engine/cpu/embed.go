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
	if !b.need("Embed", "x", x, d.B*S*d.H, "tok", tok, d.V*d.H, "inputs", inputs, d.B*d.L, "pids", pids, d.B) {
		return
	}
	if d.Ndim > 0 && !b.need("Embed", "puzzle", puzzle, d.NumPuzzles*d.Ndim) {
		return
	}
	if pos != nil && !b.need("Embed", "pos", pos, S*d.H) {
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
	H := d.H
	b.parallel(d.B*S, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			bi, s := r/S, r%S
			row := xx[r*H : (r+1)*H]
			if s < d.P {
				clear(row)
				if f0 := s * H; f0 < d.Ndim {
					src := pz[int(id[bi])*d.Ndim:]
					copy(row[:min(H, d.Ndim-f0)], src[f0:d.Ndim])
				}
			} else {
				t := int(in[bi*d.L+s-d.P])
				copy(row, tt[t*H:(t+1)*H])
			}
			if pp != nil {
				pr := pp[s*H : (s+1)*H]
				for i := range row {
					row[i] = d.PosScale * (row[i] + pr[i])
				}
			}
			for i := range row {
				row[i] *= d.Scale
			}
		}
	})
}

// EmbedBackward implements engine.Backend. The token gradient is a
// scatter-add; to keep it deterministic without atomics, each worker owns a
// range of hidden channels and walks every position in order.
func (b *Backend) EmbedBackward(dTok, dPos, dLocal, dx, inputs engine.Buf, d engine.EmbedDims) {
	S := d.P + d.L
	if !b.need("EmbedBackward", "dTok", dTok, d.V*d.H, "dx", dx, d.B*S*d.H, "inputs", inputs, d.B*d.L) {
		return
	}
	g, dt, dp, dl, in := f32s(dx), f32s(dTok), f32s(dPos), f32s(dLocal), i32s(inputs)
	H := d.H
	scale := d.Scale * d.PosScale
	b.parallel(H, func(lo, hi int) {
		for bi := 0; bi < d.B; bi++ {
			for l := 0; l < d.L; l++ {
				t := int(in[bi*d.L+l])
				src := g[(bi*S+d.P+l)*H:]
				dst := dt[t*H:]
				for i := lo; i < hi; i++ {
					dst[i] += scale * src[i]
				}
			}
		}
		if dp != nil {
			for bi := 0; bi < d.B; bi++ {
				for s := 0; s < S; s++ {
					src, dst := g[(bi*S+s)*H:], dp[s*H:]
					for i := lo; i < hi; i++ {
						dst[i] += scale * src[i]
					}
				}
			}
		}
	})
	if d.Ndim > 0 && dl != nil {
		if !b.need("EmbedBackward", "dLocal", dLocal, d.B*d.Ndim) {
			return
		}
		for bi := 0; bi < d.B; bi++ {
			src, dst := g[bi*S*H:bi*S*H+d.Ndim], dl[bi*d.Ndim:(bi+1)*d.Ndim]
			for i := range dst {
				dst[i] = scale * src[i]
			}
		}
	}
}
