package costmodel

import (
	"fmt"
	"io"
	"strings"
)

// WriteTable prints the report as Markdown: a header with the model, GPU
// and assumptions, the per-kernel table with its totals, the summary (step
// time, MFU, the share of time outside the GEMMs) and the GEMM shapes.
func (r *Report) WriteTable(w io.Writer) error {
	var b strings.Builder
	a := r.Arch
	mix := "attention"
	if a.MLPT {
		mix = "mlp_t"
	}
	fmt.Fprintf(&b, "%s, batch %d, on one %s\n\n", r.What, a.BatchSize, r.GPU.Name)
	fmt.Fprintf(&b, "- model: %s, hidden %d, %d layers, H_cycles %d, L_cycles %d, sequence %d (+%d puzzle positions), vocabulary %d, %d heads\n",
		mix, a.HiddenSize, a.LLayers, a.HCycles, a.LCycles, a.SeqLen, a.PuzzleLen(), a.VocabSize, a.NumHeads)
	fmt.Fprintf(&b, "- GPU: bf16 tensor %.1f TFLOP/s dense, fp32 CUDA cores %.1f TFLOP/s, memory %.2f TB/s, PCIe %.0f GB/s per direction\n",
		r.GPU.TensorBF16/1e12, r.GPU.FP32/1e12, r.GPU.HBM/1e12, r.GPU.PCIe/1e9)
	mode := "CUDA graphs"
	if !r.Graphs {
		mode = "eager launches"
	}
	fmt.Fprintf(&b, "- %s: %.1f us per launch, %.0f us per host synchronisation\n\n", mode, r.Overheads.Launch*1e6, r.Overheads.Sync*1e6)

	b.WriteString("| kernel | unit | calls | GFLOP | GB | ms | share | bound |\n|---|---|--:|--:|--:|--:|--:|---|\n")
	for _, k := range r.Kernels {
		fmt.Fprintf(&b, "| %s | %s | %d | %.2f | %.3f | %.3f | %.1f%% | %s |\n", k.Kernel, k.Unit, k.Calls, k.FLOPs/1e9, k.Bytes/1e9, k.Time*1e3, 100*k.Share, k.Bound())
	}
	if r.Syncs > 0 {
		fmt.Fprintf(&b, "| host synchronisation | | %d | | | %.3f | %.1f%% | launch |\n", r.Syncs, r.SyncTime*1e3, 100*r.SyncTime/r.Time)
	}
	fmt.Fprintf(&b, "| **total** | | %d | %.1f | %.2f | %.3f | 100%% | |\n\n", r.Calls, r.FLOPs/1e9, (r.Bytes+r.HostBytes)/1e9, r.Time*1e3)

	fmt.Fprintf(&b, "- predicted step: %.2f ms (bf16 GEMMs %.2f ms, attention %.2f ms, other kernels and copies %.2f ms, synchronisations %.2f ms; launch overheads %.2f ms of these)\n",
		r.Time*1e3, r.GemmTime*1e3, r.AttnTime*1e3, r.OtherTime*1e3, r.SyncTime*1e3, r.OverheadTime*1e3)
	fmt.Fprintf(&b, "- model FLOPs: %.1f GFLOP (GEMMs %.1f, attention %.1f); predicted MFU %.1f%% of the bf16 tensor peak\n",
		r.ModelFLOPs/1e9, r.GemmFLOPs/1e9, r.AttnFLOPs/1e9, 100*r.MFU)
	fmt.Fprintf(&b, "- time outside the GEMMs: %.1f%%; outside the GEMMs and attention (what fusing the other kernels can win): %.1f%%\n",
		100*r.OutsideGEMMShare(), 100*r.FusableShare())
	fits := "fits"
	if r.DeviceBytes > r.GPU.Memory {
		fits = "does not fit"
	}
	fmt.Fprintf(&b, "- device memory of the engine's buffers: %.1f GB (%s in %.0f GB)\n\n", r.DeviceBytes/1e9, fits, r.GPU.Memory/1e9)

	b.WriteString("| GEMM M x N x K | batch | op | unit | calls | GFLOP | ms | share | bound |\n|---|--:|---|---|--:|--:|--:|--:|---|\n")
	for _, g := range r.Gemms {
		op := "N"
		if g.TransA {
			op = "T"
		}
		if g.TransB {
			op += "T"
		} else {
			op += "N"
		}
		if g.Accumulate {
			op += " +C"
		}
		fmt.Fprintf(&b, "| %d x %d x %d | %d | %s | %s | %d | %.2f | %.3f | %.1f%% | %s |\n", g.M, g.N, g.K, g.Batch, op, g.Unit, g.Calls, g.FLOPs/1e9, g.Time*1e3, 100*g.Share, g.Bound())
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteSummary prints one Markdown row per report: label, GPU, per-GPU
// batch, predicted step time, examples per second, MFU, the shares of
// time outside the GEMMs and outside GEMMs and attention, and the device
// memory of the engine's buffers.
func WriteSummary(w io.Writer, reps []*Report) error {
	var b strings.Builder
	b.WriteString("| config | GPU | batch per GPU | predicted ms/step | examples/s per GPU | predicted MFU | outside GEMMs | outside GEMMs and attention | memory GB |\n")
	b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range reps {
		mem := fmt.Sprintf("%.1f", r.DeviceBytes/1e9)
		if r.DeviceBytes > r.GPU.Memory {
			mem += fmt.Sprintf(" (over %.0f)", r.GPU.Memory/1e9)
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %.1f | %.0f | %.1f%% | %.1f%% | %.1f%% | %s |\n", r.Label, r.GPU.Name, r.Arch.BatchSize, r.Time*1e3,
			float64(r.Arch.BatchSize)/r.Time, 100*r.MFU, 100*r.OutsideGEMMShare(), 100*r.FusableShare(), mem)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
