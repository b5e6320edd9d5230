// The safetensors reader and writer against files written by the official Python package
// (tools/safetensors_fixture.py), crafted invalid files, and the atomic file writes under them.
#include "test_util.h"
#include "tlora/io/atomic_file.h"
#include "tlora/io/safetensors.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <dirent.h>
#include <ftw.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
namespace st = tlora::safetensors;
using Metadata = std::map<std::string, std::string>;

const fs::path kFixtures = fs::path(TLORA_FIXTURE_DIR) / "safetensors";

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  return {std::istreambuf_iterator<char>(in), {}};
}

void write_bytes(const fs::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

// A file whose first 8 bytes claim `header_size`, followed by `rest`.
std::string with_length(uint64_t header_size, std::string_view rest) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((header_size >> (8 * i)) & 0xff);
  return bytes.append(rest);
}

// A file with the given header text and data section.
std::string file_bytes(std::string_view header, std::string_view data = {}) {
  return with_length(header.size(), std::string(header).append(data));
}

using tlora::testing::contains;
using tlora::testing::error_of;

// POSIX rather than std::filesystem's operations throughout: LibTorch exports its own copies of
// those, built against a newer libstdc++, and mixing them crashes (fs::remove_all does).
std::vector<std::string> directory_entries(const fs::path& dir) {
  std::vector<std::string> names;
  DIR* stream = ::opendir(dir.c_str());
  EXPECT_NE(stream, nullptr) << dir;
  while (const dirent* entry = stream == nullptr ? nullptr : ::readdir(stream)) {
    const std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  if (stream != nullptr) ::closedir(stream);
  std::ranges::sort(names);
  return names;
}

bool is_dir(const fs::path& path) {
  struct stat status {};
  return ::stat(path.c_str(), &status) == 0 && S_ISDIR(status.st_mode);
}

class TempDir : public testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern =
        std::string(tmp != nullptr ? tmp : "/tmp") + "/tlora-safetensors-test-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    const auto remove = [](const char* path, const struct stat*, int, FTW*) {
      return ::remove(path);
    };
    ::nftw(dir_.c_str(), remove, 16, FTW_DEPTH | FTW_PHYS);
  }

  fs::path dir_;
};

// ---------------------------------------------------------------------------------------------
// The reference file.

nlohmann::json reference_listing() {
  std::ifstream in(kFixtures / "reference.json");
  EXPECT_TRUE(in.good()) << "missing fixture; run tools/safetensors_fixture.py";
  return nlohmann::json::parse(in);
}

// The listed tensor, built from its JSON values (exact in their dtype by construction).
at::Tensor tensor_from_listing(const nlohmann::json& entry, at::ScalarType dtype) {
  const auto shape = entry["shape"].get<std::vector<int64_t>>();
  if (at::isFloatingType(dtype)) {
    const auto values = entry["values"].get<std::vector<double>>();
    return at::tensor(values, at::kDouble).reshape(shape).to(dtype);
  }
  const auto values = entry["values"].get<std::vector<int64_t>>();
  return at::tensor(values, at::kLong).reshape(shape).to(dtype);
}

at::ScalarType dtype_of(const std::string& name) {
  for (const auto type : {at::kDouble, at::kFloat, at::kHalf, at::kBFloat16, at::kLong, at::kInt,
                          at::kShort, at::kChar, at::kByte, at::kBool}) {
    if (st::dtype_name(type) == name) return type;
  }
  ADD_FAILURE() << "unknown dtype " << name;
  return at::kFloat;
}

