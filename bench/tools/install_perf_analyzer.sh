#!/bin/sh
# Install Triton's perf_analyzer for bench/inference into its own tool directory, never the project's .venv:
# PyPI's `perf-analyzer` is an empty placeholder, so the binary comes from the tritonclient wheel that still
# ships one this machine's glibc runs (2.50.0; newer wheels carry none or need a newer glibc), in a virtualenv
# of its own (so the project's tritonclient is never downgraded), with the CUDA runtime library it links and
# Debian's libb64 (apt-get; needs root). `make bench-tools` runs it; bench/inference finds the result at
# .aimesh/tools/perf_analyzer/bin/perf_analyzer. Idempotent: a stamp names the pinned versions.
# Usage: install_perf_analyzer.sh [TOOL_DIR]   (default: .aimesh/tools/perf_analyzer under the repository)
set -eu

TRITONCLIENT=2.50.0
CUDA_RUNTIME=12.9.79
PYTHON=${PYTHON:-python3.11}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DIR=${1:-$ROOT/.aimesh/tools/perf_analyzer}
STAMP="$DIR/.installed"
WANT="tritonclient[all]==$TRITONCLIENT nvidia-cuda-runtime-cu12==$CUDA_RUNTIME"

if ! ldconfig -p | grep -q 'libb64\.so\.0d'; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "error: perf_analyzer needs Debian's libb64-0d; installing it needs root. Fix: sudo $0" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends libb64-0d
fi

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && [ -x "$DIR/bin/perf_analyzer" ]; then
    echo "perf_analyzer already installed: $DIR/bin/perf_analyzer"
    exit 0
fi

rm -rf "$DIR"
"$PYTHON" -m venv "$DIR/venv"
# shellcheck disable=SC2086
"$DIR/venv/bin/python" -m pip install --quiet $WANT
CUDA_LIB=$("$DIR/venv/bin/python" -c 'import nvidia.cuda_runtime, os; print(os.path.join(nvidia.cuda_runtime.__path__[0], "lib"))')
mkdir -p "$DIR/bin"
cat > "$DIR/bin/perf_analyzer" <<WRAPPER
#!/bin/sh
# perf_analyzer of tritonclient $TRITONCLIENT with the CUDA runtime library it links (written by $0).
LD_LIBRARY_PATH="$CUDA_LIB\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$DIR/venv/bin/perf_analyzer" "\$@"
WRAPPER
chmod +x "$DIR/bin/perf_analyzer"
"$DIR/bin/perf_analyzer" --version >/dev/null 2>&1 || "$DIR/bin/perf_analyzer" --help >/dev/null
echo "$WANT" > "$STAMP"
echo "perf_analyzer installed: $DIR/bin/perf_analyzer"
