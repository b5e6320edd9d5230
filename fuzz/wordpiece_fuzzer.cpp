// The WordPiece tokenizer of the MiniLM model (its tokenizer.json, as load_tokenizer finds it)
// on arbitrary bytes; see tokenizer_harness.h.
#include "tokenizer_harness.h"

#include "tlora/models/loading.h"
#include "tlora/models/packaged.h"
#include "tlora/text/tokenizer.h"

#include <memory>

namespace {
std::unique_ptr<tlora::text::Tokenizer> plain, truncating;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const auto dir = tlora::models::default_model_dir();
  plain = tlora::text::load_tokenizer(dir);
  truncating = tlora::text::load_tokenizer(dir);
  tlora::fuzz::truncate_for_fuzzing(*truncating);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tlora::fuzz::fuzz_tokenizer(*plain, *truncating, data, size);
  return 0;
}
