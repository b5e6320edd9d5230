#include "tlora/text/bpe.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <array>
#include <limits>
#include <mutex>
#include <shared_mutex>

#include "tlora/text/unicode.h"

namespace tlora::text {
namespace {

using unicode::Gpt2Class;

// GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68 bytes to
// U+0100 onwards in byte order.
constexpr std::array<char32_t, 256> kByteChars = [] {
  std::array<char32_t, 256> t{};
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
    t[b] = printable ? static_cast<char32_t>(b) : next++;
  }
  return t;
}();

Gpt2Class gpt2_class(char32_t cp) {
  if (cp < 0x80) {
    if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) return Gpt2Class::Letter;
    if (cp >= '0' && cp <= '9') return Gpt2Class::Number;
    if (cp == ' ' || (cp >= 9 && cp <= 13)) return Gpt2Class::Space;
    return Gpt2Class::Other;
  }
  return unicode::gpt2_class(cp);
}

// End of the run of code points of class `k` starting at byte `pos`.
size_t run_end(std::string_view text, size_t pos, Gpt2Class k) {
  while (pos < text.size()) {
    size_t next = pos;
    if (gpt2_class(next_code_point(text, next)) != k) break;
    pos = next;
  }
  return pos;
}

// The matches of GPT-2's pattern
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// in `text`, which they tile. Calls `emit(begin, end)` for each, in order.
template <typename Emit>
void gpt2_split(std::string_view text, Emit&& emit) {
  const size_t n = text.size();
  size_t pos = 0;
  while (pos < n) {
    const size_t start = pos;
    size_t next = pos;
    const char32_t c = next_code_point(text, next);
    if (c == '\'' && next < n) {
      size_t length = 0;
      const char c1 = text[next];
      if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') {
        length = 1;
      } else if (next + 1 < n) {
        const std::string_view two = text.substr(next, 2);
        if (two == "re" || two == "ve" || two == "ll") length = 2;
      }
      if (length) {
        pos = next + length;
        emit(start, pos);
        continue;
      }
    }
    Gpt2Class k = gpt2_class(c);
    if (c == ' ' && next < n) {
      size_t after = next;
      const Gpt2Class following = gpt2_class(next_code_point(text, after));
      if (following != Gpt2Class::Space) {
        pos = run_end(text, after, following);
        emit(start, pos);
        continue;
      }
    }
    if (k != Gpt2Class::Space) {
      pos = run_end(text, next, k);
      emit(start, pos);
      continue;
    }
    // Whitespace: the run, less its last character when a non-space follows (\s+(?!\S)), so
    // that the last space can prefix the next word; a single character alone (\s+).
    size_t end = next, last = start;
    while (end < n) {
      size_t q = end;
      if (gpt2_class(next_code_point(text, q)) != Gpt2Class::Space) break;
      last = end;
      end = q;
    }
    pos = (end == n || last == start) ? end : last;
    emit(start, pos);
  }
}

}  // namespace

// (left id, right id) -> (rank, merged id), as a hash map on the packed pair.
struct ByteLevelBPETokenizer::MergeTable {
  struct Entry {
    uint32_t rank;
    int64_t id;
  };
  std::unordered_map<uint64_t, Entry> map;

  static uint64_t key(int64_t a, int64_t b) {
    return (static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b);
  }
  const Entry* find(int64_t a, int64_t b) const {
    const auto it = map.find(key(a, b));
    return it == map.end() ? nullptr : &it->second;
  }
};

// Merged ids of words seen before, sharded to keep parallel batches from contending. Like
// Hugging Face's cache it stops growing when full.
struct ByteLevelBPETokenizer::Cache {
  static constexpr size_t kShards = 16;
  static constexpr size_t kMaxWordBytes = 256;
  struct Shard {
    std::shared_mutex mutex;
    std::unordered_map<std::string, std::vector<int64_t>, StringHash, std::equal_to<>> words;
  };
  explicit Cache(size_t capacity) : per_shard((capacity + kShards - 1) / kShards) {}

  Shard& shard(std::string_view word) { return shards[StringHash{}(word) % kShards]; }

  size_t per_shard;
  std::array<Shard, kShards> shards;
};

char32_t ByteLevelBPETokenizer::byte_to_char(unsigned char b) { return kByteChars[b]; }

