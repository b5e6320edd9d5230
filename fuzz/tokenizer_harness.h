// The checks both tokenizer fuzz targets run on arbitrary bytes. The first byte chooses a
// single text or a pair (split at the first tab), special tokens or not, and the plain or the
// truncating tokenizer; the rest is the text.
#pragma once

#include "fuzz_check.h"

#include "tlora/text/tokenizer.h"
#include "tlora/text/unicode.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tlora::fuzz {

/// The longest encoding the truncating tokenizer may return.
inline constexpr size_t kTruncatedLength = 8;

/// Sets `tokenizer` up as the truncating one of fuzz_tokenizer: truncation to kTruncatedLength
/// and no padding (a tokenizer.json may pad to a fixed length, as MiniLM's pads to 128).
inline void truncate_for_fuzzing(text::Tokenizer& tokenizer) {
  tokenizer.set_truncation(text::TruncationOptions{.max_length = kTruncatedLength});
  tokenizer.set_padding(std::nullopt);
}

/// Encodes the input with `plain` or `truncating` and checks the encoding; ill-formed UTF-8
/// must be refused (and its replacement by U+FFFD accepted), well-formed UTF-8 never.
inline void fuzz_tokenizer(const text::Tokenizer& plain, const text::Tokenizer& truncating,
                           const uint8_t* data, size_t size) {
  if (size == 0) return;
  const uint8_t flags = data[0];
  const bool pair = flags & 1, special = flags & 2, truncate = flags & 4;
  const text::Tokenizer& tokenizer = truncate ? truncating : plain;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  const size_t tab = pair ? input.find('\t') : std::string_view::npos;
  const std::string_view first = input.substr(0, tab);
  const std::string_view second = tab == std::string_view::npos ? "" : input.substr(tab + 1);

  const auto encode = [&](std::string_view a, std::string_view b) {
    return pair ? tokenizer.encode_pair(a, b, special) : tokenizer.encode(a, special);
  };
  const bool valid = text::find_invalid_utf8(first) == std::string_view::npos &&
                     text::find_invalid_utf8(second) == std::string_view::npos;
  if (!valid) {
    try {
      encode(first, second);
      require(false, "ill-formed UTF-8 was encoded");
    } catch (const c10::Error&) {
    }
  }
  const text::Encoding e = valid ? encode(first, second)
                                 : encode(text::replace_invalid_utf8(first),
                                          text::replace_invalid_utf8(second));
  const size_t n = e.size();
  require(e.type_ids.size() == n && e.attention_mask.size() == n &&
              e.special_tokens_mask.size() == n && e.tokens.size() == n,
          "an encoding's vectors differ in length");
  require(!truncate || n <= kTruncatedLength, "truncation left the encoding too long");
  const auto vocab = static_cast<int64_t>(tokenizer.vocab_size());
  for (size_t i = 0; i < n; ++i) {
    require(e.ids[i] >= 0 && e.ids[i] < vocab, "an id outside the vocabulary");
    require(tokenizer.id_to_token(e.ids[i]) == e.tokens[i], "a token that is not its id's");
  }
}

}  // namespace tlora::fuzz
