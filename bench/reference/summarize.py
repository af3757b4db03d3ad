#!/usr/bin/env python3
"""Renders the results of bench/reference/compare as a Markdown table.

    python3 bench/reference/summarize.py results.tsv

results.tsv has one line per run, tab-separated with a header:
round, side (reference or trm), config (mlp or att), precision (bf16 or
fp32), s (wall seconds per step), cpu_s (CPU seconds per step, all
threads). For each config and precision the table gives both sides' min and
median over the rounds and the ratio trm / reference of the mins and of
the medians, for the wall time and for the CPU time (on a shared machine
the wall time inflates with the other load; the CPU time less so).
"""

import csv
import statistics
import sys

CONFIGS = [("mlp", "Sudoku MLP-T, H 512, B 16"), ("att", "Sudoku attention, H 512, B 16")]
PRECISIONS = ["bf16", "fp32"]
SIDES = ["reference", "trm"]
COLUMNS = ["round", "side", "config", "precision", "s", "cpu_s"]


def load(path):
    """The runs of a results file, keyed by (side, config, precision): lists
    of (s, cpu_s). A malformed file raises ValueError naming the file and
    the line."""
    runs = {}
    with open(path, newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    if not rows or rows[0] != COLUMNS:
        raise ValueError(f"{path}: want the header {' '.join(COLUMNS)}")
    for n, row in enumerate(rows[1:], start=2):
        if len(row) != len(COLUMNS):
            raise ValueError(f"{path}:{n}: want {len(COLUMNS)} tab-separated fields, got {len(row)}")
        _, side, config, precision, s, cpu_s = row
        if side not in SIDES or config not in dict(CONFIGS) or precision not in PRECISIONS:
            raise ValueError(f"{path}:{n}: unknown side, config or precision {side!r} {config!r} {precision!r}")
        try:
            s, cpu_s = float(s), float(cpu_s)
        except ValueError:
            raise ValueError(f"{path}:{n}: seconds {row[4]!r} {row[5]!r} are not numbers") from None
        if not (s > 0 and cpu_s > 0):
            raise ValueError(f"{path}:{n}: seconds must be positive")
        runs.setdefault((side, config, precision), []).append((s, cpu_s))
    return runs


def table(runs):
    """The Markdown table of the runs (rows only for the config and
    precision pairs that both sides ran)."""
    lines = [
        "| config | precision | reference min / median s | trm min / median s "
        "| trm / reference (min / median) | reference cpu-s | trm cpu-s | trm / reference cpu-s | rounds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for config, title in CONFIGS:
        for precision in PRECISIONS:
            ref, trm = runs.get(("reference", config, precision)), runs.get(("trm", config, precision))
            if not ref or not trm:
                continue
            stats = {}
            for side, vals in (("ref", ref), ("trm", trm)):
                for k, col in (("s", 0), ("cpu", 1)):
                    xs = [v[col] for v in vals]
                    stats[side, k] = (min(xs), statistics.median(xs))
            cells = [title, precision]
            for k in ("s", "cpu"):
                r, t = stats["ref", k], stats["trm", k]
                cells += [f"{r[0]:.2f} / {r[1]:.2f}", f"{t[0]:.2f} / {t[1]:.2f}",
                          f"{t[0] / r[0]:.2f} / {t[1] / r[1]:.2f}"]
            rounds = len(ref) if len(ref) == len(trm) else f"{len(ref)} / {len(trm)}"
            cells.append(str(rounds))
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv):
    if len(argv) != 1:
        sys.exit("usage: summarize.py RESULTS.tsv")
    try:
        runs = load(argv[0])
    except (OSError, ValueError) as e:
        sys.exit(str(e))
    print(table(runs))


if __name__ == "__main__":
    main(sys.argv[1:])
