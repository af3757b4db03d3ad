// The one translation unit `make kernels` compiles into trm.fatbin: every
// op family of the engine's CUDA backend. Each included file also compiles
// on its own (nvcc -c family.cu) for quick register and spill reports.
#include "elementwise.cu"
#include "rmsnorm.cu"
#include "swiglu.cu"
#include "rope.cu"
#include "attention.cu"
#include "embed.cu"
#include "act.cu"
#include "loss.cu"
#include "optim.cu"
