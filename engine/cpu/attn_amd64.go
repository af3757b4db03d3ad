package cpu

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
