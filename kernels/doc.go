// Package kernels holds the CUDA C sources of the engine's GPU backend, one
// op family per .cu file, each kernel with its FLOPs and bytes in a comment.
// `make kernels` compiles them (kernels/all.cu) into trm.fatbin; only the
// cuda build (go build -tags cuda) embeds it, so the default build needs no
// CUDA toolkit.
package kernels