TEST(SafetensorsReference, ReadsEveryTensorExactly) {
  const nlohmann::json listing = reference_listing();
  const st::File file = st::File::open(kFixtures / "reference.safetensors");
  EXPECT_EQ(file.metadata(), listing["metadata"].get<Metadata>());
  ASSERT_EQ(file.tensors().size(), listing["tensors"].size());
  for (const auto& entry : listing["tensors"]) {
    const std::string name = entry["name"];
    SCOPED_TRACE(name);
    const st::TensorInfo* info = file.find(name);
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(st::dtype_name(info->dtype), entry["dtype"].get<std::string>());
    EXPECT_EQ(info->shape, entry["shape"].get<std::vector<int64_t>>());

    const at::Tensor got = file.get(name);
    EXPECT_EQ(got.scalar_type(), info->dtype);
    EXPECT_EQ(got.sizes().vec(), info->shape);
    const at::Tensor flat = got.reshape({-1});
    if (at::isFloatingType(got.scalar_type())) {
      // Bit patterns, so that -0.0 and subnormals count.
      const auto expected = entry["values"].get<std::vector<double>>();
      const at::Tensor as_double = flat.to(at::kDouble).contiguous();
      ASSERT_EQ(as_double.numel(), static_cast<int64_t>(expected.size()));
      EXPECT_EQ(std::memcmp(as_double.const_data_ptr(), expected.data(),
                            expected.size() * sizeof(double)),
                0);
    } else {
      const auto expected = entry["values"].get<std::vector<int64_t>>();
      const at::Tensor as_long = flat.to(at::kLong).contiguous();
      EXPECT_EQ(std::vector<int64_t>(as_long.const_data_ptr<int64_t>(),
                                     as_long.const_data_ptr<int64_t>() + as_long.numel()),
                expected);
    }
  }
}

TEST_F(TempDir, SavingTheReferenceTensorsReproducesThePythonFileByteForByte) {
  const nlohmann::json listing = reference_listing();
  std::map<std::string, at::Tensor> tensors;
  for (const auto& entry : listing["tensors"]) {
    tensors.emplace(entry["name"], tensor_from_listing(entry, dtype_of(entry["dtype"])));
  }
  const fs::path path = dir_ / "ours.safetensors";
  st::save(path, tensors, listing["metadata"].get<Metadata>());
  EXPECT_EQ(read_bytes(path), read_bytes(kFixtures / "reference.safetensors"));
}

// The reference implementation's own serialization tests (safetensors/src/tensor.rs).
TEST_F(TempDir, MatchesTheReferenceImplementationsKnownAnswers) {
  const fs::path path = dir_ / "x.safetensors";
  st::save(path, {});
  EXPECT_EQ(read_bytes(path), file_bytes("{}      "));
  st::save(path, {}, {{"framework", "pt"}});
  EXPECT_EQ(read_bytes(path), file_bytes(R"({"__metadata__":{"framework":"pt"}}     )"));

  const at::Tensor attn = at::arange(6, at::kFloat);
  st::save(path, {{"attn.0", attn.reshape({1, 2, 3})}});
  std::string data(24, '\0');
  std::memcpy(data.data(), attn.const_data_ptr(), data.size());
  EXPECT_EQ(
      read_bytes(path),
      file_bytes(R"({"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}})", data));
  st::save(path, {{"attn0", attn.reshape({1, 1, 2, 3})}});
  EXPECT_EQ(
      read_bytes(path),
      file_bytes(R"({"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}       )",
                 data));
}

// ---------------------------------------------------------------------------------------------
// Round trips and the File API.

// A tensor whose bytes are an arbitrary pattern: NaN payloads, infinities and subnormals for the
// float types, so that any conversion on the way would show.
at::Tensor patterned(at::ScalarType dtype, at::IntArrayRef shape, int salt) {
  at::Tensor t = at::empty(shape, at::TensorOptions().dtype(dtype));
  auto* bytes = static_cast<uint8_t*>(t.data_ptr());
  for (size_t i = 0; i < t.nbytes(); ++i) {
    const auto b = static_cast<uint8_t>(i * 37 + static_cast<size_t>(salt) * 11 + 5);
    bytes[i] = dtype == at::kBool ? b & 1 : b;
  }
  return t;
}

bool same_bytes(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor ca = a.contiguous();
  const at::Tensor cb = b.contiguous();
  return ca.scalar_type() == cb.scalar_type() && ca.sizes() == cb.sizes() &&
         (ca.nbytes() == 0 ||
          std::memcmp(ca.const_data_ptr(), cb.const_data_ptr(), ca.nbytes()) == 0);
}

