package trainer

import "math"

// LR is the learning rate at step s (counting from 1) of total steps:
// linear warm-up over the first `warmup` steps, then a half cosine from
// base down to base*minRatio. The reference computes it
// in float64 exactly this way for both optimizers.
func LR(base float64, s, warmup, total int, minRatio float64) float64 {
	if s < warmup {
		return base * float64(s) / float64(max(1, warmup))
	}
	progress := float64(s-warmup) / float64(max(1, total-warmup))
	return base * (minRatio + math.Max(0, (1-minRatio)*0.5*(1+math.Cos(math.Pi*progress))))
}

// TotalSteps is floor(epochs * total_groups * mean_puzzle_examples /
// global_batch_size), the reference's count of optimizer steps.
func TotalSteps(epochs int, totalGroups int, meanPuzzleExamples float64, globalBatch int) int {
	return int(float64(epochs) * float64(totalGroups) * meanPuzzleExamples / float64(globalBatch))
}
