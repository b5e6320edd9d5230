// WordPiece (BERT) in isolation: BertNormalizer's steps, greedy longest-match WordPiece with
// continuation pieces and the over-long-word rule, vocab.txt parsing, model folders, and the
// errors of every loader.
#include "test_util.h"
#include <c10/util/Exception.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <iterator>
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
using Tokens = std::vector<std::string>;
using namespace std::string_literals;

using tlora::testing::error_of;
using tlora::testing::read_file;
using tlora::testing::TempDir;

const fs::path kFixtures = fs::path(TLORA_FIXTURE_DIR) / "tokenizers";

// A temporary folder, removed with the files written through it.
tt::Vocab vocab_of(const std::vector<std::string>& tokens) {
  tt::Vocab vocab;
  for (const auto& t : tokens) vocab.emplace(t, static_cast<int64_t>(vocab.size()));
  return vocab;
}

Tokens tokens(const tt::Tokenizer& tok, const std::string& text) {
  return tok.encode(text, /*add_special_tokens=*/false).tokens;
}

TEST(BertNormalizer, CleansSpacesCjkStripsAndLowercases) {
  const tt::WordPieceTokenizer uncased(
      vocab_of({"[UNK]", "hello", "world", "cafe", "你", "好", "ix", "!"}));
  EXPECT_EQ(tokens(uncased, "Héllo WÖRLD!"), (Tokens{"hello", "world", "!"}));
  EXPECT_EQ(tokens(uncased, "hel\0lo\u200b wo\u00adrld\ufffd"s), (Tokens{"hello", "world"}));
  EXPECT_EQ(tokens(uncased, "hello\u00a0world\u3000\thello\r\nworld"),
            (Tokens{"hello", "world", "hello", "world"}));
  EXPECT_EQ(tokens(uncased, "你好"), (Tokens{"你", "好"}));
  EXPECT_EQ(tokens(uncased, "cafe\u0301 \u0130x"), (Tokens{"cafe", "ix"}));  // NFD, marks dropped
  EXPECT_TRUE(tokens(uncased, "\0\u0001\u200b"s).empty());

  tt::WordPieceOptions cased;
  cased.normalizer->lowercase = false;  // strip_accents follows lowercase: off
  const tt::WordPieceTokenizer keep(vocab_of({"[UNK]", "Héllo", "hello"}), cased);
  EXPECT_EQ(tokens(keep, "Héllo"), (Tokens{"Héllo"}));
  EXPECT_EQ(tokens(keep, "He\u0301llo"), (Tokens{"[UNK]"}));  // no NFC either

  tt::WordPieceOptions no_cjk;
  no_cjk.normalizer->handle_chinese_chars = false;
  const tt::WordPieceTokenizer joined(vocab_of({"[UNK]", "你", "##好"}), no_cjk);
  EXPECT_EQ(tokens(joined, "你好"), (Tokens{"你", "##好"}));

  tt::WordPieceOptions raw;
  raw.normalizer.reset();
  const tt::WordPieceTokenizer none(vocab_of({"[UNK]", "Hello", "\u0001"}), raw);
  EXPECT_EQ(tokens(none, "Hello \u0001"), (Tokens{"Hello", "\u0001"}));
}

TEST(BertPreTokenizer, SplitsOnWhitespaceAndIsolatesPunctuation) {
  const tt::WordPieceTokenizer tok(
      vocab_of({"[UNK]", "a", "b", "'", ",", "-", "$", "¿", "«", "»", "©"}));
  EXPECT_EQ(tokens(tok, "a'b,a-b$a"), (Tokens{"a", "'", "b", ",", "a", "-", "b", "$", "a"}));
  EXPECT_EQ(tokens(tok, "¿a «b»"), (Tokens{"¿", "a", "«", "b", "»"}));
  EXPECT_EQ(tokens(tok, "a©b"), (Tokens{"[UNK]"}));  // a symbol, not punctuation: one word
}

