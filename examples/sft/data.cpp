#include "data.h"

#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>
#include <random>

namespace sft {
namespace {

using nlohmann::json;

std::string field(const json& object, const char* key, const std::string& where) {
  const auto it = object.find(key);
  TORCH_CHECK(it != object.end() && it->is_string(), where, ": \"", key, "\" must be a string");
  return it->get<std::string>();
}

}  // namespace

std::vector<Example> read_jsonl(const std::string& path, const tlora::text::ByteLevelBPETokenizer& tokenizer,
                                const std::optional<tlora::text::ChatTemplate>& chat, int64_t end_of_turn,
                                int64_t max_length, int64_t max_examples) {
  std::ifstream in(path);
  TORCH_CHECK(in, "cannot read ", path);
  std::vector<Example> out;
  std::string line;
  for (size_t number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(number);
    json row;
    try {
      row = json::parse(line);
    } catch (const json::exception& e) {
      TORCH_CHECK(false, where, ": not valid JSON: ", e.what());
    }
    TORCH_CHECK(row.is_object(), where, ": expected a JSON object");
    std::string prompt, completion;
    if (row.contains("messages")) {
      const json& messages = row["messages"];
      TORCH_CHECK(messages.is_array() && !messages.empty(), where, ": \"messages\" must be a non-empty array");
      TORCH_CHECK(chat, where, ": chat messages need a model with a chat template");
      std::vector<tlora::text::ChatMessage> turns;
      for (const json& m : messages) {
        TORCH_CHECK(m.is_object(), where, ": each message must be an object");
        turns.push_back({field(m, "role", where), field(m, "content", where)});
      }
      TORCH_CHECK(turns.back().role == "assistant", where, ": the last message must be the assistant's, to learn");
      completion = turns.back().content;
      turns.pop_back();
      prompt = chat->apply(turns, /*add_generation_prompt=*/true);
    } else {
      prompt = field(row, "prompt", where);
      completion = field(row, "completion", where);
    }
    Example e;
    e.source = where;
    e.completion = completion;
    e.ids = tokenizer.encode(prompt, /*add_special_tokens=*/false).ids;
    e.prompt_length = e.ids.size();
    std::vector<int64_t> answer = tokenizer.encode(completion, false).ids;
    answer.push_back(end_of_turn);
    e.labels.assign(e.ids.size(), -100);
    e.ids.insert(e.ids.end(), answer.begin(), answer.end());
    e.labels.insert(e.labels.end(), answer.begin(), answer.end());
    if (static_cast<int64_t>(e.ids.size()) > max_length) {
      e.ids.resize(max_length);
      e.labels.resize(max_length);
    }
    TORCH_CHECK(e.prompt_length < e.ids.size(), where, ": the prompt alone fills --max-length ", max_length,
                " tokens, leaving nothing to learn");
    out.push_back(std::move(e));
    if (max_examples > 0 && static_cast<int64_t>(out.size()) >= max_examples) break;
  }
  TORCH_CHECK(!out.empty(), path, ": no examples");
  return out;
}

Split split_validation(std::vector<Example> examples, double fraction, int64_t max, uint64_t seed,
                       const std::string& source) {
  const auto n = static_cast<int64_t>(examples.size());
  const int64_t count = std::min(max, static_cast<int64_t>(std::llround(fraction * static_cast<double>(n))));
  TORCH_CHECK(count >= 1 && count < n, "--validation-split ", fraction, " of the ", n, " examples of ", source,
              " (at most --max-validation ", max, ") holds out ", count, " and leaves ", n - count,
              " to train on; both need at least one");
  // Fisher-Yates on mt19937_64, whose output the standard fixes (std::shuffle's is not): the
  // same split on every machine.
  std::vector<size_t> order(examples.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::mt19937_64 rng(seed ^ 0x76616c6964617465ULL);  // "validate": apart from other uses of the seed
  for (size_t i = order.size() - 1; i > 0; --i) std::swap(order[i], order[rng() % (i + 1)]);
  std::vector<bool> held(examples.size(), false);
  for (int64_t i = 0; i < count; ++i) held[order[static_cast<size_t>(i)]] = true;
  Split split;
  for (size_t i = 0; i < examples.size(); ++i) (held[i] ? split.validation : split.train).push_back(std::move(examples[i]));
  return split;
}

double padding_fraction(std::span<const int64_t> lengths, const std::vector<std::vector<int64_t>>& batches) {
  int64_t tokens = 0, padded = 0;
  for (const auto& batch : batches) {
    int64_t longest = 0;
    for (const int64_t i : batch) {
      tokens += lengths[static_cast<size_t>(i)];
      longest = std::max(longest, lengths[static_cast<size_t>(i)]);
    }
    padded += longest * static_cast<int64_t>(batch.size());
  }
  return padded == 0 ? 0.0 : 1.0 - static_cast<double>(tokens) / static_cast<double>(padded);
}

}  // namespace sft
