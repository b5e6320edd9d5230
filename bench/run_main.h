// The main() of every benchmark binary: run it, and turn an exception into one line on stderr
// (no backtrace) and exit status 1.
#pragma once

#include <c10/util/Exception.h>
#include <fmt/format.h>

#include <exception>

namespace tlora::bench {

/// Calls run(argc, argv); errors are printed as "<program>: <message>" and return 1.
inline int run_main(const char* program, int (*run)(int, char**), int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const c10::Error& e) {
    fmt::print(stderr, "{}: {}\n", program, e.what_without_backtrace());
  } catch (const std::exception& e) {
    fmt::print(stderr, "{}: {}\n", program, e.what());
  }
  return 1;
}

}  // namespace tlora::bench