TEST_F(TempDir, RoundTripIsBitIdenticalForEveryDtypeAndShape) {
  std::map<std::string, at::Tensor> tensors;
  int salt = 0;
  for (const auto dtype : {at::kDouble, at::kFloat, at::kHalf, at::kBFloat16, at::kLong, at::kInt,
                           at::kShort, at::kChar, at::kByte, at::kBool}) {
    const std::string name(st::dtype_name(dtype));
    tensors.emplace(name + ".matrix", patterned(dtype, {3, 5}, ++salt));
    tensors.emplace(name + ".scalar", patterned(dtype, {}, ++salt));
    tensors.emplace(name + ".empty", patterned(dtype, {4, 0}, ++salt));
    tensors.emplace(name + ".transposed", patterned(dtype, {2, 3}, ++salt).t());
  }
  const Metadata metadata{{"format", "pt"}, {"ünïcode \"quoted\"\n", "ß\t✓"}, {"empty", ""}};
  const fs::path path = dir_ / "all.safetensors";
  st::save(path, tensors, metadata);

  const st::File file = st::File::open(path);
  EXPECT_EQ(file.metadata(), metadata);
  const auto loaded = st::load(path);
  ASSERT_EQ(loaded.size(), tensors.size());
  for (const auto& [name, tensor] : tensors) {
    EXPECT_TRUE(same_bytes(loaded.at(name), tensor)) << name;
  }
}

TEST_F(TempDir, FileListsTensorsInDataOrderAndCopiesOnGet) {
  const fs::path path = dir_ / "x.safetensors";
  st::save(path, {{"b", at::ones({2}, at::kFloat)},
                  {"a", at::zeros({3}, at::kByte)},
                  {"c", at::full({}, 7, at::kLong)}});
  at::Tensor c;
  {
    const st::File file = st::File::open(path);
    EXPECT_EQ(file.path(), path);
    ASSERT_EQ(file.tensors().size(), 3u);
    // Descending alignment: I64, F32, U8.
    EXPECT_EQ(file.tensors()[0].name, "c");
    EXPECT_EQ(file.tensors()[1].name, "b");
    EXPECT_EQ(file.tensors()[2].name, "a");
    EXPECT_EQ(file.tensors()[1].begin, 8u);
    EXPECT_EQ(file.tensors()[1].end, 16u);
    EXPECT_EQ(file.find("missing"), nullptr);
    const std::string message = error_of([&] { file.get("missing"); });
    EXPECT_TRUE(contains(message, path.string()));
    EXPECT_TRUE(contains(message, "no tensor \"missing\""));
    c = file.get("c");
  }
  ::unlink(path.c_str());  // the copy must not depend on the mapping or the file
  EXPECT_EQ(c.dim(), 0);
  EXPECT_EQ(c.item<int64_t>(), 7);
}

TEST_F(TempDir, SaveRefusesWhatTheFormatCannotHoldNamingTheKey) {
  const fs::path path = dir_ / "x.safetensors";
  tlora::write_file_atomically(path, std::string_view("old"));

  std::string message = error_of([&] {
    st::save(path, {{"fine", at::ones({2})}, {"waves", at::ones({2}, at::kComplexFloat)}});
  });
  EXPECT_TRUE(contains(message, path.string()));
  EXPECT_TRUE(contains(message, "tensor \"waves\""));
  EXPECT_TRUE(contains(message, "ComplexFloat"));

  message = error_of([&] { st::save(path, {{"__metadata__", at::ones({2})}}); });
  EXPECT_TRUE(contains(message, "\"__metadata__\" is reserved"));

  message = error_of([&] { st::save(path, {{"sparse", at::ones({2, 2}).to_sparse()}}); });
  EXPECT_TRUE(contains(message, "tensor \"sparse\""));
  EXPECT_TRUE(contains(message, "only dense tensors"));

  message = error_of([&] { st::save(path, {{"bad\xff", at::ones({2})}}); });
  EXPECT_TRUE(contains(message, "not valid UTF-8"));

  EXPECT_EQ(read_bytes(path), "old");
  EXPECT_EQ(directory_entries(dir_), std::vector<std::string>{"x.safetensors"});
}

