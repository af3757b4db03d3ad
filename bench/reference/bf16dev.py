#!/usr/bin/env python3
"""How far the reference PyTorch model's own bf16 training step
(forward_dtype bfloat16) lies from its float32 step, on the golden cases.

    python3 bench/reference/bf16dev.py REFERENCE_DIR [CASE_OR_GOLDEN_DIR ...] [--tol ABS,REL]

REFERENCE_DIR is a checkout of the reference model code (the directory that
holds models/recursive_reasoning/trm.py); its models and loss head are
imported from there, nothing of it is copied here. Each further argument is
a golden case folder (one holding batch.safetensors) or a folder of them
(every subfolder with batch.safetensors except trajectory_*); the default is
the repository's testdata/golden.

For each case the reference model is built twice from the case's config.json,
with forward_dtype float32 and with bfloat16, the same float32 weights are
loaded into both (the bf16 model keeps its initial-state buffers such as
H_init in bf16, so they are rounded on load, as the reference itself does),
and each runs the golden step of testdata/golden/README.md: the ACT wrapper
in train mode under ACTLossHead, from a fresh carry (every slot halted),
forward, loss, and the backward of the unscaled loss (as
precisionGolden in engine/enginetest/precision.go runs it).

The outputs are grouped as RunPrecision groups them (logits, q_halt logits,
q_continue logits, lm loss per example, every carry state, every trained
parameter's gradient, the puzzle-embedding gradient rows) and each group is
judged by the rule of engine/enginetest/tolerance.go: an element passes when
|bf16 - fp32| <= ABS * scale + REL * |fp32|, scale = max(1, max |fp32| over
the group). The table gives, per case and group, the worst ratio
|bf16 - fp32| / (ABS * scale + REL * |fp32|), the elements over 1 and the
largest absolute difference. Before it, the float32 run is checked against
the case's expected.safetensors under the one-step rule (OneStep in
tolerance.go), so the step run here is the golden step; the exit status is 1
if it is not.

Debian's python3-torch is 1.13; step.py's install_shims() fills what the
reference code needs from torch 2 (see bench/reference/README.md).
"""

import argparse
import dataclasses
import importlib
import json
import math
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_GOLDEN = os.path.join(HERE, "..", "..", "testdata", "golden")
DEFAULT_NAME = "recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1"

# BF16Step and OneStep of engine/enginetest/tolerance.go.
BF16_STEP = (0.1, 0.1)
ONE_STEP = (5e-5, 1e-4)

# The output groups of RunPrecision (engine/enginetest/precision.go), in
# its order.
GROUPS = ["logits", "q_halt_logits", "q_continue_logits", "lm_loss", "carry", "gradients", "puzzle gradients"]

# safetensors dtype: (element size in bytes, torch dtype name).
DTYPES = {
    "F64": (8, "float64"), "F32": (4, "float32"), "F16": (2, "float16"), "BF16": (2, "bfloat16"),
    "I64": (8, "int64"), "I32": (4, "int32"), "I16": (2, "int16"), "I8": (1, "int8"),
    "U8": (1, "uint8"), "BOOL": (1, "bool"),
}


class InputError(Exception):
    """A missing or malformed input; the message names the file."""


def parse_tol(s):
    """ABS,REL as two positive finite floats, or ValueError."""
    parts = s.split(",")
    if len(parts) != 2:
        raise ValueError(f"--tol {s}: want ABS,REL (two positive numbers, e.g. 0.1,0.1)")
    try:
        a, r = float(parts[0]), float(parts[1])
    except ValueError:
        raise ValueError(f"--tol {s}: want ABS,REL (two positive numbers, e.g. 0.1,0.1)") from None
    if not (a > 0 and r > 0 and math.isfinite(a) and math.isfinite(r)):
        raise ValueError(f"--tol {s}: ABS and REL must be positive and finite")
    return a, r


