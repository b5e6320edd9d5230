// The byte-level BPE tokenizer of the RoBERTa test fixture (vocab.json + merges.txt, as
// RobertaTokenizer reads them) on arbitrary bytes; see tokenizer_harness.h.
#include "tokenizer_harness.h"

#include "tlora/text/bpe.h"

#include <filesystem>
#include <memory>

namespace {
std::unique_ptr<tlora::text::Tokenizer> plain, truncating;

std::unique_ptr<tlora::text::Tokenizer> load() {
  const std::filesystem::path dir = TLORA_FIXTURE_DIR "/tokenizers/roberta";
  return std::make_unique<tlora::text::ByteLevelBPETokenizer>(
      tlora::text::ByteLevelBPETokenizer::from_files(dir / "vocab.json", dir / "merges.txt"));
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  plain = load();
  truncating = load();
  tlora::fuzz::truncate_for_fuzzing(*truncating);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tlora::fuzz::fuzz_tokenizer(*plain, *truncating, data, size);
  return 0;
}
