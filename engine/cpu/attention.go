package cpu

import (
	"math"

	"github.com/tinyrecursive/trm/engine"
)

// ropeJob rotates the q and k heads of rows of qkv. A BF16 qkv's row is
// widened into the worker's row scratch, rotated by the same code and
// rounded back (operand.load and store; a float32 row is rotated in place).
type ropeJob struct {
	x                      operand
	cos, sin               []float32
	ws                     []workerScratch
	seq, heads, hd, stride int
	inverse                bool
}

func (j *ropeJob) run(w, lo, hi int) {
	hd, half, n := j.hd, j.hd/2, 2*j.heads*j.hd // q heads then k heads
	var scr []float32
	if j.x.is16 {
		scr = j.ws[w].slot(0, n)
	}
	for r := lo; r < hi; r++ {
		p := r % j.seq
		c, s := j.cos[p*hd:p*hd+half], j.sin[p*hd:p*hd+half]
		row := j.x.load(scr, r*j.stride, r*j.stride+n)
		for h := 0; h < 2*j.heads; h++ {
			v := row[h*hd : (h+1)*hd]
			rope(v[:half], v[half:hd], c, s, j.inverse)
		}
		j.x.store(row, r*j.stride)
	}
}

// Rope implements engine.Backend. Per head the pairs (v_j, v_{j+hd/2}) are
// rotated by the position's angle: a' = a c - b s, b' = b c + a s (the
// reference's q cos + rotate_half(q) sin, with its duplicated tables). The
// inverse rotation is the transpose, used for the backward pass. qkv may
// be BF16 (engine.BF16Activations): its q and k are rotated in float32
// and rounded.
// FLOPs 6 per rotated pair; bytes 8 per element of q and k (4 in bf16).
func (b *Backend) Rope(qkv, cos, sin engine.Buf, batch, seq, heads, hd int, inverse bool) {
	H := heads * hd
	if !b.needAny("Rope", req{"qkv", qkv, batch * seq * 3 * H}) || !b.need("Rope", req{"cos", cos, seq * hd}, req{"sin", sin, seq * hd}) {
		return
	}
	j := &b.jobs.rope
	*j = ropeJob{x: operandOf(qkv), cos: f32s(cos), sin: f32s(sin), seq: seq, heads: heads, hd: hd, stride: 3 * H, inverse: inverse}
	if j.x.is16 {
		b.growRowScratch(2 * H)
		j.ws = b.ws
	}
	b.pool.run(j, batch*seq, rowGrain(2*H))
	*j = ropeJob{}
}

// Attention runs in blocks, flash-attention style: the S x S scores of a
// head never exist in full, only one block of them per worker, so the
// activations are read a few times per block instead of once per GEMM
// and softmax pass, and there is no per-call packing.
//
// A forward unit is one query block of one head. Per key block it writes
// the scores S = Q K^T / sqrt(hd) into a tile, updates each row's running
// max and sum (online softmax), rescales the row's output accumulator when
// the max grew and adds P V; at the end it divides by the sum and records
// lse = max + log(sum). A backward unit is one head: it recomputes P from
// the saved lse, block by block, and accumulates dV and dK (over query
// blocks) and dQ (over key blocks) in its own scratch. Every output element
// is thus produced by one fixed sequence of operations, whatever the
// thread count and whichever worker runs the unit; atomics or shared
// accumulators would make the bits depend on the scheduling.
//
// Two kernels do the arithmetic, in AVX-512 or AVX2 assembly where the CPU
// has them (attn_amd64.s) and in Go otherwise: qkTile, rows of a 4-row
// interleaved panel times a transposed panel (the scores, and dP = dO V^T),
// and axpyRows, rows += coefficients times rows of a matrix (P V, P^T dO,
// dS^T Q, dS K), both over groups of 4 rows. The block sizes are fixed
// (variables only so that tests can shrink them), so they never depend on
// the machine either.
var (
	// attnQBlock is the most query rows per block: a Sudoku or maze
	// sequence (81-97 tokens with the puzzle prefix) is one block.
	attnQBlock = 128
	// attnKBlock is the most keys per block: up to it a row's softmax is
	// one pass; ARC's 916 keys are two blocks, whose score tile (128 x
	// 464 floats) stays in L2.
	attnKBlock = 512
)

