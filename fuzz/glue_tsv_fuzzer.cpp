// The GLUE TSV reader on arbitrary text: the first byte picks the task, the rest is the file.
// Accepted examples must carry a label the task can have, on a line of the input.
#include "fuzz_check.h"

#include "tlora/glue/tasks.h"

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>

namespace {
constexpr std::string_view kName = "fuzz.tsv";
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tlora::glue;
  if (size == 0) return 0;
  const auto task = static_cast<Task>(data[0] % 9);
  std::istringstream in(std::string(reinterpret_cast<const char*>(data) + 1, size - 1));
  try {
    const TaskInfo& i = info(task);
    for (const Example& ex : read_examples(task, in, kName)) {
      tlora::fuzz::require(ex.line >= 1 && static_cast<size_t>(ex.line) <= size,
                           "an example's line number is outside the input");
      tlora::fuzz::require(ex.text_b.has_value() == i.is_pair, "a text_b on a single-text task");
      if (!ex.label) continue;
      const double label = *ex.label;
      tlora::fuzz::require(i.is_regression ? label >= 0 && label <= 5
                                           : label >= 0 && label < i.label_names.size() &&
                                                 label == std::floor(label),
                           "a label outside the task's labels");
    }
  } catch (const c10::Error& e) {
    tlora::fuzz::require_names(e, kName);
  }
  return 0;
}