TEST_F(TempDir, AcceptsWhatTheReferenceImplementationAccepts) {
  const fs::path path = dir_ / "x.safetensors";
  // Zero-size tensors may share an offset; leading whitespace and unknown entry fields are fine.
  write_bytes(path, file_bytes(R"( {"z1":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},)"
                               R"("z2":{"dtype":"F32","shape":[3,0],"data_offsets":[0,0]},)"
                               R"("a":{"dtype":"U8","shape":[2],"data_offsets":[0,2],"x":[1]}} )",
                               std::string("\x01\x02", 2)));
  const auto tensors = st::load(path);
  ASSERT_EQ(tensors.size(), 3u);
  EXPECT_EQ(tensors.at("z2").sizes(), at::IntArrayRef({3, 0}));
  EXPECT_EQ(tensors.at("a")[1].item<uint8_t>(), 2);

  write_bytes(path, file_bytes("{}"));
  EXPECT_TRUE(st::load(path).empty());
}

// ---------------------------------------------------------------------------------------------
// Invalid files: each is refused with a message naming the file and the problem.

struct BadFile {
  const char* label;
  std::string bytes;
  const char* problem;
};

std::string u8_entry(std::string_view name, std::string_view offsets,
                     std::string_view shape = "[2]") {
  return "\"" + std::string(name) + R"(":{"dtype":"U8","shape":)" + std::string(shape) +
         R"(,"data_offsets":)" + std::string(offsets) + "}";
}