ByteLevelBPETokenizer::ByteLevelBPETokenizer(
    Vocab vocab, const std::vector<std::pair<std::string, std::string>>& merges, BPEOptions options)
    : options_(std::move(options)),
      vocab_(std::move(vocab)),
      merges_(std::make_unique<MergeTable>()),
      cache_(options_.cache_capacity ? std::make_unique<Cache>(options_.cache_capacity) : nullptr) {
  TORCH_CHECK(!vocab_.empty(), "BPE: the vocabulary is empty");
  for (const auto& [token, id] : vocab_) {
    TORCH_CHECK(id >= 0 && id <= std::numeric_limits<int32_t>::max(), "BPE: token '", token,
                "' has id ", id, ", outside [0, 2^31)");
    tokens_.emplace(id, token);
  }
  const auto id_of = [&](const std::string& token, size_t rank) {
    const auto it = vocab_.find(token);
    TORCH_CHECK(it != vocab_.end(), "BPE: merge ", rank + 1, " uses '", token,
                "', which is not in the vocabulary");
    return it->second;
  };
  merges_->map.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [a, b] = merges[rank];
    const int64_t a_id = id_of(a, rank), b_id = id_of(b, rank), merged = id_of(a + b, rank);
    // A repeated pair keeps its last rank, as Hugging Face's map collection does.
    merges_->map[MergeTable::key(a_id, b_id)] = {static_cast<uint32_t>(rank), merged};
  }
  std::string character;
  for (int b = 0; b < 256; ++b) {
    character.clear();
    append_utf8(character, kByteChars[b]);
    const auto it = vocab_.find(character);
    byte_ids_[b] = it == vocab_.end() ? -1 : it->second;
  }
  if (options_.unk_token) {
    const auto it = vocab_.find(*options_.unk_token);
    TORCH_CHECK(it != vocab_.end(), "BPE: the unknown token '", *options_.unk_token,
                "' is not in the vocabulary");
    unk_id_ = it->second;
  }
}

ByteLevelBPETokenizer::ByteLevelBPETokenizer(ByteLevelBPETokenizer&&) noexcept = default;
ByteLevelBPETokenizer& ByteLevelBPETokenizer::operator=(ByteLevelBPETokenizer&&) noexcept = default;
ByteLevelBPETokenizer::~ByteLevelBPETokenizer() = default;

std::optional<int64_t> ByteLevelBPETokenizer::model_token_to_id(std::string_view token) const {
  const auto it = vocab_.find(token);
  return it == vocab_.end() ? std::nullopt : std::optional<int64_t>(it->second);
}

const std::string* ByteLevelBPETokenizer::model_id_to_token(int64_t id) const {
  const auto it = tokens_.find(id);
  return it == tokens_.end() ? nullptr : &it->second;
}

std::string_view ByteLevelBPETokenizer::normalize(std::string_view text, std::string&) const {
  return text;
}

void ByteLevelBPETokenizer::tokenize(std::string_view normalized, Encoding& out) const {
  thread_local std::string prefixed;
  std::string_view text = normalized;
  if (options_.add_prefix_space && text.front() != ' ') {
    prefixed.assign(1, ' ').append(normalized);
    text = prefixed;
  }
  const auto split = [&](std::string_view piece) {
    if (!options_.use_regex) {
      if (!piece.empty()) append_word(piece, out);
      return;
    }
    gpt2_split(piece, [&](size_t begin, size_t end) { append_word(piece.substr(begin, end - begin), out); });
  };
  if (!options_.split_digits) {
    split(text);
    return;
  }
  size_t start = 0, pos = 0;
  while (pos < text.size()) {
    size_t next = pos;
    if (gpt2_class(next_code_point(text, next)) != Gpt2Class::Number) {
      pos = next;
      continue;
    }
    split(text.substr(start, pos - start));
    append_word(text.substr(pos, next - pos), out);
    start = pos = next;
  }
  split(text.substr(start));
}

std::string ByteLevelBPETokenizer::token_bytes(int64_t id) const {
  for (const AddedToken& t : added_tokens()) {
    if (t.id == id) return t.content;
  }
  const auto it = tokens_.find(id);
  if (it == tokens_.end()) return {};
  std::string bytes;
  std::string_view token = it->second;
  for (size_t pos = 0; pos < token.size();) {
    const char32_t c = next_code_point(token, pos);
    const auto* found = std::find(kByteChars.begin(), kByteChars.end(), c);
    if (found != kByteChars.end()) {
      bytes += static_cast<char>(found - kByteChars.begin());
    } else {
      append_utf8(bytes, c);  // not a byte-level character: the text as it is
    }
  }
  return bytes;
}

