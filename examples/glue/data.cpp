// Locating and loading the GLUE files.
#include "data.h"

#include "files.h"

#include "tlora/models/loading.h"
#include "tlora/models/packaged.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <random>

namespace glue_app {

std::string resolve_data_dir(const RunConfig& config) {
  if (!config.data_dir.empty()) {
    TORCH_CHECK(is_directory(config.data_dir), "--data-dir ", config.data_dir, " is not a folder");
    return config.data_dir;
  }
  if (const char* env = std::getenv("GLUE_DIR"); env != nullptr && *env != '\0') {
    TORCH_CHECK(is_directory(env), "$GLUE_DIR is ", env, ", which is not a folder");
    return env;
  }
  for (const std::string candidate :
       {std::string("../shared/data/glue"), std::string(TLORA_SOURCE_DIR "/../shared/data/glue")})
    if (is_directory(candidate)) return candidate;
  TORCH_CHECK(false,
              "no GLUE data found: give --data-dir or set $GLUE_DIR to a folder holding the GLUE "
              "tasks in their standard layout (CoLA/, SST-2/, MRPC/, STS-B/, QQP/, MNLI/, QNLI/, "
              "RTE/, WNLI/ with train.tsv and dev.tsv, as written by the GLUE benchmark's "
              "download_glue_data.py; e.g. `python download_glue_data.py --data_dir glue_data` "
              "then --data-dir glue_data)");
}

std::string resolve_model_dir(const RunConfig& config) {
  if (!config.model_dir.empty()) {
    TORCH_CHECK(is_directory(config.model_dir), "model folder ", config.model_dir,
                " does not exist (give --model-dir a Hugging Face model folder, or set TLORA_MODEL_DIR)");
    return config.model_dir;
  }
  return tlora::models::default_model_dir().string();
}

tlora::glue::Features load_features(tlora::glue::Task task, const std::string& file,
                                    tlora::text::Tokenizer& tokenizer, int64_t max_length,
                                    int64_t limit) {
  auto examples = tlora::glue::read_examples(task, file);
  TORCH_CHECK(!examples.empty(), file, ": has no examples");
  if (limit > 0 && static_cast<int64_t>(examples.size()) > limit) examples.resize(limit);
  return tlora::glue::tokenize(examples, tokenizer, max_length);
}

namespace {

void append(tlora::glue::Features& to, const tlora::glue::Features& from, int64_t i) {
  to.input_ids.push_back(from.input_ids[i]);
  to.token_type_ids.push_back(from.token_type_ids[i]);
  to.labels.push_back(from.labels[i]);
  to.lines.push_back(from.lines[i]);
}

}  // namespace

Split split_validation(const tlora::glue::Features& train, double fraction, int64_t max, uint64_t seed) {
  const int64_t n = train.size();
  const int64_t count = std::min(max, static_cast<int64_t>(std::llround(fraction * static_cast<double>(n))));
  TORCH_CHECK(count >= 1 && count < n, "--validation-split ", fraction, " of ", n,
              " training examples (at most --validation-max ", max, ") leaves ", count,
              " for validation and ", n - count, " to train on; both need at least one");
  // Fisher-Yates on mt19937_64, whose output the standard fixes: the same split everywhere.
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
  std::mt19937_64 rng(seed ^ 0x76616c6964617465ULL);  // "validate": apart from other uses of the seed
  for (int64_t i = n - 1; i > 0; --i) std::swap(order[static_cast<size_t>(i)], order[rng() % static_cast<uint64_t>(i + 1)]);
  std::vector<bool> held(static_cast<size_t>(n), false);
  for (int64_t i = 0; i < count; ++i) held[static_cast<size_t>(order[static_cast<size_t>(i)])] = true;
  Split split;
  for (int64_t i = 0; i < n; ++i) append(held[static_cast<size_t>(i)] ? split.validation : split.train, train, i);
  return split;
}

std::vector<EvalSet> load_dev_sets(tlora::glue::Task task, const std::string& data_dir,
                                   tlora::text::Tokenizer& tokenizer, int64_t max_length,
                                   int64_t limit) {
  const auto& info = tlora::glue::info(task);
  std::vector<EvalSet> sets;
  for (size_t i = 0; i < info.dev_files.size(); ++i) {
    EvalSet set;
    set.file = tlora::glue::dev_file(task, data_dir, static_cast<int>(i)).string();
    std::string name = info.dev_files[i];
    set.name = name.substr(0, name.rfind('.'));
    set.features = load_features(task, set.file, tokenizer, max_length, limit);
    sets.push_back(std::move(set));
  }
  return sets;
}

}  // namespace glue_app
