#include "tlora/text/encoding.h"

#include <ATen/ops/empty.h>
#include <c10/util/Exception.h>

#include <algorithm>

namespace tlora::text {
namespace {

template <typename T>
void keep(std::vector<T>& v, size_t n, bool from_left) {
  if (v.size() <= n) return;
  if (from_left)
    v.erase(v.begin(), v.end() - static_cast<std::ptrdiff_t>(n));
  else
    v.resize(n);
}

template <typename T>
void extend(std::vector<T>& v, const std::vector<T>& w) {
  v.insert(v.end(), w.begin(), w.end());
}

template <typename T>
void pad(std::vector<T>& v, size_t n, const T& value, bool left) {
  v.insert(left ? v.begin() : v.end(), n, value);
}

}  // namespace

void Encoding::truncate(size_t max_length, bool from_left) {
  keep(ids, max_length, from_left);
  keep(type_ids, max_length, from_left);
  keep(attention_mask, max_length, from_left);
  keep(special_tokens_mask, max_length, from_left);
  keep(tokens, max_length, from_left);
}

void Encoding::append(const Encoding& other) {
  extend(ids, other.ids);
  extend(type_ids, other.type_ids);
  extend(attention_mask, other.attention_mask);
  extend(special_tokens_mask, other.special_tokens_mask);
  extend(tokens, other.tokens);
}

void pad_encodings(std::span<Encoding> encodings, const PaddingOptions& options) {
  if (encodings.empty()) return;
  TORCH_CHECK(options.pad_id.has_value(), "pad_encodings: PaddingOptions::pad_id is not set");
  size_t length = 0;
  if (options.length) {
    length = *options.length;
  } else {
    for (const Encoding& e : encodings) length = std::max(length, e.size());
  }
  const size_t multiple = options.pad_to_multiple_of;
  if (multiple > 0 && length % multiple != 0) length += multiple - length % multiple;
  const bool left = options.direction == Side::Left;
  for (Encoding& e : encodings) {
    if (e.size() >= length) continue;
    const size_t n = length - e.size();
    pad(e.ids, n, *options.pad_id, left);
    pad(e.type_ids, n, options.pad_type_id, left);
    pad(e.attention_mask, n, int64_t{0}, left);
    pad(e.special_tokens_mask, n, int64_t{1}, left);
    pad(e.tokens, n, options.pad_token, left);
  }
}

Batch to_batch(std::span<const Encoding> encodings) {
  const size_t length = encodings.empty() ? 0 : encodings.front().size();
  for (size_t i = 0; i < encodings.size(); ++i) {
    TORCH_CHECK(
        encodings[i].size() == length, "to_batch: encoding ", i, " has ", encodings[i].size(),
        " tokens and encoding 0 has ", length,
        "; enable padding (Tokenizer::set_padding) to batch sequences of different lengths");
  }
  const auto n = static_cast<int64_t>(encodings.size());
  const auto options = at::TensorOptions().dtype(at::kLong);
  Batch batch{at::empty({n, static_cast<int64_t>(length)}, options),
              at::empty({n, static_cast<int64_t>(length)}, options),
              at::empty({n, static_cast<int64_t>(length)}, options)};
  int64_t* ids = batch.input_ids.data_ptr<int64_t>();
  int64_t* mask = batch.attention_mask.data_ptr<int64_t>();
  int64_t* types = batch.token_type_ids.data_ptr<int64_t>();
  for (const Encoding& e : encodings) {
    ids = std::copy(e.ids.begin(), e.ids.end(), ids);
    mask = std::copy(e.attention_mask.begin(), e.attention_mask.end(), mask);
    types = std::copy(e.type_ids.begin(), e.type_ids.end(), types);
  }
  return batch;
}

}  // namespace tlora::text
