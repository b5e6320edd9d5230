#include "tlora/gguf/file.h"

#include "io/mapped_file.h"

#include <ATen/ops/empty.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>

namespace tlora::gguf {
namespace {

namespace fs = std::filesystem;

static_assert(std::endian::native == std::endian::little,
              "GGUF is little-endian; a big-endian host would have to swap bytes");

constexpr uint64_t kHeaderBytes = 24;       // magic, version, tensor count, metadata count
constexpr size_t kMaxDims = 4;              // GGML_MAX_DIMS
constexpr size_t kMaxNameBytes = 63;        // GGML_MAX_NAME less its NUL
constexpr int kMaxArrayDepth = 8;           // nested arrays deeper than this are not metadata

template <typename... Args>
[[noreturn]] void fail(const fs::path& path, const Args&... args) {
  TORCH_CHECK(false, "GGUF file ", path, ": ", args...);
}

// A cursor over the header that refuses to read past the end of the file.
class Reader {
 public:
  Reader(const fs::path& path, const std::byte* bytes, uint64_t size) : path_(path), bytes_(bytes), size_(size) {}

  uint64_t position() const { return position_; }
  uint64_t remaining() const { return size_ - position_; }

  template <typename T>
  T read(const char* what) {
    need(sizeof(T), what);
    T value;
    std::memcpy(&value, bytes_ + position_, sizeof(T));
    position_ += sizeof(T);
    return value;
  }

  std::string read_string(const char* what) {
    const auto length = read<uint64_t>(what);
    need(length, what);
    std::string s(reinterpret_cast<const char*>(bytes_ + position_), length);
    position_ += length;
    return s;
  }

  void need(uint64_t n, const char* what) const {
    if (n > remaining()) {
      fail(path_, what, " at byte ", position_, " needs ", n, " bytes, but the file ends ", remaining(), " bytes later");
    }
  }