// attnPlan is the blocking of one attention call. Blocks are balanced: n
// items in nb blocks, block i being [n*i/nb, n*(i+1)/nb).
type attnPlan struct {
	seq, heads, hd int
	H, ld          int     // heads*hd, and 3*H: the row stride of qkv
	nqb, nkb       int     // query and key blocks per head
	bq4            int     // rows of the largest query block, rounded up to 4
	bkp            int     // columns of the largest key block, rounded up to 16
	scale          float32 // 1/sqrt(hd)
}

func newAttnPlan(seq, heads, hd int) attnPlan {
	nqb, nkb := ceilDiv(seq, attnQBlock), ceilDiv(seq, attnKBlock)
	return attnPlan{seq: seq, heads: heads, hd: hd, H: heads * hd, ld: 3 * heads * hd, nqb: nqb, nkb: nkb,
		bq4: roundUp(ceilDiv(seq, nqb), 4), bkp: roundUp(ceilDiv(seq, nkb), 16), scale: float32(1 / math.Sqrt(float64(hd)))}
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }
func roundUp(a, m int) int { return ceilDiv(a, m) * m }

// qBlock and kBlock return the rows [lo, hi) of query and key block i.
func (p *attnPlan) qBlock(i int) (lo, hi int) { return p.seq * i / p.nqb, p.seq * (i + 1) / p.nqb }
func (p *attnPlan) kBlock(i int) (lo, hi int) { return p.seq * i / p.nkb, p.seq * (i + 1) / p.nkb }

// panelLen is the size of one head's transposed keys (or values): per key
// block an hd x bkp panel.
func (p *attnPlan) panelLen() int { return p.hd * p.nkb * p.bkp }

// packT writes the transposed key (or value) blocks of one head into
// panels: block kb's element (c, j) at kb*hd*bkp + c*bkp + j, the columns
// past the block's end up to a multiple of 16 zeroed (qkTile computes
// them; they must be finite). src starts at the head's first row, row
// stride ld (the plan's ld in qkv, hd in a widened copy).
func (p *attnPlan) packT(panels, src []float32, ld int) {
	for kb := 0; kb < p.nkb; kb++ {
		j0, j1 := p.kBlock(kb)
		nk := j1 - j0
		panel := panels[kb*p.hd*p.bkp : (kb+1)*p.hd*p.bkp]
		transposeTile(panel, p.bkp, src[j0*ld:], ld, nk, p.hd)
		if nkp := roundUp(nk, 16); nkp > nk {
			for c := 0; c < p.hd; c++ {
				clear(panel[c*p.bkp+nk : c*p.bkp+nkp])
			}
		}
	}
}

// widenHeadRows widens rows [0, n) of one head of a BF16 qkv, hd elements
// each, ld apart in src, into dst with rows hd apart: the compact float32
// copy that the kernels then read as they read a float32 qkv.
func widenHeadRows(dst []float32, src []uint16, ld, n, hd int) {
	for r := 0; r < n; r++ {
		widenBF16s(dst[r*hd:(r+1)*hd], src[r*ld:r*ld+hd])
	}
}

// packRows4 copies rows [0, n) of src (row stride ld, hd columns) into the
// 4-row interleaved panel ap that qkTile reads, element (r, c) at
// ((r/4)*hd + c)*4 + r%4, and zeroes the rows up to the next multiple of 4.
func packRows4(ap, src []float32, ld, n, hd int) {
	for g := 0; g < ceilDiv(n, 4); g++ {
		blk := ap[g*4*hd : (g+1)*4*hd]
		c0 := 0
		if 4*g+4 <= n {
			c0 = archPack4(blk, src[4*g*ld:], ld, hd)
		}
		for r := 0; r < 4; r++ {
			if i := 4*g + r; i < n {
				for c, v := range src[i*ld+c0 : i*ld+hd] {
					blk[(c0+c)*4+r] = v
				}
			} else {
				for c := c0; c < hd; c++ {
					blk[c*4+r] = 0
				}
			}
		}
	}
}

// padInf sets the scores of a tile row's padding columns to -Inf, whose
// exponential is exactly 0 in every exp variant: the softmax then runs on
// whole vectors and never falls back to the scalar exp for a row's tail.
func padInf(x []float32) {
	for i := range x {
		x[i] = float32(math.Inf(-1))
	}
}

