package data

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkTrainNextARC times assembling one replica's batch of 768 ARC
// rows (seq 900, uint8 on disk) in training order: the per-step data cost
// the trainer pays.
func BenchmarkTrainNextARC(b *testing.B) {
	dir := b.TempDir()
	sd := filepath.Join(dir, "train")
	os.MkdirAll(sd, 0o755)
	const examples, L = 4000, 900
	in := make([]byte, examples*L)
	for i := range in {
		in[i] = byte(i % 12)
	}
	ia, _ := NewArray(Uint8, []int{examples, L}, in)
	var pidx, gidx, ids []int32
	pidx, gidx = []int32{0}, []int32{0}
	for p := 0; p < examples/4; p++ {
		pidx = append(pidx, int32(4*(p+1)))
		ids = append(ids, int32(p+1))
		gidx = append(gidx, int32(p+1))
	}
	WriteSet(sd, "all", SetArrays{ia, ia, Int32Array(ids), Int32Array(pidx), Int32Array(gidx)})
	zero := 0
	WriteMetadata(sd, Metadata{IgnoreLabelID: &zero, VocabSize: 12, SeqLen: L, NumPuzzleIdentifiers: len(ids) + 1,
		TotalGroups: len(ids), MeanPuzzleExamples: 4, TotalPuzzles: len(ids), Sets: []string{"all"}})
	names := make([]string, len(ids)+1)
	WriteIdentifiers(dir, names)
	ds, err := Open("train", dir)
	if err != nil {
		b.Fatal(err)
	}
	defer ds.Close()
	it, _ := ds.Train(TrainConfig{Sharding: Sharding{GlobalBatchSize: 768}, EpochsPerPass: 1 << 20})
	var batch Batch
	b.SetBytes(768 * L)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := it.Next(&batch); err != nil {
			b.Fatal(err)
		}
	}
}