std::vector<BadFile> bad_files() {
  const std::string two(2, '\0');
  return {
      {"Empty", "", "the file is 0 bytes, shorter than the 8-byte header length"},
      {"ShorterThanLength", std::string("\x02\0\0\0", 4),
       "the file is 4 bytes, shorter than the 8-byte"},
      {"HeaderPastEnd", with_length(100, "{}"),
       "the header length 100 runs past the end of the 10-byte file"},
      {"HeaderOverLimit", with_length(100'000'001, "{}"),
       "the header length 100000001 exceeds the limit of 100000000 bytes"},
      {"HeaderLengthHuge", with_length(~uint64_t{0}, "{}"), "exceeds the limit"},
      {"NotJson", file_bytes(R"({"a":)"), "the header is not valid JSON"},
      {"TrailingNul", file_bytes(std::string("{}\0\0", 4)),
       "the header is not valid JSON: it has a NUL byte at offset 2"},
      {"InvalidUtf8", file_bytes("{\"\xff\":1}"), "the header is not valid JSON"},
      {"NotObject", file_bytes("[1,2]"), "the header is not a JSON object but array"},
      // nlohmann's out_of_range rather than a parse_error (found by fuzzing).
      {"NumberOverflow", file_bytes("{" + u8_entry("a", "[0,0]", "[1e400]") + "}"),
       "the header is not valid JSON: [json.exception.out_of_range.406] number overflow"},
      {"DuplicateTensor",
       file_bytes("{" + u8_entry("a", "[0,2]") + "," + u8_entry("a", "[0,2]") + "}", two),
       "the header has the key \"a\" more than once"},
      {"DuplicateField",
       file_bytes(R"({"a":{"dtype":"U8","dtype":"F32","shape":[2],"data_offsets":[0,2]}})", two),
       "the header has the key \"dtype\" more than once"},
      {"EntryNotObject", file_bytes(R"({"a":[0,2]})"),
       "tensor \"a\": the entry is not a JSON object"},
      {"MissingDtype", file_bytes(R"({"a":{"shape":[2],"data_offsets":[0,2]}})", two),
       "tensor \"a\": the entry has no \"dtype\""},
      {"MissingShape", file_bytes(R"({"a":{"dtype":"U8","data_offsets":[0,2]}})", two),
       "tensor \"a\": the entry has no \"shape\""},
      {"MissingOffsets", file_bytes(R"({"a":{"dtype":"U8","shape":[2]}})", two),
       "tensor \"a\": the entry has no \"data_offsets\""},
      {"DtypeNotString", file_bytes(R"({"a":{"dtype":1,"shape":[2],"data_offsets":[0,2]}})", two),
       "tensor \"a\": \"dtype\" is not a string but number"},
      {"UnknownDtype", file_bytes(R"({"a":{"dtype":"Q4","shape":[2],"data_offsets":[0,2]}})", two),
       "tensor \"a\": unknown or unsupported dtype \"Q4\""},
      {"ShapeNotArray", file_bytes("{" + u8_entry("a", "[0,2]", "2") + "}", two),
       "tensor \"a\": \"shape\" is not an array but number"},
      {"NegativeShape", file_bytes("{" + u8_entry("a", "[0,2]", "[-2]") + "}", two),
       "tensor \"a\": \"shape\" has the entry -2, not a size >= 0"},
      {"FractionalShape", file_bytes("{" + u8_entry("a", "[0,2]", "[2.0]") + "}", two),
       "tensor \"a\": \"shape\" has the entry 2.0, not a size >= 0"},
      {"ShapeBeyondInt64",
       file_bytes("{" + u8_entry("a", "[0,0]", "[9223372036854775808,0]") + "}"),
       "not a size >= 0"},
      {"OffsetsNotPair", file_bytes("{" + u8_entry("a", "[0]") + "}", two),
       "tensor \"a\": \"data_offsets\" is [0], not an array of two integers >= 0"},
      {"OffsetsNotArray", file_bytes("{" + u8_entry("a", "\"0,2\"") + "}", two),
       "not an array of two integers >= 0"},
      {"NegativeOffset", file_bytes("{" + u8_entry("a", "[-1,1]") + "}", two),
       "not an array of two integers >= 0"},
      {"BeginAfterEnd", file_bytes("{" + u8_entry("a", "[2,0]") + "}", two),
       "tensor \"a\": \"data_offsets\" [2,0] begin after they end"},
      {"OffsetsPastData", file_bytes("{" + u8_entry("a", "[0,4]", "[4]") + "}", two),
       "tensor \"a\": \"data_offsets\" [0,4] run past the end of the 2-byte data section"},
      {"SizeMismatch", file_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,2]}})", two),
       "tensor \"a\": shape [2] of F32 needs 8 bytes but \"data_offsets\" [0,2] hold 2"},
      // 2^62 · 4 wraps to 0 in 64 bits, which a naive check would take for the 0 bytes declared.
      {"SizeOverflow", file_bytes("{" + u8_entry("a", "[0,0]", "[4611686018427387904,4]") + "}"),
       "tensor \"a\": shape [4611686018427387904, 4] of U8 overflows a 64-bit byte count"},
      // No elements, so no bytes, but strides LibTorch cannot represent (found by fuzzing).
      {"StrideOverflow",
       file_bytes("{" + u8_entry("a", "[0,0]", "[0,4611686018427387904,4611686018427387904]") + "}"),
       "tensor \"a\": shape [0, 4611686018427387904, 4611686018427387904] cannot be a tensor: its "
       "strides overflow 64 bits"},
      {"Overlap",
       file_bytes("{" + u8_entry("a", "[0,2]") + "," + u8_entry("b", "[1,3]") + "}",
                  std::string(3, '\0')),
       "tensor \"b\" (bytes 1..3) overlaps tensor \"a\" (bytes 0..2)"},
      {"ZeroSizeInside",
       file_bytes("{" + u8_entry("a", "[0,2]") + "," + u8_entry("z", "[1,1]", "[0]") + "}", two),
       "tensor \"z\" (bytes 1..1) overlaps tensor \"a\""},
      {"Gap",
       file_bytes("{" + u8_entry("a", "[0,2]") + "," + u8_entry("b", "[3,5]") + "}",
                  std::string(5, '\0')),
       "bytes 2..3 of the data section, before tensor \"b\", belong to no tensor"},
      {"TrailingData", file_bytes("{" + u8_entry("a", "[0,2]") + "}", std::string(5, '\0')),
       "the last 3 bytes of the 5-byte data section belong to no tensor"},
      {"MetadataNotObject", file_bytes(R"({"__metadata__":"pt"})"),
       "\"__metadata__\" is not a JSON object"},
      {"MetadataValueNotString", file_bytes(R"({"__metadata__":{"epochs":3}})"),
       "\"__metadata__\" value of \"epochs\" is not a string but number"},
  };
}

