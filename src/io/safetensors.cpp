#include "tlora/io/safetensors.h"

#include "io/mapped_file.h"
#include "tlora/io/atomic_file.h"

#include <ATen/ops/empty.h>
#include <c10/util/ArrayRef.h>
#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <limits>
#include <optional>
#include <set>
#include <tuple>

namespace tlora::safetensors {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

static_assert(std::endian::native == std::endian::little,
              "the format is little-endian; a big-endian host would have to swap bytes");

// The reference implementation refuses larger headers, so no valid file has one.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr std::string_view kMetadataKey = "__metadata__";

struct Dtype {
  std::string_view name;
  at::ScalarType type;
};

// In the reference implementation's order of increasing alignment, which save() sorts by.
constexpr std::array<Dtype, 10> kDtypes{{
    {"BOOL", at::kBool},
    {"U8", at::kByte},
    {"I8", at::kChar},
    {"I16", at::kShort},
    {"F16", at::kHalf},
    {"BF16", at::kBFloat16},
    {"I32", at::kInt},
    {"F32", at::kFloat},
    {"F64", at::kDouble},
    {"I64", at::kLong},
}};

const Dtype* dtype_by_name(std::string_view name) {
  const auto it = std::ranges::find(kDtypes, name, &Dtype::name);
  return it == kDtypes.end() ? nullptr : &*it;
}

const Dtype* dtype_by_type(at::ScalarType type) {
  const auto it = std::ranges::find(kDtypes, type, &Dtype::type);
  return it == kDtypes.end() ? nullptr : &*it;
}

template <typename... Args>
[[noreturn]] void fail(const fs::path& path, const Args&... args) {
  TORCH_CHECK(false, "safetensors file ", path, ": ", args...);
}

template <typename... Args>
[[noreturn]] void fail_entry(const fs::path& path, const std::string& name, const Args&... args) {
  fail(path, "tensor \"", name, "\": ", args...);
}

// nlohmann keeps the last of repeated keys silently, so a header naming a tensor twice would be
// read as whichever came last; track the keys of each open object and refuse repeats instead.
json parse_header(const fs::path& path, std::string_view text) {
  std::vector<std::set<std::string>> open_objects;
  std::optional<std::string> duplicate;
  const json::parser_callback_t track = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      open_objects.pop_back();
    } else if (event == json::parse_event_t::key && !duplicate &&
               !open_objects.back().insert(parsed.get<std::string>()).second) {
      duplicate = parsed.get<std::string>();
    }
    return true;
  };
  // nlohmann's lexer takes a NUL byte for the end of the input and would accept "{}\0junk";
  // JSON cannot hold a raw NUL anywhere, so refuse it here.
  if (const size_t nul = text.find('\0'); nul != std::string_view::npos) {
    fail(path, "the header is not valid JSON: it has a NUL byte at offset ", nul);
  }
  json header;
  try {
    header = json::parse(text.begin(), text.end(), track);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a number past double
    fail(path, "the header is not valid JSON: ", e.what());
  }
  if (duplicate) fail(path, "the header has the key \"", *duplicate, "\" more than once");
  if (!header.is_object()) fail(path, "the header is not a JSON object but ", header.type_name());
  return header;
}

std::map<std::string, std::string> parse_metadata(const fs::path& path, const json& value) {
  if (!value.is_object()) fail(path, "\"", kMetadataKey, "\" is not a JSON object");
  std::map<std::string, std::string> metadata;
  for (const auto& [key, entry] : value.items()) {
    if (!entry.is_string()) {
      fail(path, "\"", kMetadataKey, "\" value of \"", key, "\" is not a string but ",
           entry.type_name());
    }
    metadata.emplace(key, entry.get<std::string>());
  }
  return metadata;
}

const json& field(const fs::path& path, const std::string& name, const json& entry,
                  const char* key) {
  const auto it = entry.find(key);
  if (it == entry.end()) fail_entry(path, name, "the entry has no \"", key, "\"");
  return *it;
}

// A JSON number that is a non-negative integer no larger than `max`.
std::optional<uint64_t> unsigned_integer(const json& value, uint64_t max) {
  if (!value.is_number_unsigned()) return std::nullopt;
  const auto n = value.get<uint64_t>();
  return n <= max ? std::optional(n) : std::nullopt;
}

std::vector<int64_t> parse_shape(const fs::path& path, const std::string& name, const json& value) {
  if (!value.is_array()) {
    fail_entry(path, name, "\"shape\" is not an array but ", value.type_name());
  }
  std::vector<int64_t> shape;
  for (const json& size : value) {
    const auto n = unsigned_integer(size, std::numeric_limits<int64_t>::max());
    if (!n) fail_entry(path, name, "\"shape\" has the entry ", size.dump(), ", not a size >= 0");
    shape.push_back(static_cast<int64_t>(*n));
  }
  return shape;
}

