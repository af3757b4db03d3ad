//go:build cuda

package kernels

import _ "embed"

// Fatbin is kernels/trm.fatbin: cubins for sm_80 and sm_90 plus compute_90
// PTX, which the driver JIT-compiles for newer GPUs. The cuda backend loads
// it unless TRM_CUDA_FATBIN names another file (e.g. one built on the GPU
// machine for sm_90a). Run `make kernels` before `go build -tags cuda`:
// go:embed fails the build, naming the missing file, when it is absent.
//
//go:embed trm.fatbin
var Fatbin []byte
