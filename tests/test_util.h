// Helpers shared by the test suites.
#pragma once

#include <c10/util/Exception.h>

#include <functional>
#include <string>

namespace tlora::testing {

/// The message of the c10::Error that `f` throws, without backtrace; "no error" if none.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  }
  return "no error";
}

}  // namespace tlora::testing
