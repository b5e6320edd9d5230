// Batching of GLUE features: coverage, reproducibility, length grouping, padding; and task scores.
#include "tlora/glue/batching.h"
#include "tlora/glue/metrics.h"
#include "tlora/glue/scores.h"
#include "tlora/models/loading.h"
#include "tlora/models/packaged.h"

#include "test_util.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

namespace {

using tlora::testing::contains;
using tlora::testing::error_of;
namespace glue = tlora::glue;

const std::string kGlue = TLORA_FIXTURE_DIR "/../../../shared/data/glue";

std::vector<int64_t> random_lengths(size_t n) {
  std::vector<int64_t> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = 5 + static_cast<int64_t>((i * 7919) % 120);
  return out;
}

// Padding tokens a batching adds: each batch is padded to its longest example.
int64_t padding(const std::vector<std::vector<int64_t>>& batches, const std::vector<int64_t>& lengths) {
  int64_t pad = 0;
  for (const auto& b : batches) {
    int64_t longest = 0;
    for (int64_t i : b) longest = std::max(longest, lengths[i]);
    for (int64_t i : b) pad += longest - lengths[i];
  }
  return pad;
}

TEST(GlueBatching, EveryExampleOnceAndReproducible) {
  const auto lengths = random_lengths(1003);
  for (bool grouped : {false, true}) {
    glue::BatchingOptions o;
    o.batch_size = 16;
    o.group_by_length = grouped;
    o.seed = 7;
    const auto a = glue::train_batches(lengths, o, 0);
    EXPECT_EQ(a, glue::train_batches(lengths, o, 0));
    EXPECT_NE(a, glue::train_batches(lengths, o, 1)) << "epochs must be shuffled differently";
    o.seed = 8;
    EXPECT_NE(a, glue::train_batches(lengths, o, 0)) << "seeds must shuffle differently";
    std::vector<int64_t> seen;
    for (const auto& b : a) {
      EXPECT_LE(b.size(), 16u);
      seen.insert(seen.end(), b.begin(), b.end());
    }
    std::sort(seen.begin(), seen.end());
    std::vector<int64_t> all(lengths.size());
    std::iota(all.begin(), all.end(), 0);
    EXPECT_EQ(seen, all);
    EXPECT_EQ(a.size(), (lengths.size() + 15) / 16);
  }
}

TEST(GlueBatching, GroupingByLengthCutsPadding) {
  const auto lengths = random_lengths(4000);
  glue::BatchingOptions o;
  o.batch_size = 32;
  o.group_by_length = false;
  const int64_t plain = padding(glue::train_batches(lengths, o, 0), lengths);
  o.group_by_length = true;
  const int64_t grouped = padding(glue::train_batches(lengths, o, 0), lengths);
  EXPECT_LT(grouped * 5, plain) << "grouped " << grouped << " vs plain " << plain;
  // Evaluation batches are sorted by length: padding is the least any batching can do.
  EXPECT_LE(padding(glue::eval_batches(lengths, 32), lengths), grouped);
}

TEST(GlueBatching, CollatePadsToTheLongestAndMasks) {
  glue::Features f;
  f.input_ids = {{101, 5, 6, 102}, {101, 7, 102}};
  f.token_type_ids = {{0, 0, 1, 1}, {0, 0, 0}};
  f.labels = {1, 0};
  f.lines = {2, 3};
  const std::vector<int64_t> order{1, 0};
  const auto b = glue::collate(f, order, 0, false);
  ASSERT_EQ(b.input_ids.sizes(), (at::IntArrayRef{2, 4}));
  const std::vector<int64_t> ids(b.input_ids.data_ptr<int64_t>(), b.input_ids.data_ptr<int64_t>() + 8);
  EXPECT_EQ(ids, (std::vector<int64_t>{101, 7, 102, 0, 101, 5, 6, 102}));
  const std::vector<int64_t> mask(b.attention_mask.data_ptr<int64_t>(),
                                  b.attention_mask.data_ptr<int64_t>() + 8);
  EXPECT_EQ(mask, (std::vector<int64_t>{1, 1, 1, 0, 1, 1, 1, 1}));
  EXPECT_EQ(b.token_type_ids[1][2].item<int64_t>(), 1);
  EXPECT_EQ(b.tokens, 7);
  EXPECT_EQ(b.labels.scalar_type(), at::kLong);
  EXPECT_EQ(b.labels[0].item<int64_t>(), 0);
  EXPECT_EQ(glue::collate(f, order, 0, true).labels.scalar_type(), at::kFloat);
  f.labels[0] = std::nan("");
  EXPECT_FALSE(glue::collate(f, order, 0, false).labels.defined());
  EXPECT_TRUE(contains(error_of([&] { glue::collate(f, std::vector<int64_t>{2}, 0, false); }),
                       "out of range"));
}

TEST(GlueBatching, TokenizeTruncatesPairsAndKeepsLabels) {
  auto tokenizer = tlora::text::load_tokenizer(tlora::models::default_model_dir());
  const auto examples = glue::read_examples(glue::Task::RTE, glue::dev_file(glue::Task::RTE, kGlue));
  const auto f = glue::tokenize(examples, *tokenizer, 64);
  ASSERT_EQ(f.size(), static_cast<int64_t>(examples.size()));
  EXPECT_TRUE(f.labelled());
  size_t truncated = 0;
  for (int64_t i = 0; i < f.size(); ++i) {
    ASSERT_LE(f.input_ids[i].size(), 64u);
    EXPECT_EQ(f.labels[i], *examples[i].label);
    EXPECT_EQ(f.lines[i], examples[i].line);
    if (f.input_ids[i].size() == 64) ++truncated;
    // Untruncated examples are exactly the tokenizer's pair encoding.
    if (i < 20 && f.input_ids[i].size() < 64) {
      tokenizer->set_truncation(std::nullopt);
      EXPECT_EQ(f.input_ids[i], tokenizer->encode_pair(examples[i].text_a, *examples[i].text_b).ids);
    }
  }
  EXPECT_GT(truncated, 0u) << "RTE has premises longer than 64 tokens";
}

TEST(GlueScores, NamesAndValuesMatchTheMetrics) {
  const std::vector<double> p{1, 0, 1, 1, 0, 1}, l{1, 0, 0, 1, 1, 1};
  const std::vector<int64_t> pi{1, 0, 1, 1, 0, 1}, li{1, 0, 0, 1, 1, 1};
  const auto mrpc = glue::score(glue::Task::MRPC, p, l);
  ASSERT_EQ(mrpc.size(), 2u);
  EXPECT_EQ(mrpc.at("accuracy"), glue::accuracy(pi, li));
  EXPECT_EQ(mrpc.at("f1"), glue::f1(pi, li));
  EXPECT_DOUBLE_EQ(glue::combined_score(mrpc), (mrpc.at("accuracy") + mrpc.at("f1")) / 2);
  EXPECT_EQ(glue::score(glue::Task::CoLA, p, l).at("mcc"), glue::matthews_corrcoef(pi, li));
  const std::vector<double> s{0.1, 2.5, 3.0, 4.9}, t{0.0, 2.0, 3.5, 5.0};
  const auto stsb = glue::score(glue::Task::STSB, s, t);
  EXPECT_EQ(stsb.at("pearson"), glue::pearson(s, t));
  EXPECT_EQ(stsb.at("spearman"), glue::spearman(s, t));
  EXPECT_TRUE(contains(error_of([&] { glue::score(glue::Task::RTE, {0.5}, {1}); }), "class indices"));
  EXPECT_TRUE(contains(error_of([&] { glue::score(glue::Task::RTE, {1, 0}, {1}); }), "2 predictions for 1"));
}

}  // namespace