// attnJob is the forward pass; a unit is one query block of one head.
//
// With a BF16 qkv (x16 set) a unit reads float32 copies instead: the
// keys and values of its head widened into the worker's scratch when it
// starts the head (as the transposed keys are packed: once per head and
// worker, consecutive units sharing them), and its block's queries. The
// kernels then run on those copies, row stride hd, exactly as on a
// float32 qkv. A BF16 out gets each output row, computed in the
// accumulator, rounded. With several query blocks per head (ARC's 916
// tokens are 8) a head whose blocks two workers share has its keys and
// values widened by both, as both pack its transposed keys: a little
// extra work at the seams of the split, none per block otherwise.
type attnJob struct {
	x, lse []float32
	x16    []uint16
	o      operand
	p      attnPlan
	scr    []float32 // per-worker scratch, per floats apiece
	per    int
	ws     []workerScratch // per-worker float64 row sums
}

// fwdScratch is the forward's float32 scratch per worker: the
// transposed keys of a head, the packed query block, its score tile, its
// output accumulator and running maxima; with x16, then the head's
// widened keys (then values) and the block's widened queries.
func (p *attnPlan) fwdScratch(x16 bool) int {
	n := p.panelLen() + 2*p.bq4*p.hd + p.bq4*p.bkp + p.bq4
	if x16 {
		n += (p.seq + p.bq4) * p.hd
	}
	return roundUp(n, 16)
}

func (j *attnJob) run(w, lo, hi int) {
	p := &j.p
	hd, bkp, bq4 := p.hd, p.bkp, p.bq4
	s := j.scr[w*j.per : (w+1)*j.per]
	kt, s := s[:p.panelLen()], s[p.panelLen():]
	ap, s := s[:bq4*hd], s[bq4*hd:]
	acc, s := s[:bq4*hd], s[bq4*hd:]
	sc, s := s[:bq4*bkp], s[bq4*bkp:]
	m, s := s[:bq4], s[bq4:]
	var kv, qw []float32 // x16: the head's keys, then values; the block's queries
	if j.x16 != nil {
		kv, qw = s[:p.seq*hd], s[p.seq*hd:(p.seq+bq4)*hd]
	}
	l := j.ws[w].f64[:bq4]
	cur := -1 // the head whose keys kt holds: consecutive units share it
	for u := lo; u < hi; u++ {
		bh, qb := u/p.nqb, u%p.nqb
		b, h := bh/p.heads, bh%p.heads
		i0, i1 := p.qBlock(qb)
		nq := i1 - i0
		// q: the block's queries, v: the head's values, ld apart.
		var q, v []float32
		ld := p.ld
		if j.x16 == nil {
			xb := j.x[b*p.seq*p.ld:]
			if bh != cur {
				p.packT(kt, xb[p.H+h*hd:], p.ld)
				cur = bh
			}
			q, v = xb[i0*p.ld+h*hd:], xb[2*p.H+h*hd:]
		} else {
			xb := j.x16[b*p.seq*p.ld:]
			if bh != cur {
				widenHeadRows(kv, xb[p.H+h*hd:], p.ld, p.seq, hd)
				p.packT(kt, kv, hd)
				widenHeadRows(kv, xb[2*p.H+h*hd:], p.ld, p.seq, hd)
				cur = bh
			}
			widenHeadRows(qw, xb[i0*p.ld+h*hd:], p.ld, nq, hd)
			q, v, ld = qw, kv, hd
		}
		if u+1 < hi {
			j.prefetch(u + 1)
		}
		g := ceilDiv(nq, 4)
		packRows4(ap, q, ld, nq, hd)
		clear(acc[:4*g*hd])
		for kb := 0; kb < p.nkb; kb++ {
			j0, j1 := p.kBlock(kb)
			nk := j1 - j0
			nkp := roundUp(nk, 16)
			qkTile(sc, bkp, ap, hd, kt[kb*hd*bkp:], bkp, nkp, g, p.scale)
			for r := 0; r < nq; r++ {
				row := sc[r*bkp : r*bkp+nkp]
				padInf(row[nk:])
				mb := maxOf(row)
				if kb == 0 {
					m[r], l[r] = mb, expShiftSum(row, mb)
					continue
				}
				mn := max(m[r], mb)
				sum := expShiftSum(row, mn)
				if mn == m[r] {
					l[r] += sum
					continue
				}
				// The max grew: what was summed so far is e^(m_old - m_new) too large.
				a := math.Exp(float64(m[r] - mn))
				l[r] = l[r]*a + sum
				scale(acc[r*hd:(r+1)*hd], float32(a))
				m[r] = mn
			}
			axpyRows(acc, hd, sc, bkp, 1, v[j0*ld:], ld, nk, hd, g)
		}
		o0 := (b*p.seq+i0)*p.H + h*hd
		lb := j.lse[(b*p.heads+h)*p.seq+i0:]
		for r := 0; r < nq; r++ {
			a, off := acc[r*hd:(r+1)*hd], o0+r*p.H
			dst := j.o.dst(a, off, off+hd) // a itself for a BF16 out: the copy is a no-op
			copy(dst, a)
			scale(dst, float32(1/l[r]))
			j.o.store(dst, off)
			lb[r] = m[r] + float32(math.Log(l[r]))
		}
	}
}