 private:
  const fs::path& path_;
  const std::byte* bytes_;
  uint64_t size_;
  uint64_t position_ = 0;
};

// The fewest bytes a value of `type` can take, to refuse absurd array counts before allocating.
uint64_t min_value_bytes(ValueType type) {
  switch (type) {
    case ValueType::UINT8: case ValueType::INT8: case ValueType::BOOL: return 1;
    case ValueType::UINT16: case ValueType::INT16: return 2;
    case ValueType::UINT32: case ValueType::INT32: case ValueType::FLOAT32: return 4;
    case ValueType::UINT64: case ValueType::INT64: case ValueType::FLOAT64: case ValueType::STRING: return 8;
    case ValueType::ARRAY: return 12;
  }
  return 1;
}

bool known_value_type(uint32_t t) { return t <= static_cast<uint32_t>(ValueType::FLOAT64); }

Value read_value(Reader& r, const fs::path& path, ValueType type, const std::string& key, int depth) {
  switch (type) {
    case ValueType::UINT8: return {type, uint64_t{r.read<uint8_t>("a UINT8")}};
    case ValueType::INT8: return {type, int64_t{r.read<int8_t>("an INT8")}};
    case ValueType::UINT16: return {type, uint64_t{r.read<uint16_t>("a UINT16")}};
    case ValueType::INT16: return {type, int64_t{r.read<int16_t>("an INT16")}};
    case ValueType::UINT32: return {type, uint64_t{r.read<uint32_t>("a UINT32")}};
    case ValueType::INT32: return {type, int64_t{r.read<int32_t>("an INT32")}};
    case ValueType::UINT64: return {type, r.read<uint64_t>("a UINT64")};
    case ValueType::INT64: return {type, r.read<int64_t>("an INT64")};
    case ValueType::FLOAT32: return {type, double{r.read<float>("a FLOAT32")}};
    case ValueType::FLOAT64: return {type, r.read<double>("a FLOAT64")};
    case ValueType::BOOL: {
      const auto b = r.read<uint8_t>("a BOOL");
      if (b > 1) fail(path, "metadata '", key, "': a BOOL must be 0 or 1, got ", int{b});
      return {type, b == 1};
    }
    case ValueType::STRING: return {type, r.read_string("a string")};
    case ValueType::ARRAY: {
      if (depth >= kMaxArrayDepth) fail(path, "metadata '", key, "': arrays nested deeper than ", kMaxArrayDepth);
      const auto item_type = r.read<uint32_t>("an array's type");
      if (!known_value_type(item_type)) fail(path, "metadata '", key, "': unknown array item type ", item_type);
      const auto count = r.read<uint64_t>("an array's length");
      const auto item = static_cast<ValueType>(item_type);
      if (count > r.remaining() / min_value_bytes(item)) {
        fail(path, "metadata '", key, "': an array of ", count, " ", value_type_name(item_type),
             " items cannot fit in the ", r.remaining(), " bytes left");
      }
      Value::Array array{item, {}};
      array.items.reserve(count);
      for (uint64_t i = 0; i < count; ++i) array.items.push_back(read_value(r, path, item, key, depth + 1));
      return {type, std::move(array)};
    }
  }
  fail(path, "metadata '", key, "': unknown value type ", static_cast<uint32_t>(type));
}

// a·b, or nullopt on overflow.
bool multiply(uint64_t a, uint64_t b, uint64_t& out) { return !__builtin_mul_overflow(a, b, &out); }

}  // namespace

std::string value_type_name(uint32_t type) {
  static constexpr const char* kNames[] = {"UINT8", "INT8",  "UINT16", "INT16", "UINT32", "INT32", "FLOAT32",
                                           "BOOL",  "STRING", "ARRAY", "UINT64", "INT64", "FLOAT64"};
  return type < std::size(kNames) ? kNames[type] : "type " + std::to_string(type);
}

bool Value::is_integer() const {
  return std::holds_alternative<uint64_t>(data_) || std::holds_alternative<int64_t>(data_);
}

int64_t Value::as_int() const {
  if (const auto* u = std::get_if<uint64_t>(&data_)) {
    TORCH_CHECK(*u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()), "the UINT64 ", *u,
                " does not fit an int64");
    return static_cast<int64_t>(*u);
  }
  if (const auto* i = std::get_if<int64_t>(&data_)) return *i;
  TORCH_CHECK(false, "a ", value_type_name(static_cast<uint32_t>(type_)), " where an integer was expected");
}

double Value::as_float() const {
  if (const auto* d = std::get_if<double>(&data_)) return *d;
  if (is_integer()) return static_cast<double>(as_int());
  TORCH_CHECK(false, "a ", value_type_name(static_cast<uint32_t>(type_)), " where a number was expected");
}

bool Value::as_bool() const {
  const auto* b = std::get_if<bool>(&data_);
  TORCH_CHECK(b, "a ", value_type_name(static_cast<uint32_t>(type_)), " where a BOOL was expected");
  return *b;
}

const std::string& Value::as_string() const {
  const auto* s = std::get_if<std::string>(&data_);
  TORCH_CHECK(s, "a ", value_type_name(static_cast<uint32_t>(type_)), " where a STRING was expected");
  return *s;
}

const Value::Array& Value::as_array() const {
  const auto* a = std::get_if<Array>(&data_);
  TORCH_CHECK(a, "a ", value_type_name(static_cast<uint32_t>(type_)), " where an ARRAY was expected");
  return *a;
}

std::vector<int64_t> TensorInfo::shape() const { return {ne.rbegin(), ne.rend()}; }

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (const int64_t d : ne) n *= d;
  return n;
}

File File::open(const fs::path& path) {
  detail::MappedFile mapping = detail::map_file(path, "GGUF file");
  return parse(path, std::move(mapping.owner), mapping.bytes, mapping.size);
}

File File::from_bytes(std::string bytes, const fs::path& name) {
  detail::MappedFile owned = detail::own_bytes(std::move(bytes));
  return parse(name, std::move(owned.owner), owned.bytes, owned.size);
}

