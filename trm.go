// Package trm runs trained Tiny Recursive Models from Go programs: it
// loads a model (a checkpoint directory written by trm-train, a
// model.safetensors with its architecture, or a reference PyTorch .pt),
// solves batches and streams of puzzles with the answer after every
// supervision step, and hands tensors to and from other Go libraries as
// gorgonia.org/tensor values.
//
// # Loading
//
// Load reads the weights once into host memory; a Model is immutable and
// may back any number of Solvers. A checkpoint directory is verified
// against its manifest before anything is read from it.
//
// # Solving
//
// A Solver owns one engine model with a batch of B slots, fixed when it
// is built (the engine allocates its buffers for B once). Requests from
// any number of goroutines go through one batching loop that owns the
// model: their puzzles queue up and each free slot takes the next one,
// so concurrent callers share batches instead of waiting for each other
// one by one. Slots without a puzzle are padded (token 0, puzzle
// identifier 0) and their outputs discarded: a step costs the same
// whether 1 or B slots are busy, so B is the largest batch worth paying
// for at every step.
//
// Each slot is refilled as soon as its puzzle halts (the engine's carry
// resets a halted slot with the next input, as in training), so a stream
// of puzzles pays only for the supervision steps each one needs. By
// default a puzzle halts at the first step where its halting head fires
// (q_halt > 0) or at halt_max_steps. Request.FullSteps runs every puzzle
// for halt_max_steps steps and answers with the last step's predictions:
// the reference's evaluation, whose answers give trm-train eval's
// numbers.
//
// # Devices
//
// Solvers run on the CPU backend unless SolverOptions.Backend names
// another engine.Backend: a program built with the cuda tag in a
// checkout (where make builds the kernels' fatbin) may pass a backend
// from package cuda. This package itself has no CUDA dependency, so it
// builds everywhere with go get.
//
// # Puzzles
//
// Model.Codec returns the puzzle codec of the model's shape (package
// puzzle): Sudoku and maze strings, ARC grids, or raw tokens. ARC tasks
// are put to a model in augmented versions and voted on with
// puzzle.ARCQueries and puzzle.NewARCVote.
package trm