// prefetch fetches what unit u reads and writes first: its queries and
// output rows, and the keys and values when it starts a new head (if they
// fit in L2 with room to spare), in float32 or bf16.
func (j *attnJob) prefetch(u int) {
	p := &j.p
	bh, qb := u/p.nqb, u%p.nqb
	b, h := bh/p.heads, bh%p.heads
	i0, i1 := p.qBlock(qb)
	if o := (b*p.seq+i0)*p.H + h*p.hd; j.o.is16 {
		prefetch16(j.o.h[o:], p.H, i1-i0, p.hd)
	} else {
		prefetch(j.o.f[o:], p.H, i1-i0, p.hd)
	}
	kv := qb == 0 && p.seq*p.hd <= attnPrefetchMax
	x0 := b*p.seq*p.ld + h*p.hd
	if j.x16 != nil {
		prefetch16(j.x16[x0+i0*p.ld:], p.ld, i1-i0, p.hd)
		if kv {
			prefetch16(j.x16[x0+p.H:], p.ld, p.seq, p.hd)
			prefetch16(j.x16[x0+2*p.H:], p.ld, p.seq, p.hd)
		}
		return
	}
	prefetch(j.x[x0+i0*p.ld:], p.ld, i1-i0, p.hd)
	if kv {
		prefetch(j.x[x0+p.H:], p.ld, p.seq, p.hd)
		prefetch(j.x[x0+2*p.H:], p.ld, p.seq, p.hd)
	}
}

// attnPrefetchMax bounds the floats of one head's keys (or values) that a
// unit prefetches for the next (128 KB: keys and values of a short sequence).
const attnPrefetchMax = 1 << 15

// Attention implements engine.Backend in blocks (see attnPlan): units of
// one query block of one head, each with its own slice of the scratch.
// The lse of a row is max + log(sum of e^(s - max)), as a one-pass softmax
// would give it. qkv and out may be BF16 (engine.BF16Activations; lse is
// float32): the result is that of the widened qkv, out rounded.
// FLOPs 4 S^2 hd per head (+ ~5 S^2 for the softmax); bytes: q, k, v and
// out once per head plus k and v once per query block (4 S hd (1 + S/128) * 4,
// half of it for BF16 operands).
func (b *Backend) Attention(out, lse, qkv engine.Buf, batch, seq, heads, hd int) {
	H := heads * hd
	if !b.needAny("Attention", req{"out", out, batch * seq * H}) || !b.need("Attention", req{"lse", lse, batch * heads * seq}) ||
		!b.needAny("Attention", req{"qkv", qkv, batch * seq * 3 * H}) {
		return
	}
	if batch*seq*heads*hd == 0 {
		return
	}
	p := newAttnPlan(seq, heads, hd)
	x16 := isBF16(qkv)
	per := p.fwdScratch(x16)
	for w := range b.ws {
		if cap(b.ws[w].f64) < p.bq4 {
			b.ws[w].f64 = make([]float64, p.bq4)
		}
	}
	j := &b.jobs.attn
	*j = attnJob{o: operandOf(out), lse: f32s(lse), p: p, scr: b.scratch(b.threads * per), per: per, ws: b.ws}
	if x16 {
		j.x16 = bf16s(qkv)
	} else {
		j.x = f32s(qkv)
	}
	b.pool.run(j, batch*heads*p.nqb, 1)
	*j = attnJob{}
}