File File::parse(const fs::path& path, std::shared_ptr<const void> owner, const std::byte* bytes, uint64_t size) {
  File f;
  f.path_ = path;
  f.owner_ = std::move(owner);
  f.bytes_ = bytes;
  if (size < kHeaderBytes) fail(path, "the file has ", size, " bytes, fewer than the ", kHeaderBytes, "-byte header");
  Reader r(path, bytes, size);
  const auto magic = r.read<uint32_t>("the magic");
  if (magic != 0x46554747) fail(path, "not a GGUF file (the first four bytes are not \"GGUF\")");
  f.version_ = r.read<uint32_t>("the version");
  if (f.version_ != 2 && f.version_ != 3) {
    fail(path, "GGUF version ", f.version_, " is not supported (versions 2 and 3 are)");
  }
  const auto tensor_count = r.read<uint64_t>("the tensor count");
  const auto kv_count = r.read<uint64_t>("the metadata count");
  // A key-value pair takes at least 8 + 4 + 1 bytes, a tensor info 8 + 4 + 8 + 4 + 8.
  if (kv_count > r.remaining() / 13) fail(path, "the header claims ", kv_count, " metadata entries, more than the file can hold");
  if (tensor_count > r.remaining() / 32) fail(path, "the header claims ", tensor_count, " tensors, more than the file can hold");

  for (uint64_t i = 0; i < kv_count; ++i) {
    std::string key = r.read_string("a metadata key");
    const auto type = r.read<uint32_t>("a metadata value type");
    if (!known_value_type(type)) fail(path, "metadata '", key, "': unknown value type ", type);
    Value value = read_value(r, path, static_cast<ValueType>(type), key, 0);
    if (f.metadata_.count(key)) fail(path, "the metadata key '", key, "' appears twice");
    f.keys_.push_back(key);
    f.metadata_.emplace(std::move(key), std::move(value));
  }
  if (const Value* a = f.find("general.alignment")) {
    if (a->type() != ValueType::UINT32) fail(path, "general.alignment is a ", value_type_name(static_cast<uint32_t>(a->type())), ", not a UINT32");
    const auto alignment = static_cast<uint64_t>(a->as_int());
    if (alignment == 0 || !std::has_single_bit(alignment)) fail(path, "general.alignment ", alignment, " is not a power of two");
    f.alignment_ = alignment;
  }

  for (uint64_t i = 0; i < tensor_count; ++i) {
    TensorInfo t;
    t.name = r.read_string("a tensor name");
    if (t.name.size() > kMaxNameBytes) fail(path, "tensor '", t.name, "': its name is longer than ", kMaxNameBytes, " bytes");
    const auto n_dims = r.read<uint32_t>("a tensor's dimension count");
    if (n_dims == 0 || n_dims > kMaxDims) fail(path, "tensor '", t.name, "' has ", n_dims, " dimensions (1 to ", kMaxDims, " are valid)");
    // The product of the non-zero dimensions bounds every stride too: a zero dimension makes the
    // tensor empty, but [0, 2^40, 2^40] would still overflow LibTorch's strides.
    uint64_t elements = 1, extent = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const auto n = r.read<uint64_t>("a tensor dimension");
      constexpr auto kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
      if (n > kMax || !multiply(elements, n, elements) || elements > kMax || !multiply(extent, std::max<uint64_t>(n, 1), extent) ||
          extent > kMax) {
        fail(path, "tensor '", t.name, "': its dimensions overflow");
      }
      t.ne.push_back(static_cast<int64_t>(n));
    }
    t.type = r.read<uint32_t>("a tensor type");
    const TypeTraits* traits = type_traits(t.type);
    if (!traits) fail(path, "tensor '", t.name, "' has the unknown type ", t.type);
    if (t.ne[0] % traits->block_size != 0) {
      fail(path, "tensor '", t.name, "': its rows of ", t.ne[0], " elements are not whole ", traits->name, " blocks of ",
           traits->block_size);
    }
    if (!multiply(elements / traits->block_size, traits->type_size, t.nbytes)) fail(path, "tensor '", t.name, "': its size overflows");
    t.offset = r.read<uint64_t>("a tensor offset");
    if (t.offset % f.alignment_ != 0) fail(path, "tensor '", t.name, "': its offset ", t.offset, " is not a multiple of the alignment ", f.alignment_);
    if (!f.index_.emplace(t.name, f.tensors_.size()).second) fail(path, "the tensor name '", t.name, "' appears twice");
    f.tensors_.push_back(std::move(t));
  }

  const uint64_t padding = (f.alignment_ - r.position() % f.alignment_) % f.alignment_;
  f.data_offset_ = r.position() + padding;
  if (f.data_offset_ > size && !f.tensors_.empty()) fail(path, "the data section would start at byte ", f.data_offset_, ", after the end of the file");
  const uint64_t data_bytes = size - std::min(size, f.data_offset_);
  std::vector<size_t> by_offset(f.tensors_.size());
  for (size_t i = 0; i < by_offset.size(); ++i) by_offset[i] = i;
  std::ranges::sort(by_offset, {}, [&](size_t i) { return f.tensors_[i].offset; });
  uint64_t end_of_previous = 0;
  const TensorInfo* previous = nullptr;
  for (const size_t i : by_offset) {
    TensorInfo& t = f.tensors_[i];
    if (t.offset > data_bytes || t.nbytes > data_bytes - t.offset) {
      fail(path, "tensor '", t.name, "': its ", t.nbytes, " bytes at data offset ", t.offset, " end after the file's ",
           data_bytes, " bytes of tensor data");
    }
    if (previous && t.offset < end_of_previous) fail(path, "the tensors '", previous->name, "' and '", t.name, "' overlap");
    end_of_previous = t.offset + t.nbytes;
    previous = &t;
  }
  for (TensorInfo& t : f.tensors_) t.offset += f.data_offset_;
  return f;
}

