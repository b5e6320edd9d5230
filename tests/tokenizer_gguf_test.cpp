// The GGUF "gpt2" tokenizer against llama.cpp's own (the packaged SmolLM2), and SmolLM2's
// Hugging Face pre-tokenizer (Digits + ByteLevel) against `tokenizers`; fixtures by
// tools/llama_tokenizer_fixtures.py.
#include "packaged_model.h"
#include "test_util.h"
#include "tlora/gguf/file.h"
#include "tlora/gguf/writer.h"
#include "tlora/text/bpe.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <string>
#include <vector>

namespace {

using nlohmann::json;
using tlora::testing::contains;
using tlora::testing::error_of;
using tlora::text::ByteLevelBPETokenizer;

const std::string kFixtures = TLORA_FIXTURE_DIR "/tokenizers/smollm2";

json load(const std::string& name) {
  std::ifstream in(kFixtures + "/" + name);
  return json::parse(in);
}


// Every text's ids against the fixture's; reports the first few that differ.
void expect_ids(const ByteLevelBPETokenizer& tokenizer, const json& fixture, bool add_special_tokens) {
  const auto& texts = fixture["texts"];
  size_t differing = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::string text = texts[i];
    const auto expected = fixture["ids"][i].get<std::vector<int64_t>>();
    const auto ids = tokenizer.encode(text, add_special_tokens).ids;
    if (ids != expected && ++differing <= 5) ADD_FAILURE() << "text " << i << " '" << text << "'";
  }
  EXPECT_EQ(differing, 0u) << "of " << texts.size() << " texts";
}

TEST(TokenizerGguf, SmolLM2MatchesLlamaCppOnAVariedCorpus) {
  const std::string path = tlora::testing::packaged_smollm2();
  if (path.empty()) GTEST_SKIP() << tlora::testing::kNoPackagedSmolLM2;
  const auto tokenizer = ByteLevelBPETokenizer::from_gguf(tlora::gguf::File::open(path));
  EXPECT_TRUE(tokenizer.options().split_digits) << "tokenizer.ggml.pre is smollm";
  EXPECT_EQ(tokenizer.token_to_id("<|im_start|>"), 1);
  const json fixture = load("llamacpp.json");
  expect_ids(tokenizer, fixture, /*add_special_tokens=*/false);
  for (const auto& text : fixture["texts"]) {
    const std::string s = text;
    const auto ids = tokenizer.encode(s, false).ids;
    EXPECT_EQ(tokenizer.decode(ids), s) << "byte-level BPE decodes to the text it encoded";
  }
  const auto ids = tokenizer.encode("<|im_start|>user", false).ids;
  EXPECT_EQ(tokenizer.decode(ids, /*skip_special_tokens=*/true), "user");
}

TEST(TokenizerGguf, DigitsThenByteLevelMatchesTokenizers) {
  const auto tokenizer = ByteLevelBPETokenizer::from_tokenizer_json(kFixtures + "/digits_bpe_tokenizer.json");
  EXPECT_TRUE(tokenizer.options().split_digits);
  expect_ids(tokenizer, load("digits_bpe.json"), /*add_special_tokens=*/true);
}

TEST(TokenizerGguf, UnsupportedTokenizersAreRefusedByName) {
  using V = tlora::gguf::Value;
  using T = tlora::gguf::ValueType;
  const auto file_with = [](const std::string& model, const std::string& pre) {
    tlora::gguf::Writer w;
    w.set("tokenizer.ggml.model", V(T::STRING, model));
    w.set("tokenizer.ggml.pre", V(T::STRING, pre));
    w.set("tokenizer.ggml.tokens", V(T::ARRAY, V::Array{T::STRING, {V(T::STRING, std::string("a"))}}));
    w.set("tokenizer.ggml.merges", V(T::ARRAY, V::Array{T::STRING, {}}));
    return tlora::gguf::File::from_bytes(w.bytes(), "tok.gguf");
  };
  EXPECT_TRUE(contains(error_of([&] { ByteLevelBPETokenizer::from_gguf(file_with("llama", "default")); }),
                       "tokenizer.ggml.model 'llama' is not supported"));
  EXPECT_TRUE(contains(error_of([&] { ByteLevelBPETokenizer::from_gguf(file_with("gpt2", "llama-bpe")); }),
                       "tokenizer.ggml.pre 'llama-bpe' is not supported"));
  EXPECT_EQ(ByteLevelBPETokenizer::from_gguf(file_with("gpt2", "gpt2")).encode("a", false).ids, std::vector<int64_t>{0});
}

}  // namespace
