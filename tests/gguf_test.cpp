// The GGUF reader, dequantizers and writer against gguf-py (llama.cpp's own Python package):
// fixtures by tools/gguf_fixtures.py, and the packaged SmolLM2 GGUF itself.
#include "packaged_model.h"
#include "test_util.h"
#include "tolerance.h"
#include "tlora/gguf/file.h"
#include "tlora/gguf/writer.h"
#include "tlora/io/safetensors.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>

namespace {

namespace gguf = tlora::gguf;
using nlohmann::json;
using tlora::testing::contains;
using tlora::testing::error_of;

const std::string kFixtures = TLORA_FIXTURE_DIR "/gguf";

json model_fixture() {
  std::ifstream in(kFixtures + "/model.json");
  return json::parse(in);
}


// ours == reference up to the rounding of the dequantizers' two operations (a product and a sum),
// bounded by the largest value of each block; NaN where the reference has NaN.
void expect_dequantized(const at::Tensor& ours, const at::Tensor& reference, int64_t block, const std::string& what) {
  ASSERT_EQ(ours.numel(), reference.numel()) << what;
  const at::Tensor o = ours.reshape({-1, block}), r = reference.reshape({-1, block});
  const at::Tensor finite = at::where(at::isfinite(r), r.abs(), at::zeros_like(r));
  const at::Tensor bound = 2 * tlora::testing::unit_roundoff(at::kFloat) * 2 * std::get<0>(finite.max(1, true));
  const at::Tensor nan_agree = at::isnan(o) == at::isnan(r);
  const at::Tensor close = ((o - r).abs() <= bound) | (o == r) | (at::isnan(o) & at::isnan(r));
  EXPECT_TRUE(nan_agree.all().item<bool>()) << what << ": NaN where the reference has none, or the reverse";
  EXPECT_TRUE(close.all().item<bool>()) << what << ": " << at::where(at::isfinite(o - r), (o - r).abs(), at::zeros_like(r)).max().item<double>();
}

TEST(Gguf, TypeTableIsGgufPys) {
  const json types = model_fixture()["type_sizes"];
  for (const auto& [name, t] : types.items()) {
    const gguf::TypeTraits* traits = gguf::type_traits(t["type"].get<uint32_t>());
    ASSERT_NE(traits, nullptr) << name;
    EXPECT_EQ(traits->name, name);
    EXPECT_EQ(traits->block_size, t["block_size"].get<int64_t>()) << name;
    EXPECT_EQ(traits->type_size, t["type_size"].get<int64_t>()) << name;
  }
  EXPECT_EQ(gguf::type_traits(4), nullptr) << "4 and 5 were Q4_2 and Q4_3, removed from ggml";
  EXPECT_EQ(gguf::type_name(5), "type 5");
}

TEST(Gguf, DequantizationOfRandomBlocksIsGgufPys) {
  const auto fixtures = tlora::safetensors::load(kFixtures + "/dequant.safetensors");
  for (const std::string name : {"F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q4_K", "Q5_K", "Q6_K"}) {
    const at::Tensor bytes = fixtures.at(name + ".bytes"), reference = fixtures.at(name + ".values");
    uint32_t type = 0;
    while (gguf::type_name(type) != name) ++type;
    at::Tensor ours = at::empty({reference.numel()}, at::kFloat);
    gguf::dequantize(static_cast<gguf::TensorType>(type), reinterpret_cast<const std::byte*>(bytes.data_ptr()),
                     ours.data_ptr<float>(), ours.numel());
    expect_dequantized(ours, reference, gguf::type_traits(type)->block_size, name);
  }
  EXPECT_TRUE(contains(error_of([] {
    float out[32];
    std::byte in[22]{};
    gguf::dequantize(gguf::TensorType::Q5_0, in, out, 32);
  }), "dequantizing Q5_0 is not supported"));
}

TEST(Gguf, PackagedModelHeaderIsWhatGgufPyReads) {
  const std::string path = tlora::testing::packaged_smollm2();
  if (path.empty()) GTEST_SKIP() << tlora::testing::kNoPackagedSmolLM2;
  const json expected = model_fixture();
  const gguf::File file = gguf::File::open(path);
  EXPECT_EQ(file.version(), expected["version"].get<uint32_t>());
  EXPECT_EQ(file.alignment(), expected["alignment"].get<uint64_t>());
  EXPECT_EQ(file.data_offset(), expected["data_offset"].get<uint64_t>());
  EXPECT_EQ(file.keys(), expected["keys"].get<std::vector<std::string>>());
  for (const auto& [key, field] : expected["metadata"].items()) {
    const gguf::Value& v = file.at(key);
    if (field.contains("array_of")) {
      EXPECT_EQ(gguf::value_type_name(static_cast<uint32_t>(v.as_array().type)), field["array_of"]) << key;
      EXPECT_EQ(v.as_array().items.size(), field["length"].get<size_t>()) << key;
      continue;
    }
    const std::string type = field["type"];
    EXPECT_EQ(gguf::value_type_name(static_cast<uint32_t>(v.type())), type) << key;
    if (type == "STRING") EXPECT_EQ(v.as_string(), field["value"].get<std::string>()) << key;
    else if (type == "BOOL") EXPECT_EQ(v.as_bool(), field["value"].get<bool>()) << key;
    else if (type == "FLOAT32") EXPECT_EQ(static_cast<float>(v.as_float()), field["value"].get<float>()) << key;
    else EXPECT_EQ(v.as_int(), field["value"].get<int64_t>()) << key;
  }
  EXPECT_EQ(file.get_strings("tokenizer.ggml.tokens")[1], "<|im_start|>");
  ASSERT_EQ(file.tensors().size(), expected["tensors"].size());
  for (size_t i = 0; i < file.tensors().size(); ++i) {
    const gguf::TensorInfo& t = file.tensors()[i];
    const json& e = expected["tensors"][i];
    EXPECT_EQ(t.name, e["name"].get<std::string>());
    EXPECT_EQ(t.ne, e["ne"].get<std::vector<int64_t>>()) << t.name;
    EXPECT_EQ(t.type, e["type"].get<uint32_t>()) << t.name;
    EXPECT_EQ(t.offset, e["offset"].get<uint64_t>()) << t.name;
    EXPECT_EQ(t.nbytes, e["nbytes"].get<uint64_t>()) << t.name;
  }
  EXPECT_TRUE(contains(error_of([&] { file.get_int("general.name"); }), "metadata 'general.name': a STRING where an integer was expected"));
  EXPECT_TRUE(contains(error_of([&] { file.at("llama.nope"); }), "the metadata key 'llama.nope' is missing"));
}

TEST(Gguf, PackagedModelTensorsDequantizeAsGgufPy) {
  const std::string path = tlora::testing::packaged_smollm2();
  if (path.empty()) GTEST_SKIP() << tlora::testing::kNoPackagedSmolLM2;
  const gguf::File file = gguf::File::open(path);
  const auto fixtures = tlora::safetensors::load(kFixtures + "/dequant.safetensors");
  for (const std::string name : {"blk.0.attn_q.weight", "token_embd.weight", "blk.0.attn_norm.weight"}) {
    const gguf::TensorInfo* info = file.find_tensor(name);
    ASSERT_NE(info, nullptr) << name;
    const at::Tensor reference = fixtures.at("model." + name + ".values");
    const at::Tensor loaded = file.load(name);
    EXPECT_EQ(loaded.sizes(), at::IntArrayRef(info->shape())) << name;
    expect_dequantized(loaded.reshape(-1).slice(0, 0, reference.numel()), reference,
                       gguf::type_traits(info->type)->block_size, name);
    const at::Tensor bf16 = file.load(name, at::kBFloat16);
    EXPECT_TRUE(at::equal(bf16, loaded.to(at::kBFloat16))) << name;
  }
}

// --- A file built field by field, to corrupt one field at a time. ---

struct Builder {
  std::string out;
  template <typename T>
  Builder& put(T v) {
    out.append(reinterpret_cast<const char*>(&v), sizeof v);
    return *this;
  }
  Builder& str(const std::string& s) {
    put<uint64_t>(s.size());
    out += s;
    return *this;
  }
};

struct Spec {
  uint32_t magic = 0x46554747, version = 3;
  uint64_t tensor_count = 2, kv_count = 1;
  uint32_t value_type = 4;  // UINT32
  uint64_t string_length = 0;  // 0: the key's real length
  uint32_t n_dims = 2, tensor_type = 0;
  uint64_t offset_a = 0, offset_b = 32, ne0 = 2;
  std::string second_name = "b";
  size_t data_bytes = 64;
};

std::string build(const Spec& s) {
  Builder b;
  b.put(s.magic).put(s.version).put(s.tensor_count).put(s.kv_count);
  const std::string key = "general.alignment";
  b.put<uint64_t>(s.string_length ? s.string_length : key.size());
  b.out += key;
  b.put(s.value_type).put<uint32_t>(32);
  b.str("a").put(s.n_dims);
  for (uint32_t d = 0; d < s.n_dims; ++d) b.put<uint64_t>(d == 0 ? s.ne0 : 2);
  b.put(s.tensor_type).put(s.offset_a);
  b.str(s.second_name).put<uint32_t>(1).put<uint64_t>(4).put<uint32_t>(0).put(s.offset_b);
  b.out.resize((b.out.size() + 31) / 32 * 32, '\0');
  b.out.append(s.data_bytes, '\x01');
  return b.out;
}

std::string refusal(const Spec& s) {
  return error_of([&] { gguf::File::from_bytes(build(s), "bad.gguf"); });
}

TEST(Gguf, ACraftedFileIsReadAndEveryCorruptionRefused) {
  const gguf::File good = gguf::File::from_bytes(build({}), "good.gguf");
  ASSERT_EQ(good.tensors().size(), 2u);
  EXPECT_EQ(good.tensors()[0].shape(), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(good.tensors()[1].offset, good.data_offset() + 32);

  const auto refused = [](const Spec& s, const std::string& part) {
    const std::string message = refusal(s);
    EXPECT_TRUE(contains(message, "GGUF file \"bad.gguf\": "));
    EXPECT_TRUE(contains(message, part));
  };
  refused({.magic = 0x46554746}, "not a GGUF file");
  refused({.version = 1}, "GGUF version 1 is not supported");
  refused({.tensor_count = uint64_t{1} << 60}, "tensors, more than the file can hold");
  refused({.kv_count = uint64_t{1} << 60}, "metadata entries, more than the file can hold");
  refused({.value_type = 13}, "unknown value type 13");
  refused({.value_type = 8}, "a string at byte");  // the UINT32 and what follows read as a length
  refused({.string_length = uint64_t{1} << 62}, "needs 4611686018427387904 bytes");
  refused({.n_dims = 5}, "has 5 dimensions");
  refused({.tensor_type = 4}, "unknown type 4");
  refused({.tensor_type = 8}, "are not whole Q8_0 blocks of 32");
  refused({.offset_a = 8}, "is not a multiple of the alignment 32");
  refused({.offset_b = 4096}, "end after the file's");
  refused({.offset_b = 0}, "overlap");
  refused({.second_name = "a"}, "the tensor name 'a' appears twice");
  refused({.data_bytes = 20}, "end after the file's");
  refused({.ne0 = uint64_t{1} << 62}, "overflow");

  const std::string whole = build({});
  for (size_t n = 0; n < whole.size() - 64; n += 3) {
    EXPECT_TRUE(contains(error_of([&] { gguf::File::from_bytes(whole.substr(0, n), "cut.gguf"); }), "cut.gguf")) << n;
  }
}

TEST(Gguf, WriterWritesWhatGgufPyWrites) {
  using V = gguf::Value;
  using T = gguf::ValueType;
  gguf::Writer w;
  w.set("general.architecture", V(T::STRING, std::string("llama")));
  w.set("test.u32", V(T::UINT32, uint64_t{7}));
  w.set("test.i32", V(T::INT32, int64_t{-3}));
  w.set("test.f32", V(T::FLOAT32, 0.5));
  w.set("test.u64", V(T::UINT64, uint64_t{1} << 40));
  w.set("test.bool", V(T::BOOL, true));
  w.set("test.string", V(T::STRING, std::string("h\xc3\xa9llo")));
  w.set("test.strings", V(T::ARRAY, V::Array{T::STRING, {V(T::STRING, std::string("a")), V(T::STRING, std::string("bc")),
                                                         V(T::STRING, std::string())}}));
  w.set("test.ints", V(T::ARRAY, V::Array{T::INT32, {V(T::INT32, int64_t{1}), V(T::INT32, int64_t{2}), V(T::INT32, int64_t{3})}}));
  w.add_tensor("a", at::arange(6, at::kFloat).reshape({2, 3}));
  w.add_tensor("b", at::arange(5, at::kFloat).to(at::kHalf));
  w.add_tensor("c", (at::arange(64, at::kFloat) / 32 - 1).reshape({4, 16}));
  const std::string expected = tlora::testing::read_file(kFixtures + "/writer_reference.gguf");
  EXPECT_EQ(w.bytes(), expected);

  const gguf::File back = gguf::File::from_bytes(w.bytes(), "written.gguf");
  EXPECT_EQ(back.get_strings("test.strings"), (std::vector<std::string>{"a", "bc", ""}));
  EXPECT_TRUE(at::equal(back.load("c"), (at::arange(64, at::kFloat) / 32 - 1).reshape({4, 16})));
  EXPECT_TRUE(contains(error_of([&] { w.set("test.u32", V(T::UINT32, uint64_t{1})); }), "already set"));
  EXPECT_TRUE(contains(error_of([&] { w.set("test.u8", V(T::UINT8, uint64_t{300})); }), "300 does not fit a UINT8"));
}

}  // namespace
