// trainer_state.json: reading with full validation, atomic writing.
#include "tlora/train/train_state.h"

#include "tlora/io/atomic_file.h"
#include "tlora/io/files.h"
#include "io/json.h"
#include "io/json_fields.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/ops/from_blob.h>
#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <mutex>

namespace tlora::train {
namespace {

using json = nlohmann::ordered_json;

std::string to_hex(const std::vector<uint8_t>& bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (uint8_t b : bytes) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 15]);
  }
  return out;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

}  // namespace

std::string to_json(const TrainState& s) {
  json j;
  j["version"] = kTrainStateVersion;
  j["epoch"] = s.epoch;
  j["batches_done"] = s.batches_done;
  j["epoch_loss_sum"] = s.epoch_loss_sum;
  j["global_step"] = s.global_step;
  // JSON has no infinity: "no best yet" is null.
  j["best_score"] = std::isfinite(s.best_score) ? json(s.best_score) : json(nullptr);
  j["best_epoch"] = s.best_epoch;
  j["train_seconds"] = s.train_seconds;
  j["train_tokens"] = s.train_tokens;
  j["config_digest"] = s.config_digest;
  j["dropout_calls"] = json::object();
  for (const auto& [path, calls] : s.dropout_calls) j["dropout_calls"][path] = calls;
  j["rng_state"] = to_hex(s.rng_state);
  return j.dump(2) + "\n";
}

TrainState parse_train_state(std::string_view text, std::string_view source) {
  const json j = tlora::detail::parse_json<json>(text, std::string(source));
  TORCH_CHECK(j.is_object(), source, ": expected a JSON object");
  const tlora::detail::BasicJsonFields<json> r(j, std::string(source));
  const int64_t version = r.required_integer("version", 0);
  TORCH_CHECK(version == kTrainStateVersion, source, ": unsupported version ", version,
              " (this build reads version ", kTrainStateVersion, ")");
  TrainState s;
  s.epoch = r.required_integer("epoch", 0);
  s.batches_done = r.required_integer("batches_done", 0);
  s.epoch_loss_sum = r.required_number("epoch_loss_sum");
  TORCH_CHECK(std::isfinite(s.epoch_loss_sum), source, ": field 'epoch_loss_sum' must be finite");
  s.global_step = r.required_integer("global_step", 0);
  const json* best = &r.at("best_score");
  if (!best->is_null()) {
    TORCH_CHECK(best->is_number() && std::isfinite(best->get<double>()), source,
                ": field 'best_score' must be a finite number or null");
    s.best_score = best->get<double>();
  }
  s.best_epoch = r.required_integer("best_epoch", 0);
  TORCH_CHECK(s.best_epoch <= s.epoch, source, ": best_epoch ", s.best_epoch,
              " is after the current epoch ", s.epoch);
  TORCH_CHECK((s.best_epoch == 0) == best->is_null(), source,
              ": best_score and best_epoch disagree about whether an epoch was scored");
  s.train_seconds = r.required_number("train_seconds");
  TORCH_CHECK(std::isfinite(s.train_seconds) && s.train_seconds >= 0, source,
              ": field 'train_seconds' must be finite and >= 0");
  s.train_tokens = r.required_integer("train_tokens", 0);
  s.config_digest = r.required_string("config_digest");
  const json& dropout_calls = r.at("dropout_calls");
  if (!dropout_calls.is_object()) r.fail("dropout_calls", "must be an object, got ", dropout_calls.dump());
  for (const auto& [path, calls] : dropout_calls.items()) {
    TORCH_CHECK(calls.is_number_unsigned(), source, ": dropout_calls['", path,
                "'] must be a non-negative integer");
    s.dropout_calls[path] = calls.get<uint64_t>();
  }
  const std::string hex = r.required_string("rng_state");
  TORCH_CHECK(hex.size() % 2 == 0, source, ": rng_state has an odd number of hex digits");
  s.rng_state.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int hi = hex_digit(hex[i]), lo = hex_digit(hex[i + 1]);
    TORCH_CHECK(hi >= 0 && lo >= 0, source, ": rng_state is not lower-case hex at offset ", i);
    s.rng_state.push_back(static_cast<uint8_t>(hi * 16 + lo));
  }
  return s;
}

TrainState read_train_state(const std::filesystem::path& file) {
  return parse_train_state(read_file(file, "trainer state"), file.string());
}

void write_train_state(const std::filesystem::path& file, const TrainState& state) {
  write_file_atomically(file, to_json(state));
}

std::vector<uint8_t> cpu_rng_state() {
  auto generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  const at::Tensor state = generator.get_state();
  const auto* bytes = state.data_ptr<uint8_t>();
  return {bytes, bytes + state.numel()};
}

void set_cpu_rng_state(const std::vector<uint8_t>& state) {
  std::vector<uint8_t> bytes = state;  // from_blob needs writable memory; clone() copies it out
  auto generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_state(at::from_blob(bytes.data(), {static_cast<int64_t>(bytes.size())}, at::kByte).clone());
}

}  // namespace tlora::train