// attnBackJob is the backward pass; a unit is one head of one batch row.
//
// With a BF16 qkv (x16 set) the unit widens its head's values, then its
// keys, into the worker's scratch (packing each transposed, and keeping
// the keys for dQ), and each query block's queries; with a BF16 out, each
// row of O is widened for its rowsum(dO * O). The kernels then run on the
// copies exactly as on float32 operands.
type attnBackJob struct {
	dx, dO, x, lse []float32
	x16            []uint16
	o              operand
	p              attnPlan
	scr            []float32 // per-worker scratch, per floats apiece
	per            int
}

// bwdScratch is the backward's scratch per worker: transposed keys and
// values, the dK and dV accumulators of a head (block kb's rows at
// kb*bkp*hd), the packed Q and dO of a query block, its P and dP tiles,
// its dQ accumulator, lse and D = rowsum(dO * O); with BF16 operands, then
// the head's widened keys, a block's widened queries and a widened row of O.
func (p *attnPlan) bwdScratch(bf16 bool) int {
	n := 4*p.panelLen() + 3*p.bq4*p.hd + 2*p.bq4*p.bkp + 2*p.bq4
	if bf16 {
		n += (p.seq + p.bq4 + 1) * p.hd
	}
	return roundUp(n, 16)
}

func (j *attnBackJob) run(w, lo, hi int) {
	p := &j.p
	hd, bkp, bq4, ld, H := p.hd, p.bkp, p.bq4, p.ld, p.H
	s := j.scr[w*j.per : (w+1)*j.per]
	n := p.panelLen()
	kt, vt, dk, dv, s := s[:n], s[n:2*n], s[2*n:3*n], s[3*n:4*n], s[4*n:]
	qs, s := s[:bq4*hd], s[bq4*hd:]
	dos, s := s[:bq4*hd], s[bq4*hd:]
	dq, s := s[:bq4*hd], s[bq4*hd:]
	P, s := s[:bq4*bkp], s[bq4*bkp:]
	dP, s := s[:bq4*bkp], s[bq4*bkp:]
	L, D, s := s[:bq4], s[bq4:2*bq4], s[2*bq4:]
	var kw, qw, orow []float32 // BF16 operands: the head's keys, a block's queries, a row of O
	if j.x16 != nil || j.o.is16 {
		kw, qw, orow = s[:p.seq*hd], s[p.seq*hd:(p.seq+bq4)*hd], s[(p.seq+bq4)*hd:(p.seq+bq4+1)*hd]
	}
	for bh := lo; bh < hi; bh++ {
		if bh+1 < hi && p.seq*hd <= attnPrefetchMax/2 {
			j.prefetch(bh + 1)
		}
		b, h := bh/p.heads, bh%p.heads
		dxb := j.dx[b*p.seq*ld:]
		dob, o0 := j.dO[b*p.seq*H+h*hd:], b*p.seq*H+h*hd
		lb := j.lse[(b*p.heads+h)*p.seq:]
		// The head's rows in float32: queries xb[h*hd:] and keys k, ldk apart.
		var xb, k []float32
		ldk := ld
		if j.x16 == nil {
			xb = j.x[b*p.seq*ld:]
			p.packT(kt, xb[H+h*hd:], ld)
			p.packT(vt, xb[2*H+h*hd:], ld)
			k = xb[H+h*hd:]
		} else {
			xh := j.x16[b*p.seq*ld:]
			widenHeadRows(kw, xh[2*H+h*hd:], ld, p.seq, hd)
			p.packT(vt, kw, hd)
			widenHeadRows(kw, xh[H+h*hd:], ld, p.seq, hd)
			p.packT(kt, kw, hd)
			k, ldk = kw, hd
		}
		clear(dk)
		clear(dv)
		for qb := 0; qb < p.nqb; qb++ {
			i0, i1 := p.qBlock(qb)
			nq := i1 - i0
			g := ceilDiv(nq, 4)
			// q: the block's queries, ldq apart.
			var q []float32
			ldq := ld
			if j.x16 == nil {
				q = xb[i0*ld+h*hd:]
			} else {
				widenHeadRows(qw, j.x16[(b*p.seq+i0)*ld+h*hd:], ld, nq, hd)
				q, ldq = qw, hd
			}
			packRows4(qs, q, ldq, nq, hd)
			packRows4(dos, dob[i0*H:], H, nq, hd)
			for r := 0; r < nq; r++ {
				i := i0 + r
				L[r] = lb[i]
				D[r] = float32(dot64(dob[i*H:i*H+hd], j.o.load(orow, o0+i*H, o0+i*H+hd)))
			}
			clear(dq[:4*g*hd])
			for kb := 0; kb < p.nkb; kb++ {
				j0, j1 := p.kBlock(kb)
				nk := j1 - j0
				nkp, gk := roundUp(nk, 16), ceilDiv(nk, 4)
				// P = e^(Q K^T / sqrt(hd) - lse), the forward's scores exactly.
				qkTile(P, bkp, qs, hd, kt[kb*hd*bkp:], bkp, nkp, g, p.scale)
				for r := 0; r < nq; r++ {
					row := P[r*bkp : r*bkp+nkp]
					padInf(row[nk:])
					expShiftSum(row, L[r])
				}
				qkTile(dP, bkp, dos, hd, vt[kb*hd*bkp:], bkp, nkp, g, 1)
				// dV_j += sum_i P_ij dO_i: the rows of P^T.
				axpyRows(dv[kb*bkp*hd:], hd, P, 1, bkp, dob[i0*H:], H, nq, hd, gk)
				for r := 0; r < nq; r++ {
					pdsub(dP[r*bkp:r*bkp+nkp], P[r*bkp:r*bkp+nkp], D[r])
				}
				// dP now holds dS = P (dP - D); dK_j += sum_i dS_ij q_i, dQ_i += sum_j dS_ij k_j.
				axpyRows(dk[kb*bkp*hd:], hd, dP, 1, bkp, q, ldq, nq, hd, gk)
				axpyRows(dq, hd, dP, bkp, 1, k[j0*ldk:], ldk, nk, hd, g)
			}
			for r := 0; r < nq; r++ {
				dst := dxb[(i0+r)*ld+h*hd : (i0+r)*ld+h*hd+hd]
				copy(dst, dq[r*hd:(r+1)*hd])
				scale(dst, p.scale)
			}
		}
		for kb := 0; kb < p.nkb; kb++ {
			j0, j1 := p.kBlock(kb)
			for r := 0; r < j1-j0; r++ {
				row := dxb[(j0+r)*ld:]
				src := kb*bkp*hd + r*hd
				dst := row[H+h*hd : H+h*hd+hd]
				copy(dst, dk[src:src+hd])
				scale(dst, p.scale)
				copy(row[2*H+h*hd:2*H+h*hd+hd], dv[src:src+hd])
			}
		}
	}
}

