package gemm

// Narrow products computed transposed. The micro-kernel's tile is mr rows
// by nr columns (14 x 32 for the AVX-512 kernels), so a product with a
// short, ragged N wastes much of its last B panel: N = 97 is three full
// panels and one of which a single column is used (the 16-column edge
// kernel still computes 16). Computing C^T = op(B)^T op(A)^T instead puts
// that side along the kernel's rows, where 97 = 7*14 - 1 wastes one row
// in 98. Each element of C is still the same dot product: the kernels
// compute sum over k of a*b with the products in the same k order, K
// blocks and pairs of k steps, and a product is the same whichever
// operand it reads first (a*b = b*a exactly, and so are fma(a, b, c) and
// VDPBF16PS's exact products), so the result is, bit for bit, that of
// the direct order. Only the store changes: each tile of C^T is computed
// into the worker's scratch tile and written into C transposed (see
// computeTileT), with C's elements first loaded into the tile, transposed,
// when the kernel is to add to them, so the kernel's epilogue (t =
// alpha*acc; C = beta*C + t) is applied to the same values as before.
// The choice depends only on the shape and the kernel, never on the
// thread count, so results stay deterministic.
//
// NaNs: where two NaNs meet in one element (a NaN in A and one in B at
// the same k, or a NaN sum merged into a NaN in C), the instruction that
// combines them returns the one in its first operand, and the transposed
// product reads A and B, and C and the tile, in other operand positions;
// such an element is still a NaN, but its sign and payload may differ
// (as they already may between a full tile, merged by the kernel, and a
// partial one, merged in Go). Every other value, infinities and signed
// zeros included, is bit for bit the same.
//
// On the Sudoku MLP's token-mixing products (N = 97 against M = 8192, or
// M = 1024 with k = 8192) the transposed order ran 6% to 50% faster, on
// one thread or two. On one thread it relies on the N cut (plan.setup).

// useSwap enables computing narrow products transposed (see swapped);
// tests turn it off to compare with the direct order.
var useSwap = true

// Whether a product is computed transposed is decided by the kernel time
// of its tiles (tileCost) in either orientation.
const (
	// edgeCost is the time of an edge tile (the first 16 columns) in
	// full tiles: half the multiply-adds, with one B load per k step
	// against two.
	edgeCost = 0.55
	// swapRatio is how much less tile time the transposed product must
	// take: writing each tile transposed (and loading it transposed, when
	// the kernel adds to C) costs a few hundred cycles per tile and K
	// block against several thousand for its k steps.
	swapRatio = 0.9
	// minSwapK is the shortest k computed transposed: below it the
	// transposed store is no longer small against a tile's k steps.
	minSwapK = 128
)

// tileCost returns the kernel time of an m x n product per k step, in
// full tiles: ceil(m/mr) rows of tiles, each with n/nr full tiles and,
// for a partial last panel, an edge tile (where the kernel has one and
// the panel is narrow enough) or a full one.
func tileCost(kern *kernel, m, n int) float64 {
	w := float64(n / kern.nr)
	switch rem := n % kern.nr; {
	case rem == 0:
	case rem <= kern.edgeN:
		w += edgeCost
	default:
		w++
	}
	return float64(ceilDiv(m, kern.mr)) * w
}

// swapped returns the transposed form of p, C^T = op(B)^T op(A)^T into
// the same C (transC), and true, when its tiles take clearly less kernel
// time than p's (see tileCost); otherwise it returns false. The
// transposed store needs the AVX-512 transpose (packTransAVX512) and a
// tile of at most 16 rows.
func (p *problem) swapped(kern *kernel) (problem, bool) {
	if !useSwap || !kern.vecPack || kern.mr > 16 || p.transC || p.k < minSwapK || p.alpha == 0 || p.m == 0 || p.n == 0 {
		return problem{}, false
	}
	if tileCost(kern, p.n, p.m) > swapRatio*tileCost(kern, p.m, p.n) {
		return problem{}, false
	}
	q := *p
	// op(B)^T is B read as op(A) with the opposite transpose flag: a
	// k x n B is an A of m' = n rows stored transposed.
	q.transA, q.transB = !p.transB, !p.transA
	q.m, q.n = p.n, p.m
	q.a, q.b, q.a16, q.b16 = p.b, p.a, p.b16, p.a16
	q.lda, q.ldb = p.ldb, p.lda
	q.transC = true
	return q, true
}

// tileTSize is the room a workspace's tile keeps after the mr x nr tile
// for its transpose: nr rows of 16 floats (mr <= 16).
func tileTSize(kern *kernel) int { return kern.nr * 16 }

// computeTileT computes the mv x nv tile at (i0, j0) of a transposed
// problem (p.transC) into the scratch tile and stores it into C
// transposed: element (i, j) of the tile goes to c[(j0+j)*ldc+i0+i].
// With beta != 0 the tile is first loaded with those elements of C, so
// that the kernel's own epilogue merges them, as it does when it stores
// into C directly. kernelFor picks the kernel call that the direct order
// would make for this tile.
func (p *problem) computeTileT(kern *kernel, a *float32, sa int, b *float32, sb int, tile []float32, i0, j0, mv, nv, kcb int, beta float32) {
	nr := kern.nr
	o := j0*p.ldc + i0
	_ = p.c[(j0+nv-1)*p.ldc+i0+mv-1]
	if beta != 0 {
		// tile[i*nr+j] = C[(j0+j)*ldc+i0+i], at most 16 rows of C a call.
		for h := 0; h < nv; h += 16 {
			r := min(16, nv-h)
			packTransAVX512(&tile[h], &p.c[o+h*p.ldc], p.ldc, r, r, mv, nr, 0)
		}
	}
	p.tileKernel(kern, a, sa, b, sb, tile, nv, kcb, beta)
	packTransAVX512(&p.c[o], &tile[0], nr, mv, mv, nv, p.ldc, 0)
}

// tileKernel runs the kernel for one tile of B panel b (k steps sb bytes
// apart) against A panel a (sa apart) into the scratch tile (rows nr
// apart): the strided kernel for a panel read in place, the edge kernel
// when no more than its columns are used, the full one otherwise, as
// computeRowF32 chooses them.
func (p *problem) tileKernel(kern *kernel, a *float32, sa int, b *float32, sb int, tile []float32, nv, kcb int, beta float32) {
	nr := kern.nr
	switch {
	case sa != kern.ms*4 || sb != nr*4:
		kern.strided(kcb, a, b, &tile[0], nr, p.alpha, beta, sa, sb)
	case nv <= kern.edgeN:
		kern.edge(kcb, a, b, &tile[0], nr, p.alpha, beta)
	default:
		kern.fn(kcb, a, b, &tile[0], nr, p.alpha, beta)
	}
}

// storeTileT16 rounds the mv x nv tile of a transposed problem whose only
// K block has been computed into the scratch tile (beta 0) into the bf16
// C, transposed, merging with beta as roundTile does: the tile is first
// transposed into the room after it, then rounded row by row.
func (p *problem) storeTileT16(kern *kernel, tile []float32, i0, j0, mv, nv int) {
	tt := tile[kern.mr*kern.nr:][:tileTSize(kern)]
	packTransAVX512(&tt[0], &tile[0], kern.nr, mv, mv, nv, 16, 0)
	roundTile(p.c16[j0*p.ldc+i0:], p.ldc, tt, 16, nv, mv, p.beta)
}
