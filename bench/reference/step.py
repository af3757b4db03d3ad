#!/usr/bin/env python3
"""Times one training step of the reference PyTorch TRM on the step
benchmark's Sudoku shapes (bench/step_test.go, StepConfigs).

    python3 bench/reference/step.py REFERENCE_DIR --arch mlp --dtype bfloat16

REFERENCE_DIR is a checkout of the reference model code (the directory that
holds models/recursive_reasoning/trm.py). Nothing of it is copied here: its
model and loss head are imported from that directory.

A step is what BenchmarkStep in bench/step_test.go times: a fresh initial
carry (every slot halted, so every slot restarts and runs the full
recursion), one forward of the ACT wrapper under the reference's loss head
(ACTLossHead, stablemax cross-entropy) in train mode, and the backward of
(1 / batch) * loss, as the reference's pretrain.py train_batch does. No
optimizer step. The gradients are cleared between steps outside the timing
(the optimizer's zero_grad). One untimed warm-up step comes first.

The per-step wall and CPU seconds go to stderr; the last line on stdout is
one JSON object with them (bench/reference/compare reads it).

Debian's python3-torch is 1.13, older than the reference code expects; the
shims installed by install_shims() fill the gaps, each only where torch or
the environment lacks the name (see bench/reference/README.md).
"""

import argparse
import json
import math
import os
import sys
import time
import types


def permutation(pattern):
    """The axis permutation of an einops pattern that only reorders named
    axes ("B S H D -> B H S D" is (0, 2, 1, 3)). Any other pattern
    (grouping, new or dropped axes, ellipsis) raises ValueError: the
    reference only transposes, and the minimal einops stand-in supports
    nothing else rather than guess."""
    if pattern.count("->") != 1:
        raise ValueError(f"einops pattern {pattern!r}: want one '->'")
    left, right = (side.split() for side in pattern.split("->"))
    for side in (left, right):
        for name in side:
            if not name.isidentifier():
                raise ValueError(f"einops pattern {pattern!r}: axis {name!r} is not a plain name "
                                 "(only reordering is supported)")
        if len(set(side)) != len(side):
            raise ValueError(f"einops pattern {pattern!r}: repeated axis")
    if sorted(left) != sorted(right):
        raise ValueError(f"einops pattern {pattern!r}: both sides must name the same axes")
    return tuple(left.index(name) for name in right)


def install_shims(torch):
    """Installs what torch 1.13 and Debian lack for the reference code, each
    only when missing, and returns the names of those installed."""
    installed = []
    import torch.nn.functional as F
    from torch import nn

    # einops (not packaged in Debian): the reference calls only
    # einops.rearrange, with pure axis reorderings, for which einops
    # returns a permuted view; so does this.
    try:
        import einops  # noqa: F401
    except ImportError:
        mod = types.ModuleType("einops")

        def rearrange(tensor, pattern):
            return tensor.permute(*permutation(pattern))

        mod.rearrange = rearrange
        sys.modules["einops"] = mod
        installed.append("einops.rearrange (permute)")

    # scaled_dot_product_attention (torch >= 2.0). The two products run in
    # the input dtype (in bf16 oneDNN accumulates in fp32 and rounds the
    # result to bf16), the softmax in fp32, its probabilities rounded to the
    # input dtype before the product with V: the precision of a fused
    # attention kernel (torch 2's CPU flash-attention kernel and
    # FlashAttention keep the softmax in fp32 and feed bf16 probabilities to
    # the second product), with the scores themselves rounded once to the
    # input dtype in between. The output has the memory layout those
    # kernels return, [B, S, H, D] seen as [B, H, S, D]: the reference's
    # Attention rearranges it back and calls .view on it, which only that
    # layout allows.
    if not hasattr(F, "scaled_dot_product_attention"):
        def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0,
                                         is_causal=False, scale=None):
            if attn_mask is not None or dropout_p != 0.0 or is_causal:
                raise NotImplementedError("scaled_dot_product_attention stand-in: only "
                                          "attn_mask=None, dropout_p=0, is_causal=False")
            if scale is None:
                scale = 1.0 / math.sqrt(query.shape[-1])
            scores = torch.matmul(query, key.transpose(-2, -1)) * scale
            probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
            out = torch.matmul(probs, value)
            return out.transpose(1, 2).contiguous().transpose(1, 2)

        F.scaled_dot_product_attention = scaled_dot_product_attention
        installed.append("torch.nn.functional.scaled_dot_product_attention "
                         "(matmul in the input dtype, softmax in fp32)")

    # torch.nn.Buffer (torch >= 2.5): a tensor that a module registers as a
    # buffer when assigned to an attribute. Here a tensor marked so, and a
    # Module.__setattr__ that registers it with its persistence.
    if not hasattr(nn, "Buffer"):
        def buffer(data=None, *, persistent=True):
            if data is None:
                data = torch.empty(0)
            t = data.detach().requires_grad_(data.requires_grad)
            t._bench_buffer_persistent = persistent
            return t

        plain_setattr = nn.Module.__setattr__

        def module_setattr(self, name, value):
            persistent = getattr(value, "_bench_buffer_persistent", None)
            if isinstance(value, torch.Tensor) and persistent is not None and name not in self._buffers:
                del value._bench_buffer_persistent
                self.register_buffer(name, value, persistent=persistent)
                return
            plain_setattr(self, name, value)

        nn.Buffer = buffer
        nn.Module.__setattr__ = module_setattr
        installed.append("torch.nn.Buffer (register_buffer)")

    # @torch.no_grad without parentheses (torch >= 2.0) decorates the
    # reference's sparse-embedding optimizer step: a no_grad that, given a
    # function, returns it decorated by no_grad().
    try:
        torch.no_grad(lambda: None)
    except TypeError:
        plain_no_grad = torch.no_grad

        class no_grad(plain_no_grad):
            def __new__(cls, func=None):
                if func is None:
                    return super().__new__(cls)
                return plain_no_grad()(func)

        torch.no_grad = no_grad
        installed.append("torch.no_grad as a bare decorator")

    # torch.optim.optimizer.ParamsT (torch >= 2.2): only a type annotation
    # in the reference's sparse-embedding optimizer, which the step does
    # not use.
    import torch.optim.optimizer as optimizer
    if not hasattr(optimizer, "ParamsT"):
        optimizer.ParamsT = object
        installed.append("torch.optim.optimizer.ParamsT (annotation)")
    return installed