TensorInfo parse_entry(const fs::path& path, const std::string& name, const json& entry,
                       uint64_t data_size) {
  if (!entry.is_object()) fail_entry(path, name, "the entry is not a JSON object");

  const json& dtype = field(path, name, entry, "dtype");
  if (!dtype.is_string()) {
    fail_entry(path, name, "\"dtype\" is not a string but ", dtype.type_name());
  }
  const Dtype* type = dtype_by_name(dtype.get_ref<const std::string&>());
  if (type == nullptr) fail_entry(path, name, "unknown or unsupported dtype ", dtype.dump());

  const std::vector<int64_t> shape = parse_shape(path, name, field(path, name, entry, "shape"));

  const json& offsets = field(path, name, entry, "data_offsets");
  const uint64_t max = std::numeric_limits<uint64_t>::max();
  if (!offsets.is_array() || offsets.size() != 2 || !unsigned_integer(offsets[0], max) ||
      !unsigned_integer(offsets[1], max)) {
    fail_entry(path, name, "\"data_offsets\" is ", offsets.dump(),
               ", not an array of two integers >= 0");
  }
  const auto begin = offsets[0].get<uint64_t>();
  const auto end = offsets[1].get<uint64_t>();
  if (begin > end) {
    fail_entry(path, name, "\"data_offsets\" ", offsets.dump(), " begin after they end");
  }
  if (end > data_size) {
    fail_entry(path, name, "\"data_offsets\" ", offsets.dump(), " run past the end of the ",
               data_size, "-byte data section");
  }

  uint64_t bytes = c10::elementSize(type->type);
  for (const int64_t size : shape) {
    if (__builtin_mul_overflow(bytes, static_cast<uint64_t>(size), &bytes)) {
      fail_entry(path, name, "shape ", c10::IntArrayRef(shape), " of ", type->name,
                 " overflows a 64-bit byte count");
    }
  }
  // LibTorch needs every contiguous stride (a product of sizes, a zero counting as one) to fit
  // in int64, also when a zero size leaves no elements and so no bytes to check above.
  int64_t span = 1;
  for (const int64_t size : shape) {
    if (__builtin_mul_overflow(span, std::max<int64_t>(size, 1), &span)) {
      fail_entry(path, name, "shape ", c10::IntArrayRef(shape),
                 " cannot be a tensor: its strides overflow 64 bits");
    }
  }
  if (bytes != end - begin) {
    fail_entry(path, name, "shape ", c10::IntArrayRef(shape), " of ", type->name, " needs ", bytes,
               " bytes but \"data_offsets\" ", offsets.dump(), " hold ", end - begin);
  }
  return {name, type->type, shape, begin, end};
}

// The reference implementation requires the tensors to tile the data section: in offset order
// each starts where the previous one ended, and the last ends at the end of the file.
void check_tiling(const fs::path& path, std::vector<TensorInfo>& tensors, uint64_t data_size) {
  std::ranges::sort(tensors, {},
                    [](const TensorInfo& t) { return std::tie(t.begin, t.end, t.name); });
  uint64_t covered = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorInfo& t = tensors[i];
    if (t.begin < covered) {
      const TensorInfo& previous = tensors[i - 1];
      fail(path, "tensor \"", t.name, "\" (bytes ", t.begin, "..", t.end, ") overlaps tensor \"",
           previous.name, "\" (bytes ", previous.begin, "..", previous.end, ")");
    }
    if (t.begin > covered) {
      fail(path, "bytes ", covered, "..", t.begin, " of the data section, before tensor \"", t.name,
           "\", belong to no tensor");
    }
    covered = t.end;
  }
  if (covered != data_size) {
    fail(path, "the last ", data_size - covered, " bytes of the ", data_size,
         "-byte data section belong to no tensor");
  }
}

// One tensor ready to write: its format dtype and its bytes in a contiguous CPU tensor.
struct Outgoing {
  std::string name;
  const Dtype* dtype;
  at::Tensor data;
};

std::vector<Outgoing> prepare(const fs::path& path,
                              const std::map<std::string, at::Tensor>& tensors) {
  std::vector<Outgoing> out;
  for (const auto& [name, tensor] : tensors) {
    TORCH_CHECK(name != kMetadataKey, "cannot save ", path, ": \"", kMetadataKey,
                "\" is reserved for the metadata and cannot name a tensor");
    TORCH_CHECK(tensor.defined(), "cannot save ", path, ": tensor \"", name, "\" is undefined");
    TORCH_CHECK(tensor.layout() == at::kStrided, "cannot save ", path, ": tensor \"", name,
                "\" has layout ", tensor.layout(), "; only dense tensors can be saved");
    const Dtype* dtype = dtype_by_type(tensor.scalar_type());
    TORCH_CHECK(dtype != nullptr, "cannot save ", path, ": tensor \"", name, "\" has dtype ",
                tensor.scalar_type(), ", which is not supported");
    out.push_back({name, dtype, tensor.cpu().contiguous()});
  }
  // Descending alignment keeps every tensor aligned if the data section is; names break ties
  // (std::map gave them sorted, stable_sort keeps that). This is the reference's order.
  std::ranges::stable_sort(out, std::greater<>(),
                           [](const Outgoing& t) { return t.dtype - kDtypes.data(); });
  return out;
}

