// Every tokenizer against Hugging Face (transformers 5.24, tokenizers 0.23.3) on hand-picked
// tricky strings, pairs, invalid UTF-8, truncation and padding: the committed fixture
// tests/fixtures/tokenizers/reference.json (small WordPiece and byte-level BPE vocabularies) and,
// when ctest's tokenizer_fixtures step has generated it, minilm_reference.json (all-MiniLM-L6-v2).
// Each tokenizer is checked through every loader listed for it (vocab files and tokenizer.json).
#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tlora/text/bpe.h"
#include "tlora/text/tokenizer.h"
#include "tlora/text/unicode.h"
#include "tlora/text/wordpiece.h"

namespace {

namespace fs = std::filesystem;
namespace tt = tlora::text;
using nlohmann::json;

const fs::path kCommitted = fs::path(TLORA_FIXTURE_DIR) / "tokenizers";

fs::path generated_dir() {
  const char* env = std::getenv("TLORA_TOKENIZER_FIXTURES");
  return env && *env ? fs::path(env) : fs::path(TLORA_TOKENIZER_FIXTURES);
}

bool readable(const fs::path& path) { return std::ifstream(path).good(); }

json read_json(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  return json::parse(std::string(std::istreambuf_iterator<char>(in), {}));
}

std::string unhex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

tt::TruncationStrategy strategy_of(const std::string& name) {
  if (name == "only_first") return tt::TruncationStrategy::OnlyFirst;
  if (name == "only_second") return tt::TruncationStrategy::OnlySecond;
  return tt::TruncationStrategy::LongestFirst;
}

// The tokenizer named by one loader entry ("files" relative to `dir`) with the options of the
// configuration, with truncation and padding off.
std::unique_ptr<tt::Tokenizer> make(const json& spec, const json& files, const fs::path& dir) {
  const json& options = spec.at("options");
  std::unique_ptr<tt::Tokenizer> tok;
  const fs::path first = dir / files.at(0).get<std::string>();
  if (spec.at("kind") == "wordpiece") {
    if (first.extension() == ".txt") {
      tt::BertOptions bert;
      bert.lowercase = options.value("lowercase", true);
      if (options.contains("strip_accents"))
        bert.strip_accents = options.at("strip_accents").get<bool>();
      bert.handle_chinese_chars = options.value("handle_chinese_chars", true);
      tok = std::make_unique<tt::WordPieceTokenizer>(
          tt::WordPieceTokenizer::from_vocab_txt(first, bert));
    } else {
      tok = std::make_unique<tt::WordPieceTokenizer>(
          tt::WordPieceTokenizer::from_tokenizer_json(first));
    }
  } else if (files.size() == 2) {
    tt::RobertaOptions roberta;
    roberta.add_prefix_space = options.value("add_prefix_space", false);
    tok = std::make_unique<tt::ByteLevelBPETokenizer>(tt::ByteLevelBPETokenizer::from_files(
        first, dir / files.at(1).get<std::string>(), roberta));
  } else {
    tok = std::make_unique<tt::ByteLevelBPETokenizer>(
        tt::ByteLevelBPETokenizer::from_tokenizer_json(first));
  }
  tok->set_truncation(std::nullopt);
  tok->set_padding(std::nullopt);
  return tok;
}

std::string describe(const json& c) {
  std::string s =
      c.contains("text") ? c.at("text").get<std::string>() : c.at("bytes_hex").get<std::string>();
  if (c.contains("pair")) s += " | " + c.at("pair").get<std::string>();
  return "'" + s.substr(0, 80) + "'";
}

struct Counts {
  size_t identical = 0, total = 0;
  size_t refused =
      0;  // max_length below the special-token count: HF skips truncation, tlora throws
};

// Plain encodings: ids, tokens, special-token positions and type ids.
void check_cases(const json& spec, const tt::Tokenizer& tok, Counts& counts) {
  for (const json& c : spec.at("cases")) {
    const bool special = c.at("add_special_tokens").get<bool>();
    std::string text;
    if (c.contains("bytes_hex")) {
      const std::string raw = unhex(c.at("bytes_hex").get<std::string>());
      EXPECT_THROW(tok.encode(raw), c10::Error) << "invalid UTF-8 must be refused: " << describe(c);
      text = tt::replace_invalid_utf8(raw);
      EXPECT_EQ(text, c.at("replaced").get<std::string>())
          << "Python's errors=replace: " << describe(c);
    } else {
      text = c.at("text").get<std::string>();
    }
    const tt::Encoding e = c.contains("pair")
                               ? tok.encode_pair(text, c.at("pair").get<std::string>(), special)
                               : tok.encode(text, special);
    bool same = e.ids == c.at("ids").get<std::vector<int64_t>>();
    EXPECT_EQ(e.ids, c.at("ids").get<std::vector<int64_t>>())
        << describe(c) << " special=" << special;
    if (c.contains("tokens")) {
      same = same && e.tokens == c.at("tokens").get<std::vector<std::string>>();
      EXPECT_EQ(e.tokens, c.at("tokens").get<std::vector<std::string>>()) << describe(c);
    }
    if (c.contains("special_positions")) {
      std::vector<int64_t> positions;
      for (size_t i = 0; i < e.size(); ++i) {
        if (e.special_tokens_mask[i]) positions.push_back(static_cast<int64_t>(i));
      }
      EXPECT_EQ(positions, c.at("special_positions").get<std::vector<int64_t>>()) << describe(c);
    }
    if (c.contains("type_ids")) {
      EXPECT_EQ(e.type_ids, c.at("type_ids").get<std::vector<int64_t>>()) << describe(c);
    }
    EXPECT_EQ(e.attention_mask, std::vector<int64_t>(e.size(), 1));
    ASSERT_EQ(e.tokens.size(), e.size());
    ASSERT_EQ(e.type_ids.size(), e.size());
    ++counts.total;
    counts.identical += same;
  }
}

// Truncation to every length and strategy. Hugging Face skips truncation when max_length is
// below the special-token count (an unsigned wrap-around); tlora refuses, so those expect an error.
void check_truncation(const json& spec, tt::Tokenizer& tok, Counts& counts) {
  for (const json& entry : spec.at("truncation")) {
    const std::string a = entry.at("text");
    const bool is_pair = entry.contains("pair");
    for (const json& r : entry.at("results")) {
      const size_t max_length = r.at("max_length");
      tok.set_truncation(
          tt::TruncationOptions{max_length, strategy_of(r.at("strategy")), tt::Side::Right});
      const auto encode = [&] {
        return is_pair ? tok.encode_pair(a, entry.at("pair").get<std::string>()) : tok.encode(a);
      };
      const std::string what = "max_length=" + std::to_string(max_length) + " " +
                               r.at("strategy").get<std::string>() + " " + describe(entry);
      ++counts.total;
      if (r.contains("error")) {
        EXPECT_THROW(encode(), c10::Error) << what << " (Hugging Face: " << r.at("error") << ")";
        ++counts.identical;
        continue;
      }
      if (max_length < tok.num_special_tokens_to_add(is_pair)) {
        EXPECT_THROW(encode(), c10::Error) << what;
        ++counts.refused;
        continue;
      }
      const tt::Encoding e = encode();
      const bool same = e.ids == r.at("ids").get<std::vector<int64_t>>();
      counts.identical += same;
      EXPECT_EQ(e.ids, r.at("ids").get<std::vector<int64_t>>()) << what;
      if (r.contains("type_ids"))
        EXPECT_EQ(e.type_ids, r.at("type_ids").get<std::vector<int64_t>>()) << what;
    }
  }
  tok.set_truncation(std::nullopt);
}

std::vector<int64_t> flatten(const json& rows) {
  std::vector<int64_t> out;
  for (const json& row : rows) {
    for (const json& v : row) out.push_back(v.get<int64_t>());
  }
  return out;
}

// Batches padded to the longest, to a length, to a multiple, on the left, with truncation.
void check_padding(const json& spec, tt::Tokenizer& tok, Counts& counts) {
  for (const json& c : spec.at("padding")) {
    tt::PaddingOptions padding;
    if (c.at("padding") == "max_length") padding.length = c.at("max_length").get<size_t>();
    padding.pad_to_multiple_of = c.value("pad_to_multiple_of", size_t{0});
    padding.direction = c.at("side") == "left" ? tt::Side::Left : tt::Side::Right;
    tok.set_padding(padding);
    ASSERT_EQ(tok.padding()->pad_id, spec.at("pad_id").get<int64_t>());
    if (c.contains("max_length")) {
      tok.set_truncation(tt::TruncationOptions{c.at("max_length").get<size_t>()});
    } else {
      tok.set_truncation(std::nullopt);
    }
    const auto texts = c.at("texts").get<std::vector<std::string>>();
    const std::vector<tt::Encoding> batch =
        c.contains("pairs") ? tok.encode_batch(texts, c.at("pairs").get<std::vector<std::string>>())
                            : tok.encode_batch(texts);
    std::vector<std::vector<int64_t>> ids, mask, types;
    for (const tt::Encoding& e : batch) {
      ids.push_back(e.ids);
      mask.push_back(e.attention_mask);
      types.push_back(e.type_ids);
    }
    const std::string what = c.dump().substr(0, 160);
    const bool same = json(ids) == c.at("input_ids") && json(mask) == c.at("attention_mask");
    ++counts.total;
    counts.identical += same;
    EXPECT_EQ(json(ids), c.at("input_ids")) << what;
    EXPECT_EQ(json(mask), c.at("attention_mask")) << what;
    if (c.contains("token_type_ids")) EXPECT_EQ(json(types), c.at("token_type_ids")) << what;
    const tt::Batch tensors = tt::to_batch(batch);
    const auto rows = static_cast<int64_t>(batch.size());
    const std::vector<int64_t> flat = flatten(c.at("input_ids"));
    EXPECT_TRUE(at::equal(tensors.input_ids, at::tensor(flat, at::kLong).view({rows, -1}))) << what;
    EXPECT_TRUE(at::equal(tensors.attention_mask,
                          at::tensor(flatten(c.at("attention_mask")), at::kLong).view({rows, -1})));
  }
  tok.set_padding(std::nullopt);
  tok.set_truncation(std::nullopt);
}

// Runs `check` for every configuration of `kind` in the fixture file, through every loader.
template <typename Check>
void for_each_loader(const fs::path& fixture, const std::string& kind, const char* section,
                     Check check) {
  const json reference = read_json(fixture);
  const fs::path dir = fixture.parent_path();
  Counts counts;
  size_t loaders = 0;
  for (const auto& [name, spec] : reference.at("tokenizers").items()) {
    if (spec.at("kind") != kind || !spec.contains(section)) continue;
    for (const json& files : spec.at("loaders")) {
      SCOPED_TRACE(name + " from " + files.dump());
      auto tok = make(spec, files, dir);
      check(spec, *tok, counts);
      ++loaders;
    }
  }
  ASSERT_GT(loaders, 0u) << "no " << kind << " tokenizer with " << section << " in " << fixture;
  std::cout << "[ parity   ] " << fixture.filename().string() << " " << kind << " " << section
            << ": " << counts.identical << "/" << counts.total << " identical to Hugging Face";
  if (counts.refused) std::cout << " (" << counts.refused << " refused where it skips truncation)";
  std::cout << " over " << loaders << " loaders\n";
}

TEST(TokenizerReference, WordPieceCases) {
  for_each_loader(kCommitted / "reference.json", "wordpiece", "cases", check_cases);
}

TEST(TokenizerReference, BpeCases) {
  for_each_loader(kCommitted / "reference.json", "bpe", "cases", check_cases);
}

TEST(TokenizerReference, WordPieceTruncation) {
  for_each_loader(kCommitted / "reference.json", "wordpiece", "truncation", check_truncation);
}

TEST(TokenizerReference, BpeTruncation) {
  for_each_loader(kCommitted / "reference.json", "bpe", "truncation", check_truncation);
}

TEST(TokenizerReference, WordPiecePadding) {
  for_each_loader(kCommitted / "reference.json", "wordpiece", "padding", check_padding);
}

TEST(TokenizerReference, BpePadding) {
  for_each_loader(kCommitted / "reference.json", "bpe", "padding", check_padding);
}

class TokenizerMiniLMReference : public ::testing::Test {
 protected:
  void SetUp() override {
    fixture_ = generated_dir() / "minilm_reference.json";
    if (!readable(fixture_)) {
      GTEST_SKIP() << "no " << fixture_ << ": run ctest (its tokenizer_fixtures step) or "
                   << "tools/tokenizer_fixtures.py --out " << generated_dir().string();
    }
  }
  fs::path fixture_;
};

TEST_F(TokenizerMiniLMReference, Cases) {
  for_each_loader(fixture_, "wordpiece", "cases", check_cases);
}

TEST_F(TokenizerMiniLMReference, Truncation) {
  for_each_loader(fixture_, "wordpiece", "truncation", check_truncation);
}

TEST_F(TokenizerMiniLMReference, Padding) {
  for_each_loader(fixture_, "wordpiece", "padding", check_padding);
}

// tokenizer.json's own truncation and padding (128, fixed) apply, as in tokenizers.Tokenizer.
TEST_F(TokenizerMiniLMReference, TokenizerJsonSettingsApply) {
  const auto tok = tt::load_tokenizer(generated_dir() / "minilm");
  ASSERT_TRUE(tok->truncation().has_value());
  EXPECT_EQ(tok->truncation()->max_length, 128u);
  ASSERT_TRUE(tok->padding().has_value());
  EXPECT_EQ(tok->padding()->length, std::optional<size_t>(128));
  const tt::Encoding e = tok->encode("Hello world");
  ASSERT_EQ(e.size(), 128u);
  EXPECT_EQ(e.ids[0], 101);
  EXPECT_EQ(e.ids[3], 102);
  EXPECT_EQ(e.ids[4], 0);
  EXPECT_EQ(e.attention_mask[3], 1);
  EXPECT_EQ(e.attention_mask[4], 0);
  std::string long_text;
  for (int i = 0; i < 300; ++i) long_text += "word ";
  EXPECT_EQ(tok->encode(long_text).size(), 128u);
}

}  // namespace
