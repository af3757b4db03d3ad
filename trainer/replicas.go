package trainer

import (
	"fmt"
	"math"
)

// ErrReplicasDiverged is wrapped by CheckReplicas's error.
var ErrReplicasDiverged = fmt.Errorf("data-parallel replicas diverged")

// CheckReplicas is a collective: every replica computes a checksum of its
// weights (the sums of squares of the trained buffer and of the puzzle
// table, on its backend), receives rank 0's, and the group counts the
// replicas that differ. Replicas apply bitwise-identical updates (the
// reduced gradients and gathered rows are the same bits everywhere), so
// any difference is a bug or a fault (a corrupted device, a replica that
// loaded other weights): every replica then returns the same error,
// naming how many differ, before the difference grows into silently
// unequal models. Nil for a single replica.
func (t *Trainer) CheckReplicas() error {
	if t.comm == nil {
		return nil
	}
	be := t.Model.Backend()
	params, _, puzzle, _ := t.Model.ParamBuffers()
	// metricBuf (F64, numMetrics long) is free between steps: its first
	// two elements carry the checksums.
	sums := be.Slice(t.metricBuf, 0, 2)
	be.Upload(sums, []float64{0, 0})
	be.SumSquares(be.Slice(t.metricBuf, 0, 1), params)
	if puzzle != nil && puzzle.Len() > 0 {
		be.SumSquares(be.Slice(t.metricBuf, 1, 1), puzzle)
	}
	mine := make([]float64, 2)
	be.Download(mine, sums)
	if err := be.Sync(); err != nil {
		return err
	}
	if err := t.comm.Broadcast(be, sums, 0); err != nil {
		return fmt.Errorf("replica check at step %d: %w", t.Step, err)
	}
	root := make([]float64, 2)
	be.Download(root, sums)
	if err := be.Sync(); err != nil {
		return err
	}
	differs := int32(0)
	if !sameBits(mine[0], root[0]) || !sameBits(mine[1], root[1]) {
		differs = 1
	}
	be.Upload(t.flag, []int32{differs})
	if err := t.comm.AllReduceSum(be, t.flag); err != nil {
		return fmt.Errorf("replica check at step %d: %w", t.Step, err)
	}
	n := []int32{0}
	be.Download(n, t.flag)
	if err := be.Sync(); err != nil {
		return err
	}
	if n[0] == 0 {
		return nil
	}
	return fmt.Errorf("%w at step %d: %d of %d replicas hold other weights than rank 0 (this is rank %d: sum of squares of the weights %.17g, puzzle table %.17g; rank 0: %.17g, %.17g; relative difference %.3g)",
		ErrReplicasDiverged, t.Step, n[0], t.comm.Size(), t.comm.Rank(), mine[0], mine[1], root[0], root[1], relDiff(mine, root))
}

// sameBits compares exactly (NaN equal to NaN: a replica that went
// non-finite everywhere has not diverged from the others).
func sameBits(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) }

func relDiff(a, b []float64) float64 {
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(a[i]-b[i])/math.Max(math.Abs(b[i]), 1e-300))
	}
	return d
}
