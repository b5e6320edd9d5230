// ByteLevelBPETokenizer::from_gguf: the "gpt2" tokenizer that llama.cpp stores in GGUF metadata.
#include "tlora/text/bpe.h"

#include "tlora/gguf/file.h"

#include <c10/util/Exception.h>

#include <string>
#include <utility>
#include <vector>

namespace tlora::text {
namespace {

// llama_token_type: the types llama.cpp cuts out of the text when parsing special tokens.
constexpr int64_t kControl = 3;
constexpr int64_t kUserDefined = 4;

}  // namespace

ByteLevelBPETokenizer ByteLevelBPETokenizer::from_gguf(const gguf::File& file) {
  const auto fail = [&](const auto&... args) { TORCH_CHECK(false, "GGUF file ", file.path(), ": ", args...); };
  const std::string model = file.get_string("tokenizer.ggml.model");
  if (model != "gpt2") fail("tokenizer.ggml.model '", model, "' is not supported (gpt2, byte-level BPE, is)");
  const std::string pre = file.find("tokenizer.ggml.pre") ? file.get_string("tokenizer.ggml.pre") : "default";
  if (pre != "gpt2" && pre != "default" && pre != "smollm") {
    fail("tokenizer.ggml.pre '", pre, "' is not supported (gpt2, default and smollm are; each other "
         "pre-tokenizer splits the text with its own pattern)");
  }
  const std::vector<std::string> tokens = file.get_strings("tokenizer.ggml.tokens");
  Vocab vocab;
  vocab.reserve(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (!vocab.emplace(tokens[i], static_cast<int64_t>(i)).second) fail("tokenizer.ggml.tokens repeats '", tokens[i], "'");
  }
  std::vector<std::pair<std::string, std::string>> merges;
  for (const std::string& m : file.get_strings("tokenizer.ggml.merges")) {
    const size_t space = m.find(' ');
    if (space == std::string::npos || m.find(' ', space + 1) != std::string::npos) {
      fail("tokenizer.ggml.merges has '", m, "', not two tokens separated by one space");
    }
    merges.emplace_back(m.substr(0, space), m.substr(space + 1));
  }
  BPEOptions options;
  options.split_digits = pre == "smollm";
  ByteLevelBPETokenizer tokenizer(std::move(vocab), merges, options);

  std::vector<AddedToken> added;
  if (file.find("tokenizer.ggml.token_type")) {
    const gguf::Value::Array& types = file.at("tokenizer.ggml.token_type").as_array();
    if (types.items.size() != tokens.size()) {
      fail("tokenizer.ggml.token_type has ", types.items.size(), " entries for ", tokens.size(), " tokens");
    }
    for (size_t i = 0; i < tokens.size(); ++i) {
      const int64_t type = types.items[i].as_int();
      if (type != kControl && type != kUserDefined) continue;
      AddedToken t;
      t.content = tokens[i];
      t.id = static_cast<int64_t>(i);
      t.special = type == kControl;
      added.push_back(std::move(t));
    }
  }
  tokenizer.add_tokens(added);
  return tokenizer;
}

}  // namespace tlora::text
