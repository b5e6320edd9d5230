#!/usr/bin/env bash
# The GPU check, for a machine with an NVIDIA GPU and no network (../shared/device/README.md):
# configures against python3's torch and the dependencies carried in .gpu-deps/ (made by
# scripts/gpu-deps.sh on a Debian machine), builds the CUDA kernels, the `cuda` tests and
# tlora-bench-linear, runs the tests, the linear-layer benchmark on the issue's four bf16 shapes
# and the Hugging Face PEFT LoRA timings, and leaves the log and the JSON in $OUT.
#
#   run on the GPU machine from the repository root (carry .gpu-deps):  scripts/gpu-check.sh
#   environment: OUT (default ./out), JOBS (default 16), TLORA_GPU_BUILD (default build-gpu),
#                BENCH_REPETITIONS (default 5)
set -euo pipefail
set -o pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${OUT:-$repo/out}"
build="${TLORA_GPU_BUILD:-$repo/build-gpu}"
jobs="${JOBS:-16}"
mkdir -p "$out"
exec > >(tee "$out/log") 2>&1
cd "$repo"
export PATH="$PATH:${CUDA_HOME:-/usr/local/cuda}/bin"

step() { echo; echo "=== $(date -u +%H:%M:%S) $*"; }
status=0
note_failure() { echo "gpu-check: FAILED: $1"; status=1; }

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv || true
nvcc --version | tail -n 2 || true
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))'
[[ -d .gpu-deps ]] || { echo "gpu-check: .gpu-deps/ missing; run scripts/gpu-deps.sh on a Debian machine and carry it" >&2; exit 1; }

step "configure"
torch_prefix="$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')"
# CMAKE_POLICY_VERSION_MINIMUM: Debian's package files ask for policies that CMake 4 refuses.
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTLORA_CUDA=ON \
  -DTORCH_CUDA_ARCH_LIST=9.0 -DTLORA_BUILD_EXAMPLES=OFF -DCMAKE_POLICY_VERSION_MINIMUM=3.5 \
  -DCMAKE_PREFIX_PATH="$torch_prefix;$repo/.gpu-deps"

step "build"
cmake --build "$build" -j "$jobs" --target kernel_emulation_test cuda_tri_linear_test \
  cuda_graph_test cuda_random_test cuda_merge_test tlora-bench-linear

step "tests (ctest -L cuda, then the CPU emulation of the kernels)"
ctest --test-dir "$build" -L cuda --output-on-failure --timeout 300 --output-junit "$out/ctest_cuda.xml" ||
  note_failure "ctest -L cuda"
ctest --test-dir "$build" -R KernelEmulation --output-on-failure --timeout 300 ||
  note_failure "kernel emulation"

step "tlora-bench-linear --device cuda (bf16)"
"$build/bench/tlora-bench-linear" --device cuda --dtype bf16 \
  --case 8192,4096,4096,32 --case 8192,4096,11008,32 --case 4096,1024,1024,32 --case 4096,768,768,8 \
  --repetitions "${BENCH_REPETITIONS:-5}" --min-time 0.2 --json "$out/bench_linear_cuda.json" ||
  note_failure "tlora-bench-linear"

step "Hugging Face PEFT LoRA r=32 on the same shapes"
python3 bench/peft_lora_gpu.py --json "$out/peft_lora_gpu.json" || note_failure "peft_lora_gpu.py"

step "done (status $status)"
exit "$status"