TEST(SafetensorsReference, FromBytesReadsWhatOpenReads) {
  const fs::path path = kFixtures / "reference.safetensors";
  const st::File opened = st::File::open(path);
  const st::File file = st::File::from_bytes(read_bytes(path), "reference (in memory)");
  EXPECT_EQ(file.path(), "reference (in memory)");
  EXPECT_EQ(file.metadata(), opened.metadata());
  ASSERT_EQ(file.tensors().size(), opened.tensors().size());
  for (const st::TensorInfo& info : opened.tensors()) {
    SCOPED_TRACE(info.name);
    EXPECT_TRUE(same_bytes(file.get(info.name), opened.get(info.name)));
  }
}

class SafetensorsRefuses : public TempDir, public testing::WithParamInterface<BadFile> {};

TEST_P(SafetensorsRefuses, WithTheFileAndTheProblem) {
  const fs::path path = dir_ / "bad.safetensors";
  write_bytes(path, GetParam().bytes);
  const std::string message = error_of([&] { st::File::open(path); });
  EXPECT_TRUE(contains(message, "safetensors file \"" + path.string() + "\": "));
  EXPECT_TRUE(contains(message, GetParam().problem));
  EXPECT_TRUE(contains(error_of([&] { st::load(path); }), GetParam().problem));
  // The same bytes from memory: the same refusal, naming what the caller called them.
  const std::string from_memory =
      error_of([&] { st::File::from_bytes(GetParam().bytes, "in-memory.safetensors"); });
  EXPECT_TRUE(contains(from_memory, "safetensors file \"in-memory.safetensors\": "));
  EXPECT_TRUE(contains(from_memory, GetParam().problem));
}

INSTANTIATE_TEST_SUITE_P(Header, SafetensorsRefuses, testing::ValuesIn(bad_files()),
                         [](const testing::TestParamInfo<BadFile>& info) {
                           return info.param.label;
                         });

TEST_F(TempDir, RefusesMissingFilesDirectoriesAndInvalidBools) {
  const fs::path missing = dir_ / "missing.safetensors";
  std::string message = error_of([&] { st::File::open(missing); });
  EXPECT_TRUE(contains(message, missing.string()));
  EXPECT_TRUE(contains(message, "cannot open: No such file or directory"));

  message = error_of([&] { st::File::open(dir_); });
  EXPECT_TRUE(contains(message, dir_.string()));
  EXPECT_TRUE(contains(message, "not a regular file"));

  // Valid as a file, but a bool byte other than 0/1 cannot become a LibTorch bool.
  const fs::path path = dir_ / "bools.safetensors";
  write_bytes(path, file_bytes(R"({"flags":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}})",
                               std::string("\x01\x00\x02", 3)));
  const st::File file = st::File::open(path);
  message = error_of([&] { file.get("flags"); });
  EXPECT_TRUE(contains(message, path.string()));
  EXPECT_TRUE(contains(message, "tensor \"flags\": BOOL element 2 is the byte 2, neither 0 nor 1"));
}

// ---------------------------------------------------------------------------------------------
// Atomic writes.

TEST_F(TempDir, AtomicWriteReplacesAndLeavesNoTemporaryFile) {
  const fs::path path = dir_ / "f.txt";
  tlora::write_file_atomically(path, std::string_view("one"));
  tlora::write_file_atomically(path, [](std::ostream& out) { out << "two, " << 2; });
  EXPECT_EQ(read_bytes(path), "two, 2");
  const std::string big(1 << 20, 'x');  // larger than the stream's buffer
  tlora::write_file_atomically(path, big);
  EXPECT_EQ(read_bytes(path), big);
  EXPECT_EQ(directory_entries(dir_), std::vector<std::string>{"f.txt"});
}