TEST(WordPiece, GreedyLongestMatchWithContinuations) {
  tt::WordPieceOptions keep_accents;
  keep_accents.normalizer->strip_accents = false;
  const tt::WordPieceTokenizer tok(
      vocab_of({"[UNK]", "un", "##aff", "##able", "a", "ab", "##b", "##bc", "##c", "é", "##é"}),
      keep_accents);
  EXPECT_EQ(tokens(tok, "unaffable"), (Tokens{"un", "##aff", "##able"}));
  EXPECT_EQ(tokens(tok, "abc"), (Tokens{"ab", "##c"}));
  EXPECT_EQ(tokens(tok, "abx ab"), (Tokens{"[UNK]", "ab"}));  // one bad piece: the whole word
  // At most 100 code points (not bytes) per word.
  std::string e100, e101;
  for (int i = 0; i < 100; ++i) e100 += "é";
  e101 = e100 + "é";
  EXPECT_EQ(tokens(tok, e100).size(), 100u);
  EXPECT_EQ(tokens(tok, e101), (Tokens{"[UNK]"}));

  tt::WordPieceOptions options;
  options.max_input_chars_per_word = 3;
  options.continuing_subword_prefix = "@@";
  options.unk_token = "<?>";
  const tt::WordPieceTokenizer custom(vocab_of({"<?>", "a", "@@a"}), options);
  EXPECT_EQ(tokens(custom, "aaa aaaa"), (Tokens{"a", "@@a", "@@a", "<?>"}));
  EXPECT_EQ(custom.encode("aa", false).ids, (std::vector<int64_t>{1, 2}));
}

TEST(WordPiece, RefusesAVocabularyWithoutItsUnknownToken) {
  EXPECT_NE(error_of([] { tt::WordPieceTokenizer(vocab_of({"a"})); }).find("[UNK]"),
            std::string::npos);
  EXPECT_THROW(tt::WordPieceTokenizer(tt::Vocab{}), c10::Error);
}

TEST(WordPieceVocabTxt, LinesAsTheRustReader) {
  TempDir dir;
  // CRLF endings, trailing whitespace, an empty line, a later duplicate, no final newline.
  const fs::path vocab =
      dir.write("vocab.txt", "[PAD]\r\n[UNK]  \n[CLS]\n[SEP]\n[MASK]\n\nhello\nhi\nhello");
  const auto tok = tt::WordPieceTokenizer::from_vocab_txt(vocab);
  EXPECT_EQ(tok.token_to_id("[UNK]"), 1);
  EXPECT_EQ(tok.token_to_id(""), 5);
  EXPECT_EQ(tok.token_to_id("hello"), 8);
  EXPECT_EQ(tok.vocab_size(), 8u);
  EXPECT_EQ(tok.encode("Hello hi").ids, (std::vector<int64_t>{2, 8, 7, 3}));
  EXPECT_EQ(tok.encode_pair("hi", "").ids, (std::vector<int64_t>{2, 7, 3, 3}));
  EXPECT_EQ(tok.encode_pair("hi", "hello").type_ids, (std::vector<int64_t>{0, 0, 0, 1, 1}));

  const fs::path bad = dir.write("bad.txt", "[UNK]\nok\nbad\xff\n");
  EXPECT_NE(error_of([&] { tt::WordPieceTokenizer::from_vocab_txt(bad); }).find("line 3"),
            std::string::npos);
  const fs::path no_unk = dir.write("no_unk.txt", "a\nb\n");
  EXPECT_NE(error_of([&] { tt::WordPieceTokenizer::from_vocab_txt(no_unk); }).find("[UNK]"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              tt::WordPieceTokenizer::from_vocab_txt(dir.path() / "missing.txt");
            }).find("cannot open"),
            std::string::npos);
  const fs::path empty = dir.write("empty.txt", "");
  EXPECT_THROW(tt::WordPieceTokenizer::from_vocab_txt(empty), c10::Error);
}

TEST(TokenizerLoad, PicksByFilesAndHonoursTokenizerConfig) {
  TempDir dir;
  dir.write("vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nHello\nhello\n<sep>\n");
  dir.write("tokenizer_config.json",
            R"({"do_lower_case": false, "sep_token": {"content": "<sep>", "special": true}})");
  const auto tok = tt::load_tokenizer(dir.path());
  ASSERT_NE(dynamic_cast<tt::WordPieceTokenizer*>(tok.get()), nullptr);
  EXPECT_EQ(tok->encode("Hello").ids, (std::vector<int64_t>{2, 5, 7}));

  TempDir empty;
  EXPECT_NE(error_of([&] { tt::load_tokenizer(empty.path()); }).find("no tokenizer.json"),
            std::string::npos);

  TempDir both;
  both.write("vocab.txt", "[UNK]\n");
  both.write("tokenizer.json", read_file(kFixtures / "wordpiece" / "tokenizer.json"));
  EXPECT_EQ(tt::load_tokenizer(both.path())->vocab_size(),
            tt::WordPieceTokenizer::from_tokenizer_json(kFixtures / "wordpiece" / "tokenizer.json")
                .vocab_size());
}

