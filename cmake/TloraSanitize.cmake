# Sanitizer and fuzzing builds (scripts/sanitize.sh, scripts/fuzz.sh). The flags apply to every
# C++ target of the project, so that the library is instrumented together with what links it;
# LibTorch itself is not, which is why the scripts carry suppressions for it.
set(TLORA_SANITIZE "" CACHE STRING "Sanitizers to compile with, e.g. address,undefined (empty: none)")
option(TLORA_BUILD_FUZZ "Build the libFuzzer targets in fuzz/ (needs clang)" OFF)

if(TLORA_SANITIZE)
  # No recovery: an undefined behaviour report fails the test or the fuzz run that hit it.
  # Line tables only (-g1) keep the reports readable at little cost in build time.
  add_compile_options("$<$<COMPILE_LANGUAGE:CXX>:-fsanitize=${TLORA_SANITIZE};-fno-sanitize-recover=all;-fno-omit-frame-pointer;-g1>")
  add_link_options("$<$<LINK_LANGUAGE:CXX>:-fsanitize=${TLORA_SANITIZE}>")
endif()

if(TLORA_BUILD_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "TLORA_BUILD_FUZZ needs clang (libFuzzer); configure with CXX=clang++")
  endif()
  # Coverage counters in the library too, so that the fuzzers are guided by the parsers' code;
  # only the fuzz targets link libFuzzer's main.
  add_compile_options("$<$<COMPILE_LANGUAGE:CXX>:-fsanitize=fuzzer-no-link>")
endif()
