// Package data reads and batches datasets in the reference layout of the
// Tiny Recursive Model (docs/data.md): dataset.json and identifiers.json,
// and per set the NumPy .npy v1 files inputs, labels, puzzle_identifiers,
// puzzle_indices and group_indices.
//
// Open validates a split of one or more dataset directories and
// memory-maps the token arrays; Dataset.Train yields training batches in
// the seeded order of docs/data.md#training-order (resumable through TrainState) and
// Dataset.Test yields the sequential test order, both sharded across
// replicas. Check reads every token of a dataset. The builders live in
// package build, the ARC augmentations and scoring in package arc.
package data