// prefetch fetches the rows of head bh that the backward reads (q, k, v,
// dO and O, in float32 or bf16) and writes (dq, dk, dv), for short
// sequences only.
func (j *attnBackJob) prefetch(bh int) {
	p := &j.p
	b, h := bh/p.heads, bh%p.heads
	x0, o0 := b*p.seq*p.ld+h*p.hd, b*p.seq*p.H+h*p.hd
	for part := 0; part < 3; part++ {
		if j.x16 != nil {
			prefetch16(j.x16[x0+part*p.H:], p.ld, p.seq, p.hd)
		} else {
			prefetch(j.x[x0+part*p.H:], p.ld, p.seq, p.hd)
		}
		prefetch(j.dx[x0+part*p.H:], p.ld, p.seq, p.hd)
	}
	prefetch(j.dO[o0:], p.H, p.seq, p.hd)
	if j.o.is16 {
		prefetch16(j.o.h[o0:], p.H, p.seq, p.hd)
	} else {
		prefetch(j.o.f[o0:], p.H, p.seq, p.hd)
	}
}

// AttentionBackward implements engine.Backend in blocks (see attnPlan),
// one unit per head: P = e^(q k^T/sqrt(hd) - lse) recomputed per block,
// dV = P^T dO, dP = dO V^T, dS = P (dP - rowsum(dO * O)),
// dQ = dS K / sqrt(hd), dK = dS^T Q / sqrt(hd). qkv and out may be BF16
// (engine.BF16Activations): the result is that of their widened values.
// FLOPs 10 S^2 hd per head (8 for the gradients, 2 to recompute the
// scores); bytes: qkv, out, dout and dqkv once, q and dO once per key
// block ((9 S hd + 2 S hd S/512) * 4).
func (b *Backend) AttentionBackward(dqkv, dout, qkv, out, lse engine.Buf, batch, seq, heads, hd int) {
	H := heads * hd
	if !b.need("AttentionBackward", req{"dqkv", dqkv, batch * seq * 3 * H}, req{"dout", dout, batch * seq * H}) ||
		!b.needAny("AttentionBackward", req{"qkv", qkv, batch * seq * 3 * H}, req{"out", out, batch * seq * H}) ||
		!b.need("AttentionBackward", req{"lse", lse, batch * heads * seq}) {
		return
	}
	if batch*seq*heads*hd == 0 {
		return
	}
	p := newAttnPlan(seq, heads, hd)
	x16 := isBF16(qkv)
	per := p.bwdScratch(x16 || isBF16(out))
	j := &b.jobs.attnBack
	*j = attnBackJob{dx: f32s(dqkv), dO: f32s(dout), o: operandOf(out), lse: f32s(lse), p: p,
		scr: b.scratch(b.threads * per), per: per}
	if x16 {
		j.x16 = bf16s(qkv)
	} else {
		j.x = f32s(qkv)
	}
	b.pool.run(j, batch*heads, 1)
	*j = attnBackJob{}
}

