// Token ids identical to Hugging Face's for every sentence and sentence pair of the GLUE dev sets
// (CoLA, SST-2, MRPC, STS-B, RTE, WNLI, QNLI), with the MiniLM WordPiece tokenizer and the
// committed RoBERTa-style byte-level BPE, untruncated and truncated to 128 with longest_first.
// The expected ids are generated at test time by ctest's tokenizer_fixtures step
// (tools/tokenizer_fixtures.py --out); without them the tests skip.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tlora/text/bpe.h"
#include "tlora/text/tokenizer.h"
#include "tlora/text/wordpiece.h"

namespace {

namespace fs = std::filesystem;
namespace tt = tlora::text;
using nlohmann::json;

fs::path generated_dir() {
  const char* env = std::getenv("TLORA_TOKENIZER_FIXTURES");
  return env && *env ? fs::path(env) : fs::path(TLORA_TOKENIZER_FIXTURES);
}

class TokenizerGlueParity : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const fs::path path = generated_dir() / "glue.json";
    std::ifstream in(path, std::ios::binary);
    if (!in.good()) return;
    glue_ = new json(json::parse(std::string(std::istreambuf_iterator<char>(in), {})));
  }
  static void TearDownTestSuite() {
    delete glue_;
    glue_ = nullptr;
  }
  void SetUp() override {
    if (!glue_) {
      GTEST_SKIP()
          << "no " << (generated_dir() / "glue.json")
          << ": run ctest (its tokenizer_fixtures step) or tools/tokenizer_fixtures.py --out "
          << generated_dir().string();
    }
  }

  // Encodes every example with `tok` (batched, in parallel) and compares with the expected ids
  // (and type ids, where Hugging Face returns them); reports the agreement per task.
  static void check(tt::Tokenizer& tok, const std::string& name, const std::string& loader) {
    const json& examples = glue_->at("examples");
    const json& expected = glue_->at("tokenizers").at(name);
    const auto max_length = glue_->at("max_length").get<size_t>();
    std::vector<std::string> singles, firsts, seconds;
    std::vector<size_t> single_index, pair_index;
    for (size_t i = 0; i < examples.size(); ++i) {
      const json& e = examples[i];
      if (e.contains("b")) {
        firsts.push_back(e.at("a"));
        seconds.push_back(e.at("b"));
        pair_index.push_back(i);
      } else {
        singles.push_back(e.at("a"));
        single_index.push_back(i);
      }
    }
    for (const bool truncated : {false, true}) {
      if (truncated) {
        tok.set_truncation(tt::TruncationOptions{max_length, tt::TruncationStrategy::LongestFirst});
      } else {
        tok.set_truncation(std::nullopt);
      }
      std::vector<tt::Encoding> encodings(examples.size());
      std::vector<tt::Encoding> s = tok.encode_batch(singles);
      std::vector<tt::Encoding> p = tok.encode_batch(firsts, seconds);
      for (size_t k = 0; k < s.size(); ++k) encodings[single_index[k]] = std::move(s[k]);
      for (size_t k = 0; k < p.size(); ++k) encodings[pair_index[k]] = std::move(p[k]);
      const json& ids = expected.at(truncated ? "ids_truncated" : "ids");
      const json& types = expected.at(truncated ? "type_ids_truncated" : "type_ids");
      std::map<std::string, std::pair<size_t, size_t>> per_task;  // identical, total
      size_t identical = 0, shown = 0;
      for (size_t i = 0; i < examples.size(); ++i) {
        // A truncated entry is null where truncation changed nothing.
        const json& want = ids[i].is_null() ? expected.at("ids")[i] : ids[i];
        const json& want_types = types[i].is_null() ? expected.at("type_ids")[i] : types[i];
        bool same = encodings[i].ids == want.get<std::vector<int64_t>>();
        if (!want_types.is_null())
          same = same && encodings[i].type_ids == want_types.get<std::vector<int64_t>>();
        const std::string task = examples[i].at("task").get<std::string>() +
                                 (examples[i].contains("b") ? " pairs" : " sentences");
        auto& [ok, total] = per_task[task];
        ++total;
        ok += same;
        identical += same;
        if (!same && shown++ < 5) {
          ADD_FAILURE() << loader << (truncated ? " truncated" : "") << ": " << task << " row "
                        << examples[i].at("row") << " differs: '"
                        << examples[i].at("a").get<std::string>()
                        << "'\n  tlora: " << json(encodings[i].ids) << "\n  HF:    " << want;
        }
      }
      std::cout << "[ parity   ] " << name << " via " << loader
                << (truncated ? ", truncated to " + std::to_string(max_length) : ", untruncated")
                << ": " << identical << "/" << examples.size() << " identical ("
                << 100.0 * static_cast<double>(identical) / static_cast<double>(examples.size())
                << "%):";
      for (const auto& [task, counts] : per_task) {
        std::cout << " " << task << " " << counts.first << "/" << counts.second << ";";
      }
      std::cout << "\n";
      EXPECT_EQ(identical, examples.size()) << loader;
    }
    tok.set_truncation(std::nullopt);
  }

  static json* glue_;
};

json* TokenizerGlueParity::glue_ = nullptr;

TEST_F(TokenizerGlueParity, MiniLMFromVocabTxt) {
  auto tok = tt::WordPieceTokenizer::from_vocab_txt(generated_dir() / "minilm" / "vocab.txt");
  check(tok, "minilm", "vocab.txt");
}

TEST_F(TokenizerGlueParity, MiniLMFromTokenizerJson) {
  auto tok =
      tt::WordPieceTokenizer::from_tokenizer_json(generated_dir() / "minilm" / "tokenizer.json");
  tok.set_padding(std::nullopt);
  check(tok, "minilm", "tokenizer.json");
}

TEST_F(TokenizerGlueParity, RobertaFromFiles) {
  const fs::path dir = fs::path(TLORA_FIXTURE_DIR) / "tokenizers" / "roberta";
  auto tok = tt::ByteLevelBPETokenizer::from_files(dir / "vocab.json", dir / "merges.txt");
  check(tok, "roberta", "vocab.json + merges.txt");
}

TEST_F(TokenizerGlueParity, RobertaFromTokenizerJson) {
  const fs::path dir = fs::path(TLORA_FIXTURE_DIR) / "tokenizers" / "roberta";
  auto tok = tt::ByteLevelBPETokenizer::from_tokenizer_json(dir / "tokenizer.json");
  check(tok, "roberta", "tokenizer.json");
}

}  // namespace