TEST(TokenizerJsonFiles, DispatchAndErrors) {
  const auto wp = tt::load_tokenizer_json(kFixtures / "wordpiece" / "tokenizer.json");
  EXPECT_NE(dynamic_cast<tt::WordPieceTokenizer*>(wp.get()), nullptr);
  const auto bpe = tt::load_tokenizer_json(kFixtures / "roberta" / "tokenizer.json");
  EXPECT_NE(dynamic_cast<tt::ByteLevelBPETokenizer*>(bpe.get()), nullptr);

  const json base = json::parse(read_file(kFixtures / "wordpiece" / "tokenizer.json"));
  TempDir dir;
  const auto fails_with = [&](const std::string& name, const json& doc, const std::string& needle) {
    const fs::path p = dir.write(name, doc.dump());
    const std::string msg = error_of([&] { tt::load_tokenizer_json(p); });
    EXPECT_NE(msg.find(needle), std::string::npos) << name << ": " << msg;
    EXPECT_NE(msg.find(name), std::string::npos) << "the error names the file: " << msg;
  };
  json doc = base;
  doc["model"]["type"] = "Unigram";
  fails_with("unigram.json", doc, "Unigram");
  doc = base;
  doc["normalizer"] = {{"type", "NFC"}};
  fails_with("nfc.json", doc, "NFC");
  doc = base;
  doc["pre_tokenizer"] = {{"type", "Whitespace"}};
  fails_with("whitespace.json", doc, "BertPreTokenizer");
  doc = base;
  doc["model"]["vocab"]["[UNK]"] = "one";
  fails_with("vocab.json", doc, "[UNK]");
  doc = base;
  doc["added_tokens"][0].erase("content");
  fails_with("added.json", doc, "added_tokens[0]");
  doc = base;
  doc["post_processor"] = {{"type", "Fancy"}};
  fails_with("post.json", doc, "Fancy");
  doc = base;
  doc["truncation"] = {{"max_length", 8}, {"strategy", "Sideways"}};
  fails_with("trunc.json", doc, "Sideways");
  const fs::path broken = dir.write("broken.json", "{\"model\": ");
  EXPECT_NE(error_of([&] { tt::load_tokenizer_json(broken); }).find("not valid JSON"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              tt::WordPieceTokenizer::from_tokenizer_json(kFixtures / "roberta" / "tokenizer.json");
            }).find("expected WordPiece"),
            std::string::npos);
  EXPECT_THROW(tt::load_tokenizer_json(dir.path() / "missing.json"), c10::Error);

  // Truncation and padding of the file apply; BertProcessing is understood.
  doc = base;
  doc["truncation"] = {
      {"max_length", 4}, {"strategy", "LongestFirst"}, {"direction", "Right"}, {"stride", 0}};
  doc["padding"] = {{"strategy", {{"Fixed", 6}}},
                    {"direction", "Left"},
                    {"pad_to_multiple_of", nullptr},
                    {"pad_id", 0},
                    {"pad_type_id", 0},
                    {"pad_token", "[PAD]"}};
  doc["post_processor"] = {
      {"type", "BertProcessing"}, {"sep", {"[SEP]", 3}}, {"cls", {"[CLS]", 2}}};
  const fs::path configured = dir.write("configured.json", doc.dump());
  const auto tok = tt::load_tokenizer_json(configured);
  const tt::Encoding e = tok->encode("the the the the the");
  EXPECT_EQ(e.size(), 6u);
  EXPECT_EQ(e.attention_mask, (std::vector<int64_t>{0, 0, 1, 1, 1, 1}));
  EXPECT_EQ(e.ids[2], 2);
  EXPECT_EQ(e.ids[5], 3);
}

}  // namespace
