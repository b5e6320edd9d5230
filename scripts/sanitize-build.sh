# Sourced by sanitize.sh and fuzz.sh: configures build-sanitize/ once, the one instrumented build
# both use (clang; the library, tests, example and fuzz targets with AddressSanitizer,
# UndefinedBehaviorSanitizer and libFuzzer's coverage counters, which cost the tests little and
# save a second instrumented build of the library), and sets the sanitizers' options.
TLORA_SANITIZE_BUILD="${TLORA_SANITIZE_BUILD:-$TLORA_REPO/build-sanitize}"
command -v clang++ >/dev/null ||
  { echo "tlora: the sanitizer and fuzz builds need clang (apt-get install clang)" >&2; exit 1; }
if [[ ! -f "$TLORA_SANITIZE_BUILD/CMakeCache.txt" ]]; then
  torch_prefix="$(python -c 'import torch; print(torch.utils.cmake_prefix_path)')"
  mkdir -p "$TLORA_SANITIZE_BUILD"
  CC=clang CXX=clang++ cmake -S "$TLORA_REPO" -B "$TLORA_SANITIZE_BUILD" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$torch_prefix" -DTLORA_CUDA=OFF \
    -DTLORA_BUILD_BENCH=OFF -DTLORA_BUILD_FUZZ=ON -DTLORA_SANITIZE=address,undefined \
    >"$TLORA_SANITIZE_BUILD/configure.log" 2>&1 ||
    { tail -n 30 "$TLORA_SANITIZE_BUILD/configure.log" >&2; echo "tlora: configuring $TLORA_SANITIZE_BUILD failed" >&2; exit 1; }
fi
# Reports abort the process, so they fail the test or the fuzz run that raised them.
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:detect_leaks=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:suppressions=$TLORA_REPO/scripts/ubsan.supp:${UBSAN_OPTIONS:-}"
export LSAN_OPTIONS="suppressions=$TLORA_REPO/scripts/lsan.supp:print_suppressions=0:${LSAN_OPTIONS:-}"
