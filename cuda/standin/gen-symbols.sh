#!/bin/sh
# Regenerates cuda/standin/symbols.txt: every cu* symbol of the CUDA
# driver that the given cuda-tagged binaries import (gorgonia.org/cu wraps
# most of the driver API). The stand-in exports all of them: those it
# implements from driver.cc, the rest as stubs returning
# CUDA_ERROR_NOT_SUPPORTED (cuda/standin/standin.mk generates them).
#
#   go test -c -tags cuda -o /tmp/cuda.test ./cuda/
#   go build -tags cuda -o /tmp/trm-train ./cmd/trm-train
#   cuda/standin/gen-symbols.sh /tmp/cuda.test /tmp/trm-train
set -eu
[ $# -ge 1 ] || { echo "usage: $0 BINARY..." >&2; exit 2; }
out=$(dirname "$0")/symbols.txt
for b in "$@"; do
	nm -D --undefined-only "$b" | awk '{print $NF}'
done | sed 's/@.*//' | grep -E '^cu[A-Z]' | LC_ALL=C sort -u > "$out.tmp"
mv "$out.tmp" "$out"
echo "$out: $(wc -l < "$out") symbols"
