package cpu

import "unsafe"

// The attention kernels' vector variants (attn_amd64.s); the Go wrappers
// in attention.go check the bounds and do what is left.

// archQKTile runs qkTile's vector variant and reports whether there was
// one (n is a multiple of 16, groups and hd positive).
func archQKTile(s []float32, lds int, ap []float32, hd int, bt []float32, ldb, n, groups int, scale float32) bool {
	switch simdLevel {
	case simdAVX512:
		qkTile512(&s[0], lds, &ap[0], hd, &bt[0], ldb, n, groups, scale)
	case simdAVX2:
		qkTile256(&s[0], lds, &ap[0], hd, &bt[0], ldb, n, groups, scale)
	default:
		return false
	}
	return true
}

// archAxpyRows runs axpyRows' vector variant on the widest column chunks
// it has (64, 32 and 16 columns for AVX-512, 16 and 8 for AVX2) and
// returns the number of columns done; the caller finishes the rest.
func archAxpyRows(o []float32, ldo int, c []float32, rs, ks int, x []float32, ldx, n, w, groups int) int {
	col := 0
	switch simdLevel {
	case simdAVX512:
		for ; col+64 <= w; col += 64 {
			axpyRows512(&o[col], ldo, &c[0], rs, ks, &x[col], ldx, n, groups, 4)
		}
		if col+32 <= w {
			axpyRows512(&o[col], ldo, &c[0], rs, ks, &x[col], ldx, n, groups, 2)
			col += 32
		}
		if col+16 <= w {
			axpyRows512(&o[col], ldo, &c[0], rs, ks, &x[col], ldx, n, groups, 1)
			col += 16
		}
	case simdAVX2:
		for ; col+16 <= w; col += 16 {
			axpyRows256(&o[col], ldo, &c[0], rs, ks, &x[col], ldx, n, groups, 2)
		}
		if col+8 <= w {
			axpyRows256(&o[col], ldo, &c[0], rs, ks, &x[col], ldx, n, groups, 1)
			col += 8
		}
	}
	return col
}

// qkTile512 is qkTile for AVX-512: column chunks of 32 (then one of 16),
// each over all row groups, 4 x 32 accumulators held in 8 registers.
//
//go:noescape
func qkTile512(s *float32, lds int, ap *float32, hd int, bt *float32, ldb, n, groups int, scale float32)

// qkTile256 is qkTile for AVX2+FMA: column chunks of 16 (then one of 8).
//
//go:noescape
func qkTile256(s *float32, lds int, ap *float32, hd int, bt *float32, ldb, n, groups int, scale float32)

// axpyRows512 is axpyRows for AVX-512 on 16*nv columns (nv 1, 2 or 4),
// the 4 x 16nv accumulators held in registers over all k.
//
//go:noescape
func axpyRows512(o *float32, ldo int, c *float32, rs, ks int, x *float32, ldx, n, groups, nv int)

// axpyRows256 is axpyRows for AVX2+FMA on 8*nv columns (nv 1 or 2).
//
//go:noescape
func axpyRows256(o *float32, ldo int, c *float32, rs, ks int, x *float32, ldx, n, groups, nv int)

// archPack4 runs packRows4's vector variant on one group of 4 full rows
// and returns the number of columns done (a multiple of the width).
func archPack4(blk, src []float32, ld, hd int) int {
	k := vecLen(hd)
	if k == 0 {
		return 0
	}
	_ = src[3*ld+k-1]
	_ = blk[4*k-1]
	if simdLevel == simdAVX512 {
		pack4x512(&blk[0], &src[0], ld, k)
	} else {
		pack4x256(&blk[0], &src[0], ld, k)
	}
	return k
}

// pack4x512 and pack4x256 write ap[c*4+r] = src[r*ld+c] for r < 4 and
// c < n, a positive multiple of 16 (8).
//
//go:noescape
func pack4x512(ap, src *float32, ld, n int)

//go:noescape
func pack4x256(ap, src *float32, ld, n int)

// prefetch asks for the cache lines of rows of n floats, ld apart,
// starting at x[0]: a head's rows are 256 bytes every few KB, a pattern
// the hardware prefetchers do not follow, so a unit fetches the next
// unit's rows while it computes.
func prefetch(x []float32, ld, rows, n int) {
	if rows <= 0 || n <= 0 {
		return
	}
	_ = x[(rows-1)*ld+n-1]
	prefetchRows(&x[0], ld, rows, (n*4+63)/64+1)
}

// prefetch16 is prefetch for rows of n bf16 elements, ld apart, starting
// at x[0] (a BF16 qkv's or out's rows). prefetchRows steps in float32
// rows, so an even ld is handed over halved and an odd one row by row.
func prefetch16(x []uint16, ld, rows, n int) {
	if rows <= 0 || n < 2 {
		return
	}
	_ = x[(rows-1)*ld+n-1]
	lines := (n*2+63)/64 + 1
	if ld%2 == 0 {
		prefetchRows((*float32)(unsafe.Pointer(&x[0])), ld/2, rows, lines)
		return
	}
	for r := 0; r < rows; r++ {
		prefetchRows((*float32)(unsafe.Pointer(&x[r*ld])), 0, 1, lines)
	}
}

//go:noescape
func prefetchRows(p *float32, ld, rows, lines int)
