#!/usr/bin/env bash
# Build the kernels with AddressSanitizer (+ bounds-checked Cython) in a scratch copy and run the kernel tests there.
# Usage: bash tests/sanitize.sh [pytest args]     (needs gcc with libasan; uses the current python's packages)
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
PY="${PYTHON:-python3}"
cp -r "$REPO/setup.py" "$REPO/pyproject.toml" "$REPO/README.md" "$REPO/csrc" "$REPO/fastnn" "$REPO/tests" "$WORK/"
rm -f "$WORK"/fastnn/_ext/*.so
cd "$WORK"
FASTNN_SANITIZE=address FASTNN_DEBUG_KERNELS=1 "$PY" setup.py -q build_ext --inplace >build.log 2>&1 || {
    tail -30 build.log; exit 1; }
LIBASAN="$(gcc -print-file-name=libasan.so)"
# Python itself is not instrumented: preload the runtime; CPython's own allocations would flood the leak report.
export LD_PRELOAD="$LIBASAN"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1"
export PYTHONPATH="$WORK"
export PYTHONMALLOC=malloc
"$PY" -m pytest -q -p no:cacheprovider tests/test_kernels.py tests/test_kernels_fuzz.py "$@"
echo "sanitize.sh: AddressSanitizer build of the kernels ran the kernel tests clean"