// qkTile writes s[r*lds+j] = scale * sum_c a(r, c) bt[c*ldb+j] for the
// rows r < 4*groups and columns j < n (a multiple of 16), where ap is a
// 4-row interleaved panel (packRows4) of hd columns. Each sum runs over c
// in order, then is scaled.
func qkTile(s []float32, lds int, ap []float32, hd int, bt []float32, ldb, n, groups int, scale float32) {
	if n == 0 || groups == 0 {
		return
	}
	// Bounds for the assembly: the last elements it reads and writes.
	_ = s[(4*groups-1)*lds+n-1]
	_ = ap[4*groups*hd-1]
	_ = bt[(hd-1)*ldb+n-1]
	if archQKTile(s, lds, ap, hd, bt, ldb, n, groups, scale) {
		return
	}
	for r := 0; r < 4*groups; r++ {
		row := s[r*lds : r*lds+n]
		clear(row)
		a := ap[(r/4)*4*hd+r%4:]
		for c := 0; c < hd; c++ {
			av, br := a[c*4], bt[c*ldb:c*ldb+n]
			for k, v := range br {
				row[k] += av * v
			}
		}
		for k := range row {
			row[k] *= scale
		}
	}
}

// axpyRows adds to the rows r < 4*groups of o (row stride ldo) the
// combination o[r*ldo+col] += sum_k c[r*rs+k*ks] x[k*ldx+col] for k < n,
// col < w, in increasing k. The strides of c let one kernel take the
// coefficients from the rows of a tile (rs = ld, ks = 1) or from its
// columns (rs = 1, ks = ld): P V and P^T dO alike.
func axpyRows(o []float32, ldo int, c []float32, rs, ks int, x []float32, ldx, n, w, groups int) {
	if n == 0 || groups == 0 || w == 0 {
		return
	}
	_ = o[(4*groups-1)*ldo+w-1]
	_ = c[(4*groups-1)*rs+(n-1)*ks]
	_ = x[(n-1)*ldx+w-1]
	col := archAxpyRows(o, ldo, c, rs, ks, x, ldx, n, w, groups)
	if col == w {
		return
	}
	for r := 0; r < 4*groups; r++ {
		row := o[r*ldo+col : r*ldo+w]
		for k := 0; k < n; k++ {
			cf, xr := c[r*rs+k*ks], x[k*ldx+col:k*ldx+w]
			for t, v := range xr {
				row[t] += cf * v
			}
		}
	}
}
