// What the benchmarks report of the machine with every figure: the CPU's name and its bfloat16
// matrix instructions.
#pragma once

#include "tlora/core/precision.h"

#include <fstream>
#include <string>

namespace tlora::bench {

/// The CPU's model name from /proc/cpuinfo ("unknown" where there is none).
inline std::string cpu_model() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown";
}

/// tlora::cpu_bf16_instructions() as text: "avx512_bf16", "amx_bf16, avx512_bf16" or "none".
inline std::string cpu_bf16_text() {
  std::string text;
  for (const std::string& name : tlora::cpu_bf16_instructions()) text += (text.empty() ? "" : ", ") + name;
  return text.empty() ? "none" : text;
}

}  // namespace tlora::bench
