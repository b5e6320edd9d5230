// Messages of the exceptions that c10d throws, for tlora::dist's own errors to quote.
#pragma once

#include <c10/util/Exception.h>

#include <exception>
#include <string>

namespace tlora::dist::detail {

/// The message of `e`, without the C++ backtrace that a c10::Error carries.
inline std::string message_of(const std::exception& e) {
  if (const auto* error = dynamic_cast<const c10::Error*>(&e)) return error->what_without_backtrace();
  return e.what();
}

}  // namespace tlora::dist::detail