std::string header_text(const fs::path& path, const std::vector<Outgoing>& tensors,
                        const std::map<std::string, std::string>& metadata) {
  // ordered_json keeps insertion order, which the format's byte layout depends on.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  uint64_t offset = 0;
  for (const Outgoing& t : tensors) {
    const auto bytes = static_cast<uint64_t>(t.data.nbytes());
    header[t.name] = {{"dtype", t.dtype->name},
                      {"shape", t.data.sizes().vec()},
                      {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::ordered_json::type_error& e) {
    TORCH_CHECK(false, "cannot save ", path,
                ": a tensor name or metadata string is not valid UTF-8 (", e.what(), ")");
  }
  // Spaces up to a multiple of 8, as the reference pads, so that the data section is aligned.
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

}  // namespace

std::string_view dtype_name(at::ScalarType dtype) {
  const Dtype* entry = dtype_by_type(dtype);
  return entry == nullptr ? std::string_view() : entry->name;
}

File File::open(const fs::path& path) {
  detail::MappedFile mapping = detail::map_file(path, "safetensors file");
  return parse(path, std::move(mapping.owner), mapping.bytes, mapping.size);
}

File File::from_bytes(std::string bytes, const fs::path& name) {
  detail::MappedFile owned = detail::own_bytes(std::move(bytes));
  return parse(name, std::move(owned.owner), owned.bytes, owned.size);
}

File File::parse(const fs::path& path, std::shared_ptr<const void> owner, const std::byte* bytes,
                 uint64_t size) {
  if (size < 8) fail(path, "the file is ", size, " bytes, shorter than the 8-byte header length");
  uint64_t header_size = 0;
  std::memcpy(&header_size, bytes, sizeof header_size);
  if (header_size > kMaxHeaderBytes) {
    fail(path, "the header length ", header_size, " exceeds the limit of ", kMaxHeaderBytes,
         " bytes");
  }
  if (header_size > size - 8) {
    fail(path, "the header length ", header_size, " runs past the end of the ", size,
         "-byte file");
  }
  const uint64_t data_size = size - 8 - header_size;
  const json header = parse_header(
      path, {reinterpret_cast<const char*>(bytes) + 8, static_cast<size_t>(header_size)});

  File file;
  file.path_ = path;
  for (const auto& [key, value] : header.items()) {
    if (key == kMetadataKey) {
      file.metadata_ = parse_metadata(path, value);
    } else {
      file.tensors_.push_back(parse_entry(path, key, value, data_size));
    }
  }
  check_tiling(path, file.tensors_, data_size);
  for (size_t i = 0; i < file.tensors_.size(); ++i) file.index_.emplace(file.tensors_[i].name, i);
  file.mapping_ = std::move(owner);
  file.data_ = bytes + 8 + header_size;
  return file;
}

const TensorInfo* File::find(std::string_view name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

at::Tensor File::get(std::string_view name) const {
  const TensorInfo* info = find(name);
  if (info == nullptr) fail(path_, "there is no tensor \"", name, "\"");
  at::Tensor out = at::empty(info->shape, at::TensorOptions().dtype(info->dtype));
  const std::byte* bytes = data_ + info->begin;
  const size_t size = info->end - info->begin;
  if (info->dtype == at::kBool) {
    // Any other byte would be an invalid bool for LibTorch's kernels.
    const auto* bad =
        std::ranges::find_if(bytes, bytes + size, [](std::byte b) { return b > std::byte{1}; });
    if (bad != bytes + size) {
      fail_entry(path_, info->name, "BOOL element ", bad - bytes, " is the byte ",
                 std::to_integer<int>(*bad), ", neither 0 nor 1");
    }
  }
  if (size > 0) std::memcpy(out.data_ptr(), bytes, size);
  return out;
}

std::map<std::string, at::Tensor> load(const fs::path& path) {
  const File file = File::open(path);
  std::map<std::string, at::Tensor> tensors;
  for (const TensorInfo& info : file.tensors()) tensors.emplace(info.name, file.get(info.name));
  return tensors;
}

void save(const fs::path& path, const std::map<std::string, at::Tensor>& tensors,
          const std::map<std::string, std::string>& metadata) {
  const std::vector<Outgoing> outgoing = prepare(path, tensors);
  const std::string header = header_text(path, outgoing, metadata);
  write_file_atomically(path, [&](std::ostream& out) {
    const uint64_t header_size = header.size();
    out.write(reinterpret_cast<const char*>(&header_size), sizeof header_size);
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    for (const Outgoing& t : outgoing) {
      out.write(static_cast<const char*>(t.data.const_data_ptr()),
                static_cast<std::streamsize>(t.data.nbytes()));
    }
  });
}

}  // namespace tlora::safetensors