# The step benchmark's two Sudoku configurations (bench/step_test.go,
# StepConfigs: sudoku-mlp-B16 and sudoku-att-B16) in the reference's keys;
# the rest are the reference's config/arch/trm.yaml.
ARCHS = {
    "mlp": dict(mlp_t=True, pos_encodings="none"),
    "att": dict(mlp_t=False, pos_encodings="rope"),
}


def model_config(arch, dtype, batch):
    cfg = dict(
        batch_size=batch,
        seq_len=81,
        vocab_size=11,
        num_puzzle_identifiers=1,
        puzzle_emb_ndim=512,
        puzzle_emb_len=16,
        H_cycles=3,
        L_cycles=6,
        H_layers=0,
        L_layers=2,
        hidden_size=512,
        expansion=4,
        num_heads=8,
        halt_max_steps=16,
        halt_exploration_prob=0.1,
        forward_dtype=dtype,
        no_ACT_continue=True,
        causal=False,
    )
    cfg.update(ARCHS[arch])
    return cfg


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("reference_dir", help="checkout of the reference model code "
                   "(holds models/recursive_reasoning/trm.py)")
    p.add_argument("--arch", choices=sorted(ARCHS), required=True,
                   help="mlp: Sudoku MLP-T; att: Sudoku attention (RoPE)")
    p.add_argument("--dtype", choices=["bfloat16", "float32"], default="bfloat16",
                   help="the reference's forward_dtype (default bfloat16)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--steps", type=int, default=3, help="timed steps (default 3)")
    p.add_argument("--batch", type=int, default=16, help="batch size (default 16)")
    p.add_argument("--seed", type=int, default=1, help="seed of the weights and the batch")
    args = p.parse_args(argv)
    if args.threads < 1 or args.steps < 1 or args.batch < 1:
        p.error("--threads, --steps and --batch must be at least 1")
    trm_py = os.path.join(args.reference_dir, "models", "recursive_reasoning", "trm.py")
    if not os.path.isfile(trm_py):
        p.error(f"{args.reference_dir}: no models/recursive_reasoning/trm.py "
                "(want a checkout of the reference model code)")

    try:
        import torch
    except ImportError:
        sys.exit(f"{sys.executable}: cannot import torch (apt-get install python3-torch python3-pydantic)")

    shims = install_shims(torch)
    sys.path.insert(0, os.path.abspath(args.reference_dir))
    from models.recursive_reasoning.trm import TinyRecursiveReasoningModel_ACTV1
    from models.losses import ACTLossHead

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cfg = model_config(args.arch, args.dtype, args.batch)
    model = ACTLossHead(TinyRecursiveReasoningModel_ACTV1(cfg), loss_type="stablemax_cross_entropy")
    model.train()

    B, L, V = args.batch, cfg["seq_len"], cfg["vocab_size"]
    g = torch.Generator().manual_seed(args.seed)
    batch = {
        "inputs": torch.randint(1, V, (B, L), generator=g, dtype=torch.int32),
        "labels": torch.randint(1, V, (B, L), generator=g, dtype=torch.int32),
        # int64, not the reference dataset's int32: torch 1.13 indexes
        # (weights[inputs] in the sparse puzzle embedding) only with int64;
        # the reference copies the ids into an int32 buffer either way.
        "puzzle_identifiers": torch.zeros(B, dtype=torch.int64),
    }
    local_weights = model.model.inner.puzzle_emb.local_weights

    def step():
        carry = model.initial_carry(batch)
        carry, loss, _, _, _ = model(carry=carry, batch=batch, return_keys=[])
        ((1 / B) * loss).backward()
        return loss

    def clear_grads():
        model.zero_grad(set_to_none=True)
        local_weights.grad = None

    loss = step()  # warm-up: first touch of every buffer, oneDNN's kernel generation
    if not torch.isfinite(loss):
        sys.exit(f"warm-up step: loss {loss.item()} is not finite")
    walls, cpus = [], []
    for i in range(args.steps):
        clear_grads()
        w0, c0 = time.perf_counter(), time.process_time()
        step()
        w1, c1 = time.perf_counter(), time.process_time()
        walls.append(w1 - w0)
        cpus.append(c1 - c0)
        print(f"step {i + 1}: {walls[-1]:.3f} s, {cpus[-1]:.3f} cpu-s", file=sys.stderr)

    print(json.dumps(dict(
        arch=args.arch,
        dtype=args.dtype,
        threads=torch.get_num_threads(),
        batch=B,
        torch=torch.__version__,
        shims=shims,
        loss=float(loss),
        step_s=walls,
        cpu_s=cpus,
        mean_s=sum(walls) / len(walls),
        mean_cpu_s=sum(cpus) / len(cpus),
    )))


if __name__ == "__main__":
    main()
