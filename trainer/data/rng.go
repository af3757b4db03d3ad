package data

import (
	"math/bits"
	"math/rand/v2"
)

// RNG is the seeded generator behind every random choice of the datasets:
// a PCG whose output Go guarantees stable across releases, with our own
// bounded-integer and shuffle code on top so that batch orders (and
// checkpoints holding an RNG state) survive a Go upgrade. Methods of
// math/rand/v2's Rand carry no such promise.
type RNG struct{ pcg *rand.PCG }

// NewRNG returns a generator for (seed, stream); different streams of one
// seed are independent sequences.
func NewRNG(seed, stream uint64) *RNG { return &RNG{rand.NewPCG(seed, mix(stream))} }

// mix spreads small stream numbers (0, 1, 2...) over the 64-bit space
// (splitmix64's finaliser) so neighbouring streams look unrelated.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// Uint64 returns 64 random bits.
func (r *RNG) Uint64() uint64 { return r.pcg.Uint64() }

// IntN returns a uniform integer in [0, n), n > 0 (Lemire's
// multiply-and-reject method: unbiased, usually one draw).
func (r *RNG) IntN(n int) int {
	if n <= 0 {
		panic("data: RNG.IntN with n <= 0")
	}
	un := uint64(n)
	hi, lo := bits.Mul64(r.pcg.Uint64(), un)
	if lo < un {
		thresh := -un % un
		for lo < thresh {
			hi, lo = bits.Mul64(r.pcg.Uint64(), un)
		}
	}
	return int(hi)
}

// Float64 returns a uniform float in [0, 1) from the top 53 bits.
func (r *RNG) Float64() float64 { return float64(r.pcg.Uint64()>>11) / (1 << 53) }

// Shuffle permutes n elements by Fisher-Yates through swap.
func (r *RNG) Shuffle(n int, swap func(i, j int)) {
	for i := n - 1; i > 0; i-- {
		swap(i, r.IntN(i+1))
	}
}

// Perm returns a random permutation of 0..n-1.
func (r *RNG) Perm(n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	r.Shuffle(n, func(i, j int) { p[i], p[j] = p[j], p[i] })
	return p
}

// MarshalBinary captures the generator state (for checkpoints).
func (r *RNG) MarshalBinary() ([]byte, error) { return r.pcg.MarshalBinary() }

// UnmarshalBinary restores a state captured by MarshalBinary.
func (r *RNG) UnmarshalBinary(b []byte) error {
	if r.pcg == nil {
		r.pcg = rand.NewPCG(0, 0)
	}
	return r.pcg.UnmarshalBinary(b)
}
