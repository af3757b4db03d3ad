package engine

// MatmulFLOPs counts the matrix-product FLOPs (2 per multiply-add) of one
// ACT step: every GEMM and the two attention products, forward through
// all H_cycles x (L_cycles + 1) network calls and the heads, plus, with
// backward, the two products per GEMM (input and weight gradients) and the
// four attention products of the differentiated outer cycle. Elementwise
// work is not counted: this is the figure to divide by time for GFLOP/s.
func MatmulFLOPs(c Config, backward bool) float64 {
	B, L, S, H, V := float64(c.BatchSize), float64(c.SeqLen), float64(c.SeqTotal()), float64(c.HiddenSize), float64(c.VocabSize)
	I := float64(c.Inter(c.HiddenSize))
	BS := B * S
	mlp := 2*BS*H*2*I + 2*BS*I*H
	var mix, attn float64
	if c.MLPT {
		It := float64(c.Inter(c.SeqTotal()))
		mix = 2*B*H*S*2*It + 2*B*H*It*S
	} else {
		mix = 2*BS*H*3*H + 2*BS*H*H
		attn = 4 * B * S * S * H // q k^T and p v over all heads
	}
	block := mlp + mix + attn
	calls := float64(c.HCycles * (c.LCycles + 1))
	layers := float64(c.LLayers)
	heads := 2*B*L*H*V + 2*B*H*2
	total := calls*layers*block + heads
	if backward {
		gradCalls := float64(c.LCycles + 1)
		total += gradCalls * layers * (2*(mlp+mix) + 2*attn)
		total += 2 * heads
	}
	return total
}