const Value* File::find(std::string_view key) const {
  const auto it = metadata_.find(key);
  return it == metadata_.end() ? nullptr : &it->second;
}

const Value& File::at(std::string_view key) const {
  const Value* v = find(key);
  if (!v) fail(path_, "the metadata key '", key, "' is missing");
  return *v;
}

namespace {
template <typename F>
auto with_key(const fs::path& path, std::string_view key, F&& f) {
  try {
    return f();
  } catch (const c10::Error& e) {
    fail(path, "metadata '", key, "': ", e.what_without_backtrace());
  }
}
}  // namespace

std::string File::get_string(std::string_view key) const {
  return with_key(path_, key, [&] { return at(key).as_string(); });
}

int64_t File::get_int(std::string_view key) const {
  return with_key(path_, key, [&] { return at(key).as_int(); });
}

double File::get_float(std::string_view key) const {
  return with_key(path_, key, [&] { return at(key).as_float(); });
}

std::vector<std::string> File::get_strings(std::string_view key) const {
  return with_key(path_, key, [&] {
    const Value::Array& a = at(key).as_array();
    TORCH_CHECK(a.type == ValueType::STRING, "an ARRAY of ", value_type_name(static_cast<uint32_t>(a.type)),
                " where an ARRAY of STRING was expected");
    std::vector<std::string> out;
    out.reserve(a.items.size());
    for (const Value& v : a.items) out.push_back(v.as_string());
    return out;
  });
}

const TensorInfo* File::find_tensor(std::string_view name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

at::Tensor File::load(std::string_view name, at::ScalarType dtype) const {
  const TensorInfo* info = find_tensor(name);
  if (!info) fail(path_, "there is no tensor '", name, "'");
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kBFloat16, "GGUF file ", path_, ": tensor '", name,
              "' can be loaded as float32 or bfloat16, not ", dtype);
  at::Tensor out = at::empty(info->shape(), at::kFloat);
  try {
    dequantize(static_cast<TensorType>(info->type), tensor_data(*info), out.data_ptr<float>(), info->numel());
  } catch (const c10::Error& e) {
    fail(path_, "tensor '", name, "': ", e.what_without_backtrace());
  }
  return dtype == at::kFloat ? out : out.to(dtype);
}

}  // namespace tlora::gguf