std::string ByteLevelBPETokenizer::decode(std::span<const int64_t> ids, bool skip_special_tokens) const {
  std::string text;
  for (const int64_t id : ids) {
    if (skip_special_tokens) {
      const auto& added = added_tokens();
      if (std::any_of(added.begin(), added.end(), [&](const AddedToken& t) { return t.special && t.id == id; })) continue;
    }
    text += token_bytes(id);
  }
  return text;
}

void ByteLevelBPETokenizer::append_word(std::string_view word, Encoding& out) const {
  const size_t first = out.ids.size();
  if (options_.ignore_merges) {
    thread_local std::string mapped;
    mapped.clear();
    for (const char c : word) append_utf8(mapped, kByteChars[static_cast<unsigned char>(c)]);
    if (const auto it = vocab_.find(mapped); it != vocab_.end()) {
      out.ids.push_back(it->second);
      out.tokens.push_back(mapped);
      return;
    }
  }
  const bool cacheable = cache_ && word.size() < Cache::kMaxWordBytes;
  bool cached = false;
  if (cacheable) {
    Cache::Shard& shard = cache_->shard(word);
    std::shared_lock lock(shard.mutex);
    if (const auto it = shard.words.find(word); it != shard.words.end()) {
      out.ids.insert(out.ids.end(), it->second.begin(), it->second.end());
      cached = true;
    }
  }
  if (!cached) {
    merge_word(word, out.ids);
    if (cacheable) {
      Cache::Shard& shard = cache_->shard(word);
      std::unique_lock lock(shard.mutex);
      if (shard.words.size() < cache_->per_shard) {
        shard.words.try_emplace(
            std::string(word), out.ids.begin() + static_cast<std::ptrdiff_t>(first), out.ids.end());
      }
    }
  }
  for (size_t i = first; i < out.ids.size(); ++i) out.tokens.push_back(tokens_.at(out.ids[i]));
}

// Hugging Face's Word::merge_all: a min-heap of (rank, position) over adjacent pairs; entries
// made stale by earlier merges are skipped when popped.
void ByteLevelBPETokenizer::merge_word(std::string_view word, std::vector<int64_t>& ids) const {
  struct Symbol {
    int64_t id;
    int32_t prev, next;
    bool alive;
  };
  struct Merge {
    uint32_t rank, pos;
    int64_t id;
  };
  thread_local std::vector<Symbol> symbols;
  thread_local std::vector<Merge> heap;
  symbols.clear();
  heap.clear();
  const auto add = [&](int64_t id) {
    const auto index = static_cast<int32_t>(symbols.size());
    if (!symbols.empty()) symbols.back().next = index;
    symbols.push_back({id, index - 1, -1, true});
  };
  bool pending_unk = false;
  for (const char c : word) {
    const int64_t id = byte_ids_[static_cast<unsigned char>(c)];
    if (id >= 0) {
      if (pending_unk) add(*unk_id_);
      pending_unk = false;
      add(id);
    } else if (unk_id_) {
      if (pending_unk && !options_.fuse_unk) add(*unk_id_);
      pending_unk = true;
    }
  }
  if (pending_unk) add(*unk_id_);

  const auto later = [](const Merge& a, const Merge& b) {
    return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
  };
  const auto push = [&](uint32_t pos, int64_t left, int64_t right) {
    if (const auto* m = merges_->find(left, right)) {
      heap.push_back({m->rank, pos, m->id});
      std::push_heap(heap.begin(), heap.end(), later);
    }
  };
  for (size_t i = 0; i + 1 < symbols.size(); ++i) {
    push(static_cast<uint32_t>(i), symbols[i].id, symbols[i + 1].id);
  }
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    const Merge top = heap.back();
    heap.pop_back();
    Symbol& s = symbols[top.pos];
    if (!s.alive || s.next < 0) continue;
    const Symbol right = symbols[s.next];
    const auto* m = merges_->find(s.id, right.id);
    if (!m || m->id != top.id) continue;
    symbols[s.next].alive = false;
    s.id = top.id;
    s.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = static_cast<int32_t>(top.pos);
    if (s.prev >= 0) push(static_cast<uint32_t>(s.prev), symbols[s.prev].id, s.id);
    if (s.next >= 0) push(top.pos, s.id, symbols[s.next].id);
  }
  for (const Symbol& s : symbols) {
    if (s.alive) ids.push_back(s.id);
  }
}

}  // namespace tlora::text