def tolerance_stats(got, want, abs_tol, rel_tol):
    """The rule of engine/enginetest/tolerance.go on two equal-length
    sequences of floats: returns (worst ratio |got-want| / (abs_tol*scale +
    rel_tol*|want|), its index (-1 if every difference is 0), elements over
    the limit, max |got-want|, scale) with scale = max(1, max |want|). A NaN
    difference counts as over the limit with an infinite ratio, as in Go."""
    if len(got) != len(want):
        raise ValueError(f"length {len(got)}, want {len(want)}")
    scale = 1.0
    for w in want:
        scale = max(scale, abs(w))
    worst, worst_i, over, max_diff = 0.0, -1, 0, 0.0
    for i, (g, w) in enumerate(zip(got, want)):
        d = abs(g - w)
        lim = abs_tol * scale + rel_tol * abs(w)
        if not d <= lim:
            over += 1
        if math.isnan(d):
            if worst != math.inf:
                worst, worst_i = math.inf, i
            max_diff = math.nan
            continue
        r = d / lim if lim > 0 else (0.0 if d == 0 else math.inf)
        if r > worst:
            worst, worst_i = r, i
        if not math.isnan(max_diff):
            max_diff = max(max_diff, d)
    return worst, worst_i, over, max_diff, scale


def read_safetensors_header(path):
    """Parses and checks a safetensors file's header: returns (header dict
    without __metadata__, offset of the data, size of the data). Raises
    InputError naming the file."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise InputError(f"{path}: not a safetensors file (shorter than its 8-byte header length)")
            (n,) = struct.unpack("<Q", head)
            size = os.fstat(f.fileno()).st_size
            if n > size - 8:
                raise InputError(f"{path}: header length {n} runs past the end of the file ({size} bytes)")
            raw = f.read(n)
    except OSError as e:
        raise InputError(f"{path}: {e.strerror}") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise InputError(f"{path}: header is not JSON ({e})") from None
    if not isinstance(header, dict):
        raise InputError(f"{path}: header is not a JSON object")
    header.pop("__metadata__", None)
    data_size = size - 8 - n
    for key, info in header.items():
        if not isinstance(info, dict) or set(info) < {"dtype", "shape", "data_offsets"}:
            raise InputError(f"{path}: tensor {key}: want dtype, shape and data_offsets")
        dt, shape, offs = info["dtype"], info["shape"], info["data_offsets"]
        if dt not in DTYPES:
            raise InputError(f"{path}: tensor {key}: unsupported dtype {dt!r}")
        if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
            raise InputError(f"{path}: tensor {key}: bad shape {shape!r}")
        if not (isinstance(offs, list) and len(offs) == 2 and all(isinstance(o, int) for o in offs)
                and 0 <= offs[0] <= offs[1] <= data_size):
            raise InputError(f"{path}: tensor {key}: data_offsets {offs!r} outside the {data_size} data bytes")
        want = math.prod(shape) * DTYPES[dt][0]
        if offs[1] - offs[0] != want:
            raise InputError(f"{path}: tensor {key}: {offs[1] - offs[0]} bytes for {dt} {shape} ({want} expected)")
    return header, 8 + n, data_size


def read_safetensors(path, torch):
    """Reads every tensor of a safetensors file as a torch tensor."""
    header, start, size = read_safetensors_header(path)
    with open(path, "rb") as f:
        f.seek(start)
        data = bytearray(f.read(size))
    out = {}
    for key, info in header.items():
        a, b = info["data_offsets"]
        dtype = getattr(torch, DTYPES[info["dtype"]][1])
        if b > a:
            t = torch.frombuffer(data, dtype=dtype, count=(b - a) // DTYPES[info["dtype"]][0], offset=a)
        else:
            t = torch.empty(0, dtype=dtype)
        out[key] = t.reshape(info["shape"]).clone()
    return out


def find_cases(paths):
    """The case folders named by paths: a folder holding batch.safetensors
    is a case, any other folder stands for its subfolders holding one
    (trajectory_* excepted)."""
    cases = []
    for p in paths:
        if not os.path.isdir(p):
            raise InputError(f"{p}: no such folder (want a golden case or a folder of them)")
        if os.path.isfile(os.path.join(p, "batch.safetensors")):
            cases.append(p)
            continue
        found = [os.path.join(p, e) for e in sorted(os.listdir(p))
                 if not e.startswith("trajectory_") and os.path.isfile(os.path.join(p, e, "batch.safetensors"))]
        if not found:
            raise InputError(f"{p}: no golden case (a folder with batch.safetensors)")
        cases.extend(found)
    return cases


def check_case(case):
    """Reads a case's config.json and checks the headers of its
    safetensors files, before torch is imported; returns the config."""
    path = os.path.join(case, "config.json")
    try:
        with open(path) as f:
            cfg = json.load(f)
    except OSError as e:
        raise InputError(f"{path}: {e.strerror}") from None
    except ValueError as e:
        raise InputError(f"{path}: not JSON ({e})") from None
    if not isinstance(cfg, dict):
        raise InputError(f"{path}: not a JSON object")
    name = cfg.get("name", DEFAULT_NAME)
    if not (isinstance(name, str) and name.count("@") == 1):
        raise InputError(f"{path}: name {name!r}: want module@Class, e.g. {DEFAULT_NAME}")
    want = {
        "batch.safetensors": ["inputs", "labels", "puzzle_identifiers"],
        "weights.safetensors": [],
        "expected.safetensors": ["logits", "q_halt_logits", "q_continue_logits", "lm_loss"],
    }
    for f, keys in want.items():
        header, _, _ = read_safetensors_header(os.path.join(case, f))
        for k in keys:
            if k not in header:
                raise InputError(f"{os.path.join(case, f)}: no tensor {k}")
    return cfg


def build(torch, cfg, dtype, weights, path):
    """The reference ACT model under ACTLossHead for cfg with forward_dtype
    dtype, the case's state loaded, in train mode."""
    from models.losses import ACTLossHead
    module, cls = cfg.get("name", DEFAULT_NAME).split("@")
    model_cfg = {k: v for k, v in cfg.items() if k not in ("name", "loss_type")}
    model_cfg["forward_dtype"] = dtype
    try:
        model_cls = getattr(importlib.import_module("models." + module), cls)
    except (ImportError, AttributeError) as e:
        raise InputError(f"{path}: name {module}@{cls}: not in the reference checkout ({e})") from None
    model = model_cls(model_cfg)
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as e:
        raise InputError(f"{os.path.join(os.path.dirname(path), 'weights.safetensors')}: {e}") from None
    head = ACTLossHead(model, loss_type=cfg.get("loss_type", "stablemax_cross_entropy"))
    head.train()
    return head


