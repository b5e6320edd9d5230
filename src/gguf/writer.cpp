#include "tlora/gguf/writer.h"

#include "tlora/io/atomic_file.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>

namespace tlora::gguf {
namespace {

template <typename T>
void put(std::string& out, T value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof value);
}

void put_string(std::string& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out += s;
}

template <typename T>
T narrow(const Value& v, const std::string& key) {
  const int64_t i = v.as_int();
  TORCH_CHECK(i >= static_cast<int64_t>(std::numeric_limits<T>::min()) &&
                  (i < 0 || static_cast<uint64_t>(i) <= static_cast<uint64_t>(std::numeric_limits<T>::max())),
              "gguf::Writer: metadata '", key, "': ", i, " does not fit a ", value_type_name(static_cast<uint32_t>(v.type())));
  return static_cast<T>(i);
}

// The value's payload, without its type (arrays write their items' type themselves).
void put_value(std::string& out, const Value& v, const std::string& key) {
  switch (v.type()) {
    case ValueType::UINT8: put(out, narrow<uint8_t>(v, key)); return;
    case ValueType::INT8: put(out, narrow<int8_t>(v, key)); return;
    case ValueType::UINT16: put(out, narrow<uint16_t>(v, key)); return;
    case ValueType::INT16: put(out, narrow<int16_t>(v, key)); return;
    case ValueType::UINT32: put(out, narrow<uint32_t>(v, key)); return;
    case ValueType::INT32: put(out, narrow<int32_t>(v, key)); return;
    case ValueType::UINT64: put(out, static_cast<uint64_t>(v.as_int())); return;
    case ValueType::INT64: put(out, v.as_int()); return;
    case ValueType::FLOAT32: put(out, static_cast<float>(v.as_float())); return;
    case ValueType::FLOAT64: put(out, v.as_float()); return;
    case ValueType::BOOL: put<uint8_t>(out, v.as_bool() ? 1 : 0); return;
    case ValueType::STRING: put_string(out, v.as_string()); return;
    case ValueType::ARRAY: {
      const Value::Array& a = v.as_array();
      put<uint32_t>(out, static_cast<uint32_t>(a.type));
      put<uint64_t>(out, a.items.size());
      for (const Value& item : a.items) {
        TORCH_CHECK(item.type() == a.type, "gguf::Writer: metadata '", key, "': an ARRAY of ",
                    value_type_name(static_cast<uint32_t>(a.type)), " holds a ", value_type_name(static_cast<uint32_t>(item.type())));
        put_value(out, item, key);
      }
      return;
    }
  }
  TORCH_CHECK(false, "gguf::Writer: metadata '", key, "': unknown value type");
}

uint64_t padded(uint64_t n, uint64_t alignment) { return (n + alignment - 1) / alignment * alignment; }

}  // namespace

Writer::Writer(uint64_t alignment) : alignment_(alignment) {
  TORCH_CHECK(alignment > 0 && std::has_single_bit(alignment), "gguf::Writer: the alignment ", alignment,
              " is not a power of two");
  if (alignment != 32) set("general.alignment", Value(ValueType::UINT32, static_cast<uint64_t>(alignment)));
}

void Writer::set(const std::string& key, Value value) {
  TORCH_CHECK(std::ranges::none_of(metadata_, [&](const auto& kv) { return kv.first == key; }),
              "gguf::Writer: the metadata key '", key, "' is already set");
  std::string check;
  put_value(check, value, key);  // refuses a value that does not fit its type now, not at write time
  metadata_.emplace_back(key, std::move(value));
}

void Writer::add_tensor(const std::string& name, const at::Tensor& tensor) {
  TORCH_CHECK(std::ranges::none_of(tensors_, [&](const Tensor& t) { return t.name == name; }),
              "gguf::Writer: a tensor named '", name, "' was already added");
  TORCH_CHECK(!name.empty() && name.size() < 64, "gguf::Writer: tensor name '", name, "' must have 1 to 63 bytes");
  TORCH_CHECK(tensor.dim() >= 1 && tensor.dim() <= 4, "gguf::Writer: tensor '", name, "' has ", tensor.dim(),
              " dimensions (1 to 4 are valid)");
  TensorType type;
  switch (tensor.scalar_type()) {
    case at::kFloat: type = TensorType::F32; break;
    case at::kHalf: type = TensorType::F16; break;
    case at::kBFloat16: type = TensorType::BF16; break;
    default: TORCH_CHECK(false, "gguf::Writer: tensor '", name, "' is ", tensor.scalar_type(), "; F32, F16 and BF16 can be written");
  }
  const at::Tensor data = tensor.detach().to(at::kCPU).contiguous();
  const auto sizes = data.sizes();
  tensors_.push_back({name, {sizes.rbegin(), sizes.rend()}, type,
                      std::string(static_cast<const char*>(data.data_ptr()), data.nbytes())});
}

std::string Writer::bytes() const {
  std::string out;
  put<uint32_t>(out, 0x46554747);  // "GGUF"
  put<uint32_t>(out, 3);
  put<uint64_t>(out, tensors_.size());
  put<uint64_t>(out, metadata_.size());
  for (const auto& [key, value] : metadata_) {
    put_string(out, key);
    put<uint32_t>(out, static_cast<uint32_t>(value.type()));
    put_value(out, value, key);
  }
  uint64_t offset = 0;
  for (const Tensor& t : tensors_) {
    put_string(out, t.name);
    put<uint32_t>(out, static_cast<uint32_t>(t.ne.size()));
    for (const int64_t n : t.ne) put<uint64_t>(out, static_cast<uint64_t>(n));
    put<uint32_t>(out, static_cast<uint32_t>(t.type));
    put<uint64_t>(out, offset);
    offset += padded(t.data.size(), alignment_);
  }
  out.resize(padded(out.size(), alignment_), '\0');
  for (const Tensor& t : tensors_) {
    out += t.data;
    out.resize(padded(out.size(), alignment_), '\0');
  }
  return out;
}

void Writer::write(const std::filesystem::path& path) const { write_file_atomically(path, bytes()); }

}  // namespace tlora::gguf
