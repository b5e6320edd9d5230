// trainer_state.json: reading with full validation, atomic writing.
#include "tlora/train/train_state.h"

#include "tlora/atomic_file.h"

#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <sstream>

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

// Typed access to the fields of one object, with messages naming the source and the field.
class Reader {
 public:
  Reader(const json& object, std::string_view source) : object_(object), source_(source) {}

  const json& field(const char* name, json::value_t type, const char* type_name) const {
    const auto it = object_.find(name);
    TORCH_CHECK(it != object_.end(), source_, ": missing field '", name, "'");
    const bool ok = type == json::value_t::number_integer
                        ? it->is_number_integer()
                        : (type == json::value_t::number_float ? it->is_number() : it->type() == type);
    TORCH_CHECK(ok, source_, ": field '", name, "' must be ", type_name, ", got ", it->type_name());
    return *it;
  }
  int64_t count(const char* name) const {
    const json& v = field(name, json::value_t::number_integer, "an integer");
    TORCH_CHECK(v.is_number_unsigned() || v.get<int64_t>() >= 0, source_, ": field '", name,
                "' must be >= 0, got ", v.dump());
    TORCH_CHECK(!v.is_number_unsigned() || v.get<uint64_t>() <= INT64_MAX, source_, ": field '",
                name, "' is too large: ", v.dump());
    return v.get<int64_t>();
  }
  double number(const char* name) const {
    return field(name, json::value_t::number_float, "a number").get<double>();
  }

 private:
  const json& object_;
  std::string_view source_;
};

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
  json j;
  try {
    j = json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a number past double
    TORCH_CHECK(false, source, ": not valid JSON: ", e.what());
  }
  TORCH_CHECK(j.is_object(), source, ": expected a JSON object");
  const Reader r(j, source);
  const int64_t version = r.count("version");
  TORCH_CHECK(version == kTrainStateVersion, source, ": unsupported version ", version,
              " (this build reads version ", kTrainStateVersion, ")");
  TrainState s;
  s.epoch = r.count("epoch");
  s.batches_done = r.count("batches_done");
  s.epoch_loss_sum = r.number("epoch_loss_sum");
  TORCH_CHECK(std::isfinite(s.epoch_loss_sum), source, ": field 'epoch_loss_sum' must be finite");
  s.global_step = r.count("global_step");
  const auto best = j.find("best_score");
  TORCH_CHECK(best != j.end(), source, ": missing field 'best_score'");
  if (!best->is_null()) {
    TORCH_CHECK(best->is_number() && std::isfinite(best->get<double>()), source,
                ": field 'best_score' must be a finite number or null");
    s.best_score = best->get<double>();
  }
  s.best_epoch = r.count("best_epoch");
  TORCH_CHECK(s.best_epoch <= s.epoch, source, ": best_epoch ", s.best_epoch,
              " is after the current epoch ", s.epoch);
  TORCH_CHECK((s.best_epoch == 0) == best->is_null(), source,
              ": best_score and best_epoch disagree about whether an epoch was scored");
  s.train_seconds = r.number("train_seconds");
  TORCH_CHECK(std::isfinite(s.train_seconds) && s.train_seconds >= 0, source,
              ": field 'train_seconds' must be finite and >= 0");
  s.train_tokens = r.count("train_tokens");
  s.config_digest = r.field("config_digest", json::value_t::string, "a string").get<std::string>();
  for (const auto& [path, calls] :
       r.field("dropout_calls", json::value_t::object, "an object").items()) {
    TORCH_CHECK(calls.is_number_unsigned(), source, ": dropout_calls['", path,
                "'] must be a non-negative integer");
    s.dropout_calls[path] = calls.get<uint64_t>();
  }
  const std::string hex = r.field("rng_state", json::value_t::string, "a string").get<std::string>();
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
  std::ifstream in(file, std::ios::binary);
  TORCH_CHECK(in, "cannot read the trainer state ", file);
  std::ostringstream text;
  text << in.rdbuf();
  return parse_train_state(text.str(), file.string());
}

void write_train_state(const std::filesystem::path& file, const TrainState& state) {
  write_file_atomically(file, to_json(state));
}

}  // namespace tlora::train