def flatten(segments):
    """The values of named tensors one after the other as float64, and the
    (name, end index) of each, to say where an element came from."""
    values, ends = [], []
    for name, t in segments:
        values.extend(t.detach().double().flatten().tolist())
        ends.append((name, len(values)))
    return values, ends


def locate(ends, i):
    """The tensor name and index within it of element i of a flattened
    group."""
    start = 0
    for name, end in ends:
        if i < end:
            return f"{name}[{i - start}]"
        start = end
    return "-"


def run_step(torch, head, batch):
    """One golden training step from a fresh carry; returns the outputs by
    group (flatten's values and ends) and, by name, what
    expected.safetensors holds."""
    carry = head.initial_carry(batch)
    new_carry, loss, metrics, outputs, _ = head(carry=carry, batch=batch,
                                                return_keys=["logits", "q_halt_logits", "q_continue_logits"])
    loss.backward()

    from models.losses import IGNORE_LABEL_ID
    labels = new_carry.current_data["labels"]
    mask = labels != IGNORE_LABEL_ID
    divisor = mask.sum(-1).clamp_min(1).unsqueeze(-1)
    with torch.no_grad():
        per_example = (head.loss_fn(outputs["logits"], labels, ignore_index=IGNORE_LABEL_ID, valid_mask=mask)
                       / divisor).sum(-1)

    inner = head.model.inner
    named = {}
    named["logits"] = outputs["logits"]
    named["q_halt_logits"] = outputs["q_halt_logits"]
    named["q_continue_logits"] = outputs["q_continue_logits"]
    named["lm_loss"] = metrics["lm_loss"]
    for f in dataclasses.fields(new_carry.inner_carry):
        named[f.name] = getattr(new_carry.inner_carry, f.name)
    params = [(k, p) for k, p in head.model.named_parameters()]
    for k, p in params:
        if p.grad is None:
            raise RuntimeError(f"parameter {k} got no gradient")
        named["grad." + k] = p.grad
    puzzle = []
    if hasattr(inner, "puzzle_emb"):
        g = inner.puzzle_emb.local_weights.grad
        if g is None:
            raise RuntimeError("the puzzle embedding's local_weights got no gradient")
        named["grad.inner.puzzle_emb.local_weights"] = g
        puzzle = [g]

    carry_names = [f.name for f in dataclasses.fields(new_carry.inner_carry)]
    segments = {
        "logits": [("logits", outputs["logits"])],
        "q_halt_logits": [("q_halt_logits", outputs["q_halt_logits"])],
        "q_continue_logits": [("q_continue_logits", outputs["q_continue_logits"])],
        "lm_loss": [("lm_loss", per_example)],
        "carry": [(n, named[n]) for n in carry_names],
        "gradients": [("grad." + k, p.grad) for k, p in params],
        "puzzle gradients": [("grad.inner.puzzle_emb.local_weights", g) for g in puzzle],
    }
    groups = {g: flatten(segs) for g, segs in segments.items()}
    if not math.isclose(sum(groups["lm_loss"][0]), float(metrics["lm_loss"]), rel_tol=1e-9, abs_tol=1e-9):
        raise RuntimeError(f"per-example lm loss sums to {sum(groups['lm_loss'][0])}, the loss head's "
                           f"lm_loss is {float(metrics['lm_loss'])}")
    return groups, named