TEST_F(TempDir, AtomicWriteKeepsTheOldFileWhenTheWriterThrows) {
  const fs::path path = dir_ / "f.txt";
  tlora::write_file_atomically(path, std::string_view("old"));
  EXPECT_THROW(tlora::write_file_atomically(path,
                                            [](std::ostream& out) {
                                              out << std::string(100'000, 'n');
                                              throw std::runtime_error("interrupted");
                                            }),
               std::runtime_error);
  EXPECT_EQ(read_bytes(path), "old");
  EXPECT_EQ(directory_entries(dir_), std::vector<std::string>{"f.txt"});
}

TEST_F(TempDir, AtomicWriteKeepsTheOldFileWhenTheStreamFails) {
  const fs::path path = dir_ / "f.txt";
  tlora::write_file_atomically(path, std::string_view("old"));
  const std::string message = error_of([&] {
    tlora::write_file_atomically(path, [](std::ostream& out) {
      out << "partial";
      out.setstate(std::ios::failbit);
    });
  });
  EXPECT_TRUE(contains(message, path.string()));
  EXPECT_TRUE(contains(message, "failed state"));
  EXPECT_EQ(read_bytes(path), "old");
  EXPECT_EQ(directory_entries(dir_), std::vector<std::string>{"f.txt"});
}

// Root ignores permissions and the test machine's disk is not full, so a file-size limit stands
// in for a failing disk: write(2) then fails with EFBIG, the same path as ENOSPC.
TEST_F(TempDir, AtomicWriteReportsTheSystemErrorAndKeepsTheOldFile) {
  const fs::path path = dir_ / "f.txt";
  tlora::write_file_atomically(path, std::string_view("old"));
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  rlimit small = saved;
  small.rlim_cur = 4096;
  const auto previous_handler = std::signal(SIGXFSZ, SIG_IGN);
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  const std::string message =
      error_of([&] { tlora::write_file_atomically(path, std::string(100'000, 'n')); });
  ::setrlimit(RLIMIT_FSIZE, &saved);
  std::signal(SIGXFSZ, previous_handler);
  EXPECT_TRUE(contains(message, "cannot write \"" + path.string() + "\""));
  EXPECT_TRUE(contains(message, "File too large"));
  EXPECT_EQ(read_bytes(path), "old");
  EXPECT_EQ(directory_entries(dir_), std::vector<std::string>{"f.txt"});
}

TEST_F(TempDir, AtomicWriteReportsAFailedRename) {
  const fs::path path = dir_ / "occupied";
  ASSERT_EQ(::mkdir(path.c_str(), 0777), 0);
  ASSERT_EQ(::mkdir((path / "child").c_str(), 0777), 0);
  const std::string message =
      error_of([&] { tlora::write_file_atomically(path, std::string_view("new")); });
  EXPECT_TRUE(contains(message, path.string()));
  EXPECT_TRUE(contains(message, "rename failed: Is a directory"));
  EXPECT_TRUE(is_dir(path / "child"));
  EXPECT_EQ(directory_entries(dir_), std::vector<std::string>{"occupied"});
}

TEST_F(TempDir, AtomicWriteNeedsAnExistingDirectoryAndAFileName) {
  const fs::path orphan = dir_ / "no" / "such" / "f.txt";
  std::string message =
      error_of([&] { tlora::write_file_atomically(orphan, std::string_view("x")); });
  EXPECT_TRUE(contains(message, orphan.string()));
  EXPECT_TRUE(contains(message,
                       "\"" + (dir_ / "no" / "such").string() + "\" is not an existing directory"));

  write_bytes(dir_ / "plain", "x");
  message = error_of(
      [&] { tlora::write_file_atomically(dir_ / "plain" / "f.txt", std::string_view("x")); });
  EXPECT_TRUE(contains(message, "is not an existing directory"));

  message = error_of([&] { tlora::write_file_atomically(dir_ / "", std::string_view("x")); });
  EXPECT_TRUE(contains(message, "does not name a file"));
  EXPECT_FALSE(is_dir(dir_ / "no"));
}

}  // namespace
