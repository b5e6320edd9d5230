// The tokenizer pipeline around the models: UTF-8 validation and Python-compatible replacement,
// added tokens (single_word, lstrip, rstrip, normalized) as in Hugging Face's own tests,
// truncation strategies, padding, batching into tensors, parallel batches and the errors.
#include "test_util.h"
#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "tlora/text/encoding.h"
#include "tlora/text/tokenizer.h"
#include "tlora/text/unicode.h"
#include "tlora/text/wordpiece.h"

namespace {

using tlora::testing::error_of;

namespace tt = tlora::text;
using Ids = std::vector<int64_t>;
using Tokens = std::vector<std::string>;

// A lowercasing WordPiece tokenizer whose vocabulary holds BERT's special tokens (0-4), the
// letters a-z (5-30) and a few words, with BERT's template.
tt::WordPieceTokenizer letters() {
  tt::Vocab vocab{{"[PAD]", 0}, {"[UNK]", 1}, {"[CLS]", 2}, {"[SEP]", 3}, {"[MASK]", 4}};
  for (char c = 'a'; c <= 'z'; ++c) vocab[std::string(1, c)] = 5 + (c - 'a');
  for (const char* word : {"hi", "there", "is", "anthony", "read", "book", "i", "my", "name",
                           "mask", "ony", "[", "]", "<", ">"}) {
    vocab.emplace(word, static_cast<int64_t>(vocab.size()));
  }
  tt::WordPieceTokenizer tok(std::move(vocab));
  std::vector<tt::AddedToken> specials;
  for (const char* t : {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"})
    specials.emplace_back().content = t;
  tok.add_tokens(specials);
  tok.set_post_processor(tt::PostProcessorTemplate::bert("[CLS]", 2, "[SEP]", 3));
  return tok;
}

TEST(TokenizerUtf8, ReplacesLikePythonErrorsReplace) {
  // Expected values: bytes.decode("utf-8", errors="replace") in CPython 3.11.
  const std::string r = "\xef\xbf\xbd";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"abc\xff"
       "def",
       "abc" + r + "def"},
      {"\xc0\xaf", r + r},          // never-valid lead byte, then a lone continuation
      {"\xed\xa0\x80", r + r + r},  // a surrogate: ED allows only 80-9F next
      {"\xe2\x82", r},              // truncated: one replacement for the maximal subpart
      {"\xe2\x82x", r + "x"},
      {"\xf4\x90\x80\x80", r + r + r + r},  // above U+10FFFF
      {"\xe0\x80\xaf", r + r + r},          // overlong
      {"\xf0\x9f\x98 ok", r + " ok"},
      {"\xc3\xa9\xc3", "\xc3\xa9" + r},
      {"\xf8\x88\x80\x80\x80", r + r + r + r + r},
      {"ok\x80\x80ok", "ok" + r + r + "ok"},
      {"fine \xf0\x9f\xa4\x97", "fine \xf0\x9f\xa4\x97"},
  };
  for (const auto& [in, want] : cases) EXPECT_EQ(tt::replace_invalid_utf8(in), want);
  EXPECT_EQ(tt::find_invalid_utf8("abc"), std::string_view::npos);
  EXPECT_EQ(tt::find_invalid_utf8("ab\xe2\x82"), 2u);
  EXPECT_EQ(tt::find_invalid_utf8("\xc3\xa9\xed\xa0\x80"), 2u);
}

TEST(TokenizerUtf8, InvalidTextIsRefusedWithItsOffset) {
  const auto tok = letters();
  const std::string msg = error_of([&] { tok.encode("ab\xff"); });
  EXPECT_NE(msg.find("not valid UTF-8"), std::string::npos) << msg;
  EXPECT_NE(msg.find("0xff at offset 2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("replace_invalid_utf8"), std::string::npos) << msg;
  EXPECT_THROW(tok.encode_pair("ok", "\xc0"), c10::Error);
  // BertNormalizer deletes the U+FFFD that replaces the bad byte.
  EXPECT_EQ(tok.encode(tt::replace_invalid_utf8("a\xff b")).ids, (Ids{2, 5, 6, 3}));
}

TEST(TokenizerEncoding, TruncateAppendAndPad) {
  tt::Encoding e{{1, 2, 3}, {0, 0, 0}, {1, 1, 1}, {1, 0, 0}, {"a", "b", "c"}};
  tt::Encoding f = e;
  f.truncate(2);
  EXPECT_EQ(f.ids, (Ids{1, 2}));
  EXPECT_EQ(f.tokens, (Tokens{"a", "b"}));
  f = e;
  f.truncate(2, /*from_left=*/true);
  EXPECT_EQ(f.ids, (Ids{2, 3}));
  EXPECT_EQ(f.special_tokens_mask, (Ids{0, 0}));
  f.truncate(5);
  EXPECT_EQ(f.size(), 2u);
  f.append(e);
  EXPECT_EQ(f.ids, (Ids{2, 3, 1, 2, 3}));

  std::vector<tt::Encoding> batch = {e, f};
  tt::PaddingOptions padding;
  padding.pad_id = 9;
  padding.pad_token = "[PAD]";
  padding.pad_type_id = 7;
  tt::pad_encodings(batch, padding);  // to the longest: 5
  EXPECT_EQ(batch[0].ids, (Ids{1, 2, 3, 9, 9}));
  EXPECT_EQ(batch[0].type_ids, (Ids{0, 0, 0, 7, 7}));
  EXPECT_EQ(batch[0].attention_mask, (Ids{1, 1, 1, 0, 0}));
  EXPECT_EQ(batch[0].special_tokens_mask, (Ids{1, 0, 0, 1, 1}));
  EXPECT_EQ(batch[0].tokens.back(), "[PAD]");
  EXPECT_EQ(batch[1].ids, f.ids);

  batch = {e};
  padding.pad_to_multiple_of = 4;
  padding.direction = tt::Side::Left;
  tt::pad_encodings(batch, padding);
  EXPECT_EQ(batch[0].ids, (Ids{9, 1, 2, 3}));
  EXPECT_EQ(batch[0].attention_mask, (Ids{0, 1, 1, 1}));

  batch = {f};
  padding.length = 3;  // shorter than the encoding: left as it is
  tt::pad_encodings(batch, padding);
  EXPECT_EQ(batch[0].size(), 5u);

  padding.pad_id.reset();
  EXPECT_THROW(tt::pad_encodings(batch, padding), c10::Error);
}

TEST(TokenizerEncoding, ToBatchStacksEqualLengths) {
  const tt::Encoding a{{1, 2}, {0, 1}, {1, 1}, {0, 0}, {"x", "y"}};
  const tt::Encoding b{{3, 0}, {0, 0}, {1, 0}, {0, 1}, {"z", "[PAD]"}};
  const std::vector<tt::Encoding> both = {a, b};
  const tt::Batch batch = tt::to_batch(both);
  EXPECT_EQ(batch.input_ids.sizes(), (at::IntArrayRef{2, 2}));
  EXPECT_EQ(batch.input_ids.scalar_type(), at::kLong);
  EXPECT_TRUE(at::equal(batch.input_ids, at::tensor(Ids{1, 2, 3, 0}).view({2, 2})));
  EXPECT_TRUE(at::equal(batch.attention_mask, at::tensor(Ids{1, 1, 1, 0}).view({2, 2})));
  EXPECT_TRUE(at::equal(batch.token_type_ids, at::tensor(Ids{0, 1, 0, 0}).view({2, 2})));
  const tt::Batch empty = tt::to_batch({});
  EXPECT_EQ(empty.input_ids.sizes(), (at::IntArrayRef{0, 0}));
  const std::vector<tt::Encoding> ragged = {a, tt::Encoding{{1}, {0}, {1}, {0}, {"x"}}};
  EXPECT_NE(error_of([&] { tt::to_batch(ragged); }).find("enable padding"), std::string::npos);
}

TEST(TokenizerTruncation, StrategiesAsHuggingFace) {
  auto tok = letters();
  const std::string ten = "a b c d e f g h i j", three = "k l m";
  // Budget 8 - 3 specials = 5 for (10, 3): the shorter keeps max/2 = 2, the longer the rest.
  tok.set_truncation(tt::TruncationOptions{8, tt::TruncationStrategy::LongestFirst});
  EXPECT_EQ(tok.encode_pair(ten, three).ids, (Ids{2, 5, 6, 7, 3, 15, 16, 3}));
  EXPECT_EQ(tok.encode_pair(ten, three).type_ids, (Ids{0, 0, 0, 0, 0, 1, 1, 1}));
  // Budget 13 - 3 = 10: the short one fits whole, the long one gets the remaining 7.
  tok.set_truncation(tt::TruncationOptions{13, tt::TruncationStrategy::LongestFirst});
  EXPECT_EQ(tok.encode_pair(ten, three).size(), 13u);
  EXPECT_EQ(tok.encode_pair(ten, three).ids[8], 3);
  tok.set_truncation(tt::TruncationOptions{8, tt::TruncationStrategy::OnlyFirst});
  EXPECT_EQ(tok.encode_pair(ten, three).ids, (Ids{2, 5, 6, 3, 15, 16, 17, 3}));
  tok.set_truncation(tt::TruncationOptions{8, tt::TruncationStrategy::OnlySecond});
  EXPECT_NE(error_of([&] { tok.encode_pair(ten, three); }).find("too short"), std::string::npos);
  EXPECT_EQ(tok.encode_pair(three, ten).ids, (Ids{2, 15, 16, 17, 3, 5, 6, 3}));
  EXPECT_NE(error_of([&] { tok.encode(ten); }).find("needs a pair"), std::string::npos);
  EXPECT_EQ(tok.encode("a b").ids, (Ids{2, 5, 6, 3}));  // fits: no pair needed
  tok.set_truncation(
      tt::TruncationOptions{4, tt::TruncationStrategy::LongestFirst, tt::Side::Left});
  EXPECT_EQ(tok.encode(ten).ids, (Ids{2, 13, 14, 3}));
  // Exactly the special tokens: both sequences emptied, whatever the strategy.
  tok.set_truncation(tt::TruncationOptions{3, tt::TruncationStrategy::OnlySecond});
  EXPECT_EQ(tok.encode_pair(ten, three).ids, (Ids{2, 3, 3}));
  tok.set_truncation(tt::TruncationOptions{2, tt::TruncationStrategy::LongestFirst});
  EXPECT_NE(error_of([&] { tok.encode_pair(ten, three); }).find("leaves no room"),
            std::string::npos);
  EXPECT_EQ(tok.encode_pair(ten, three, /*add_special_tokens=*/false).size(), 2u);
}

TEST(TokenizerPadding, BatchesAndSingles) {
  auto tok = letters();
  tt::PaddingOptions padding;
  tok.set_padding(padding);
  EXPECT_EQ(tok.padding()->pad_id, 0);
  EXPECT_EQ(tok.padding()->pad_token, "[PAD]");
  const std::vector<std::string> texts = {"a", "a b c", ""};
  const auto batch = tok.encode_batch(texts);
  ASSERT_EQ(batch.size(), 3u);
  for (const auto& e : batch) EXPECT_EQ(e.size(), 5u);
  EXPECT_EQ(batch[2].ids, (Ids{2, 3, 0, 0, 0}));
  EXPECT_EQ(tt::to_batch(batch).input_ids.size(1), 5);
  padding.length = 6;
  tok.set_padding(padding);
  EXPECT_EQ(tok.encode("a").ids, (Ids{2, 5, 3, 0, 0, 0}));
  padding.pad_token = "<nope>";
  EXPECT_NE(error_of([&] { tok.set_padding(padding); }).find("<nope>"), std::string::npos);
  padding.pad_id = 4;
  tok.set_padding(padding);
  EXPECT_EQ(tok.encode("").ids, (Ids{2, 3, 4, 4, 4, 4}));
  tok.set_padding(std::nullopt);
  EXPECT_EQ(tok.encode("").ids, (Ids{2, 3}));
}

TEST(TokenizerBatch, ParallelEqualsSequential) {
  auto tok = letters();
  std::vector<std::string> firsts, seconds;
  for (int i = 0; i < 2000; ++i) {
    firsts.push_back(std::string(1 + i % 7, static_cast<char>('a' + i % 26)) + " hi there");
    seconds.push_back(i % 3 ? "is anthony" : "");
  }
  const auto singles = tok.encode_batch(firsts);
  const auto pairs = tok.encode_batch(firsts, seconds);
  for (size_t i = 0; i < firsts.size(); ++i) {
    ASSERT_EQ(singles[i].ids, tok.encode(firsts[i]).ids);
    ASSERT_EQ(pairs[i].ids, tok.encode_pair(firsts[i], seconds[i]).ids);
  }
  const std::vector<std::string> one = {"a"};
  EXPECT_THROW(tok.encode_batch(firsts, one), c10::Error);
  firsts[1234] = "bad \xff byte";  // an error inside the parallel loop reaches the caller
  EXPECT_THROW(tok.encode_batch(firsts), c10::Error);
  EXPECT_TRUE(tok.encode_batch(std::vector<std::string>{}).empty());
}

TEST(TokenizerAddedTokens, SpecialTokensInTextAndIds) {
  auto tok = letters();
  EXPECT_EQ(tok.encode("a[MASK]b [SEP]").tokens,
            (Tokens{"[CLS]", "a", "[MASK]", "b", "[SEP]", "[SEP]"}));
  EXPECT_EQ(tok.encode("a[MASK]b", false).special_tokens_mask, (Ids{0, 0, 0}));
  // Special tokens match the raw text, case-sensitively.
  EXPECT_EQ(tok.encode("[mask]", false).tokens, (Tokens{"[", "mask", "]"}));
  // New tokens get the next free ids; re-adding one keeps its id.
  const size_t before = tok.vocab_size();
  std::vector<tt::AddedToken> extra(2);
  extra[0].content = "<new>";
  extra[1].content = "<newer>";
  tok.add_tokens(extra);
  EXPECT_EQ(tok.token_to_id("<new>"), static_cast<int64_t>(before));
  EXPECT_EQ(tok.token_to_id("<newer>"), static_cast<int64_t>(before + 1));
  EXPECT_EQ(tok.vocab_size(), before + 2);
  EXPECT_EQ(tok.vocab_size(false), before);
  EXPECT_EQ(tok.id_to_token(static_cast<int64_t>(before)), "<new>");
  EXPECT_EQ(tok.id_to_token(5), "a");
  EXPECT_FALSE(tok.id_to_token(12345).has_value());
  tok.add_tokens(std::vector<tt::AddedToken>(extra.begin(), extra.begin() + 1));
  EXPECT_EQ(tok.token_to_id("<new>"), static_cast<int64_t>(before));
  // Leftmost-longest: <newer> wins over its prefix <new>.
  EXPECT_EQ(tok.encode("x<newer>y", false).tokens, (Tokens{"x", "<newer>", "y"}));
}

// Hugging Face's added_vocabulary.rs tests (non-special tokens are normalized there), with a
// lowercasing normalizer.
TEST(TokenizerAddedTokens, OptionsAsHuggingFace) {
  auto tok = letters();
  std::vector<tt::AddedToken> words(3);
  words[0].content = "my";
  words[0].lstrip = words[0].rstrip = true;
  words[1].content = "name";
  words[2].content = "ony";
  words[2].single_word = true;
  for (auto& w : words) {
    w.special = false;
    w.normalized = true;
  }
  tok.add_tokens(words);
  const size_t ony = *tok.token_to_id("ony");
  const tt::Encoding e = tok.encode("[CLS] My name is Anthony [SEP]", false);
  // "ony" inside "Anthony" is not a single word.
  EXPECT_EQ(e.tokens, (Tokens{"[CLS]", "my", "name", "is", "anthony", "[SEP]"}));
  EXPECT_EQ(std::count(e.ids.begin(), e.ids.end(), ony), 0);

  tok = letters();
  tt::AddedToken mask;
  mask.content = "<mask>";
  mask.special = false;
  mask.normalized = true;
  mask.single_word = true;
  tok.add_tokens({&mask, 1});
  EXPECT_EQ(tok.encode("<mask> My name <mask> A<mask> <mask>ony <mask>", false).tokens,
            (Tokens{"<mask>", "my", "name", "<mask>", "a", "<", "mask", ">", "<", "mask", ">",
                    "ony", "<mask>"}));
  tok = letters();
  mask.lstrip = mask.rstrip = true;
  tok.add_tokens({&mask, 1});
  EXPECT_EQ(tok.encode("Hi <mask> there\t<mask>\t<mask>\u2000", false).tokens,
            (Tokens{"hi", "<mask>", "there", "<mask>", "<mask>"}));

  // A normalized token matches the normalized text.
  tok = letters();
  tt::AddedToken yesterday;
  yesterday.content = "Yesterday";
  yesterday.special = false;
  yesterday.normalized = true;
  tok.add_tokens({&yesterday, 1});
  EXPECT_EQ(tok.encode("I read a book YESTERDAY", false).tokens,
            (Tokens{"i", "read", "a", "book", "Yesterday"}));
}

}  // namespace