def check_expected(case, named, expected):
    """Compares the float32 step with expected.safetensors under the
    one-step rule; returns (worst ratio, its key, max |diff| over all keys,
    keys compared)."""
    path = os.path.join(case, "expected.safetensors")
    grads = {k for k in expected if k.startswith("grad.")}
    missing = grads - set(named)
    if missing:
        raise InputError(f"{path}: gradients {sorted(missing)} are not parameters of the model built here")
    worst, worst_key, max_diff = 0.0, "", 0.0
    compared = 0
    for k, t in named.items():
        if k not in expected:
            if k.startswith("grad.") or k.startswith("z_"):
                raise InputError(f"{path}: no tensor {k}")
            continue
        got = t.detach().double().flatten().tolist()
        want = expected[k].double().flatten().tolist()
        if len(got) != len(want):
            raise InputError(f"{path}: {k} has {len(want)} elements, the step here {len(got)}")
        r, _, _, d, _ = tolerance_stats(got, want, *ONE_STEP)
        compared += 1
        if r > worst:
            worst, worst_key = r, k
        max_diff = max(max_diff, d)
    return worst, worst_key, max_diff, compared


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("reference_dir", help="checkout of the reference model code "
                   "(holds models/recursive_reasoning/trm.py)")
    p.add_argument("cases", nargs="*", help="golden case folders, or folders of them "
                   "(default: the repository's testdata/golden)")
    p.add_argument("--tol", default="%g,%g" % BF16_STEP,
                   help="ABS,REL of the rule (default %g,%g: BF16Step)" % BF16_STEP)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = p.parse_args(argv)
    try:
        tol = parse_tol(args.tol)
    except ValueError as e:
        p.error(str(e))
    if args.threads < 1:
        p.error(f"--threads {args.threads}: want a positive integer")
    for f in ("models/recursive_reasoning/trm.py", "models/losses.py"):
        if not os.path.isfile(os.path.join(args.reference_dir, f)):
            sys.exit(f"{args.reference_dir}: no {f} (want a checkout of the reference model code)")
    try:
        cases = find_cases(args.cases or [os.path.normpath(DEFAULT_GOLDEN)])
        configs = {c: check_case(c) for c in cases}
    except InputError as e:
        sys.exit(str(e))

    try:
        import torch
    except ImportError:
        sys.exit(f"{sys.executable}: cannot import torch (apt-get install python3-torch python3-pydantic)")
    sys.path.insert(0, HERE)
    from step import install_shims
    shims = install_shims(torch)
    sys.path.insert(0, os.path.abspath(args.reference_dir))
    torch.set_num_threads(args.threads)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); shims: {', '.join(shims) or 'none'}")
    print(f"rule: |bf16 - fp32| <= {tol[0]:g} * scale + {tol[1]:g} * |fp32|, scale = max(1, max |fp32| over the group)")
    print()
    check_rows, rows = [], []
    failed = False
    for case in cases:
        name = os.path.basename(os.path.normpath(case))
        cfg = configs[case]
        try:
            weights = read_safetensors(os.path.join(case, "weights.safetensors"), torch)
            b = read_safetensors(os.path.join(case, "batch.safetensors"), torch)
            expected = read_safetensors(os.path.join(case, "expected.safetensors"), torch)
            batch = {
                "inputs": b["inputs"].to(torch.int32),
                "labels": b["labels"].to(torch.int32),
                # int64: torch 1.13 indexes (weights[inputs] in the sparse
                # puzzle embedding) only with int64.
                "puzzle_identifiers": b["puzzle_identifiers"].to(torch.int64),
            }
            out = {}
            for dtype in ("float32", "bfloat16"):
                torch.manual_seed(0)
                head = build(torch, cfg, dtype, weights, os.path.join(case, "config.json"))
                out[dtype] = run_step(torch, head, batch)
            worst, key, diff, n = check_expected(case, out["float32"][1], expected)
        except InputError as e:
            sys.exit(str(e))
        except RuntimeError as e:
            sys.exit(f"{case}: the reference step failed: {e}")
        ok = worst <= 1
        failed = failed or not ok
        arch = cfg.get("name", DEFAULT_NAME).split("@")[0].split(".")[-1]
        where = f" ({key})" if worst > 0 else " (bit for bit)"
        check_rows.append(f"| {name} | {arch} | {n} | {worst:.3g}{where} | {diff:.3g} | {'ok' if ok else 'FAIL'} |")
        for g in GROUPS:
            (want, ends), (got, _) = out["float32"][0][g], out["bfloat16"][0][g]
            if not want:
                continue
            r, i, over, d, scale = tolerance_stats(got, want, *tol)
            rows.append((name, g, r, over, len(want), d, scale, locate(ends, i)))

    print("float32 step against expected.safetensors (OneStep: %g * scale + %g * |want|, per tensor):" % ONE_STEP)
    print()
    print("| case | arch | tensors | worst ratio (tensor) | max abs diff | |")
    print("|---|---|---|---|---|---|")
    print("\n".join(check_rows))
    print()
    print(f"bf16 step against the float32 step (ABS {tol[0]:g}, REL {tol[1]:g}):")
    print()
    print("| case | output | worst ratio | worst element | over the limit | max abs diff | scale |")
    print("|---|---|---|---|---|---|---|")
    for name, g, r, over, n, d, scale, at in rows:
        print(f"| {name} | {g} | {r:.4f} | {at} | {over} / {n} | {d:.3g} | {scale:.3g} |")
    top = max(rows, key=lambda x: x[2])
    print()
    print(f"worst ratio over every case and output: {top[2]:.4f} ({top[0]}, {top[1]}); "
          f"elements over the limit: {sum(x[3] for x in rows)}")
    if failed:
        sys.exit("the float32 step does not reproduce expected.safetensors for every case: "
                 "the bf16 figures above are not those of the golden step")


if __name__ == "__main__":
    main()
