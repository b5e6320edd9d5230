// The generator against published known answers, an independent Python implementation, and
// a second process.
#include "tlora/core/philox.h"
#include "tlora/core/random.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <fstream>
#include <string>

namespace {

using tlora::philox::Block;

// Random123's kat_vectors, philox4x32 10: counter, key, expected output.
struct KnownAnswer {
  Block counter;
  tlora::philox::Key key;
  Block expected;
};
constexpr KnownAnswer kKnownAnswers[] = {
    {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
    {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
     {0xffffffff, 0xffffffff},
     {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
    {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
     {0xa4093822, 0x299f31d0},
     {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
};

TEST(Philox, KnownAnswerVectors) {
  for (const auto& kat : kKnownAnswers) {
    EXPECT_EQ(tlora::philox::philox4x32<10>(kat.counter, kat.key), kat.expected);
  }
}

TEST(Philox, KnownAnswersHoldAtCompileTime) {
  static_assert(tlora::philox::philox4x32<10>({0, 0, 0, 0}, {0, 0})[0] == 0x6627e8d5);
}

nlohmann::json fixture() {
  std::ifstream in(std::string(TLORA_FIXTURE_DIR) + "/philox_normal.json");
  EXPECT_TRUE(in.good()) << "missing fixture; run tools/philox_reference.py";
  return nlohmann::json::parse(in);
}

TEST(Philox, NormalsMatchIndependentReference) {
  // The parsed file outlives the loop; a range over fixture()["normal"] would read a freed
  // temporary (found by AddressSanitizer).
  const nlohmann::json cases = fixture();
  for (const auto& c : cases["normal"]) {
    const uint64_t seed = std::stoull(c["seed"].get<std::string>());
    const std::string name = c["stream_name"];
    ASSERT_EQ(tlora::stream_id(name), std::stoull(c["stream_id"].get<std::string>())) << name;
    const auto expected = c["normal"].get<std::vector<double>>();
    const at::Tensor got = tlora::philox_normal({static_cast<int64_t>(expected.size())},
                                                c["std"], seed, tlora::stream_id(name), at::kDouble);
    for (size_t i = 0; i < expected.size(); ++i) {
      // Python's math and libm may differ in the last bit of log/cos; nothing more.
      EXPECT_NEAR(got[i].item<double>(), expected[i], 1e-14 * (1 + std::abs(expected[i])))
          << name << " element " << i;
    }
  }
}

TEST(Philox, UniformsMatchIndependentReference) {
  const nlohmann::json cases = fixture();
  for (const auto& c : cases["uniform"]) {
    const auto expected = c["uniform"].get<std::vector<double>>();
    const at::Tensor got = tlora::philox_uniform(
        {static_cast<int64_t>(expected.size())}, c["low"], c["high"],
        std::stoull(c["seed"].get<std::string>()),
        tlora::stream_id(c["stream_name"].get<std::string>()), at::kDouble);
    for (size_t i = 0; i < expected.size(); ++i) {
      EXPECT_DOUBLE_EQ(got[i].item<double>(), expected[i]) << i;
    }
  }
}

TEST(Philox, DropoutMasksMatchIndependentReference) {
  const nlohmann::json cases = fixture();
  for (const auto& c : cases["dropout_mask"]) {
    const auto expected = c["mask"].get<std::vector<double>>();
    const at::Tensor got = tlora::philox_dropout_mask(
        {static_cast<int64_t>(expected.size())}, c["p"], std::stoull(c["seed"].get<std::string>()),
        tlora::stream_id(c["stream_name"].get<std::string>()), at::TensorOptions(at::kDouble));
    for (size_t i = 0; i < expected.size(); ++i) {
      EXPECT_NEAR(got[i].item<double>(), expected[i], 1e-6) << i;
    }
  }
}

TEST(Philox, NormalStatistics) {
  const at::Tensor z = tlora::philox_normal({200000}, 0.5, 42, tlora::stream_id("stats"), at::kDouble);
  EXPECT_NEAR(z.mean().item<double>(), 0.0, 0.005);  // 5 standard errors
  EXPECT_NEAR(z.std().item<double>(), 0.5, 0.005);
  // A fourth moment of 3σ⁴ tells a Gaussian from other symmetric laws.
  EXPECT_NEAR((z.pow(4).mean() / std::pow(0.25, 2)).item<double>(), 3.0, 0.06);
}

TEST(Philox, StreamsAndSeedsDiffer) {
  const auto a = tlora::philox_normal({64}, 1.0, 1, tlora::stream_id("a"));
  EXPECT_FALSE(at::equal(a, tlora::philox_normal({64}, 1.0, 1, tlora::stream_id("b"))));
  EXPECT_FALSE(at::equal(a, tlora::philox_normal({64}, 1.0, 2, tlora::stream_id("a"))));
  EXPECT_TRUE(at::equal(a, tlora::philox_normal({64}, 1.0, 1, tlora::stream_id("a"))));
}

TEST(Philox, DropoutStreamIsTheDocumentedName) {
  EXPECT_EQ(tlora::dropout_stream("enc.q", 12), tlora::stream_id("enc.q/dropout/12"));
  EXPECT_NE(tlora::dropout_stream("enc.q", 12), tlora::dropout_stream("enc.q", 13));
}

TEST(Philox, ShapeDoesNotChangeValues) {
  const auto flat = tlora::philox_normal({35}, 1.0, 9, 3);
  EXPECT_TRUE(at::equal(flat.reshape({5, 7}), tlora::philox_normal({5, 7}, 1.0, 9, 3)));
}

TEST(Philox, DropoutMaskKeepRateAndValues) {
  const double p = 0.3;
  const auto mask = tlora::philox_dropout_mask({100000}, p, 5, 11, at::TensorOptions(at::kFloat));
  const auto kept = mask.ne(0);
  EXPECT_NEAR(kept.to(at::kDouble).mean().item<double>(), 1 - p, 0.01);
  EXPECT_TRUE(at::allclose(mask.masked_select(kept), at::full({1}, 1 / (1 - p), mask.options())));
  const auto none = tlora::philox_dropout_mask({64}, 0.0, 5, 11, at::TensorOptions(at::kFloat));
  EXPECT_TRUE(at::equal(none, at::ones({64})));
}

// Element i is word i mod 4 of block i/4, for lengths that end inside a block and masks large
// enough to be drawn by several threads.
TEST(Philox, DropoutMaskOfAnyLengthIsItsBlocks) {
  const double p = 0.25;
  const uint32_t threshold = tlora::philox::drop_threshold(p);
  for (const int64_t n : {1, 3, 4, 5, 16387, 100003}) {
    const at::Tensor mask = tlora::philox_dropout_mask({n}, p, 3, 8, at::TensorOptions(at::kFloat));
    const float* got = mask.data_ptr<float>();
    int64_t wrong = 0;
    for (int64_t i = 0; i < n; ++i) {
      const uint32_t word = tlora::philox::draw(3, 8, static_cast<uint64_t>(i / 4))[i % 4];
      wrong += got[i] != (word >= threshold ? static_cast<float>(1 / (1 - p)) : 0.f);
    }
    EXPECT_EQ(wrong, 0) << "n = " << n;
  }
}

// Drawn in the tensor's own dtype, a mask holds the float mask's values converted.
TEST(Philox, DropoutMaskOfEveryDtypeIsTheFloatMaskConverted) {
  const at::Tensor reference =
      tlora::philox_dropout_mask({100003}, 0.1, 7, 2, at::TensorOptions(at::kFloat));
  for (const at::ScalarType dtype : {at::kBFloat16, at::kHalf, at::kDouble}) {
    const at::Tensor mask = tlora::philox_dropout_mask({100003}, 0.1, 7, 2, at::TensorOptions(dtype));
    EXPECT_EQ(mask.scalar_type(), dtype);
    EXPECT_TRUE(at::equal(mask, reference.to(dtype))) << dtype;
  }
  EXPECT_THROW(tlora::philox_dropout_mask({4}, 0.1, 0, 0, at::TensorOptions(at::kInt)), c10::Error);
}

TEST(Philox, RejectsBadArguments) {
  EXPECT_THROW(tlora::philox_normal({4}, -1.0, 0, 0), c10::Error);
  EXPECT_THROW(tlora::philox_dropout_mask({4}, 1.0, 0, 0, at::TensorOptions()), c10::Error);
  EXPECT_THROW(tlora::philox_dropout_mask({4}, -0.1, 0, 0, at::TensorOptions()), c10::Error);
}

// A second process draws the projections of a layer; they must equal ours bit for bit.
TEST(Philox, SameSeedSameProjectionsInNewProcess) {
  const std::string path = ::testing::TempDir() + "tlora_projection_dump.bin";
  const std::string command =
      std::string(TLORA_PROJECTION_DUMP) + " 1234 encoder.layer.0.query 48 40 8 " + path;
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  std::ifstream in(path, std::ios::binary);
  std::vector<float> other((8 * 48) + (40 * 8));
  in.read(reinterpret_cast<char*>(other.data()), other.size() * sizeof(float));
  ASSERT_TRUE(in.good());
  std::remove(path.c_str());

  const auto a = tlora::philox_normal({8, 48}, 1.0 / std::sqrt(24.0), 1234,
                                      tlora::stream_id("encoder.layer.0.query/down"));
  const auto b = tlora::philox_normal({40, 8}, 1.0 / std::sqrt(120.0), 1234,
                                      tlora::stream_id("encoder.layer.0.query/up"));
  EXPECT_EQ(std::memcmp(a.data_ptr<float>(), other.data(), a.numel() * sizeof(float)), 0);
  EXPECT_EQ(std::memcmp(b.data_ptr<float>(), other.data() + a.numel(), b.numel() * sizeof(float)), 0);
}

}  // namespace
