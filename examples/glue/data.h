// The task's data for a run: where the GLUE folder is, and its files read and tokenized.
#pragma once

#include "options.h"

#include "tlora/glue/batching.h"
#include "tlora/glue/tasks.h"
#include "tlora/text/tokenizer.h"

#include <memory>
#include <string>
#include <vector>

namespace glue_app {

// One evaluation file, tokenized.
struct EvalSet {
  std::string name;  // "dev", "dev_matched", ... or the file name
  std::string file;
  tlora::glue::Features features;
};

// The GLUE folder: --data-dir, else $GLUE_DIR, else ../shared/data/glue from the working
// directory or from the source tree. Throws, saying how to get GLUE, when none exists.
std::string resolve_data_dir(const RunConfig& config);

// The model folder: --model-dir, else tlora::models::default_model_dir().
std::string resolve_model_dir(const RunConfig& config);

// Reads and tokenizes `file` of `task`, keeping the first `limit` examples when limit > 0.
tlora::glue::Features load_features(tlora::glue::Task task, const std::string& file,
                                    tlora::text::Tokenizer& tokenizer, int64_t max_length,
                                    int64_t limit);

// A validation split carved from the training set: `fraction` of its examples (at most `max`),
// drawn by a generator seeded with `seed`, leaving the rest to train on; both keep file order.
struct Split {
  tlora::glue::Features train, validation;
};
Split split_validation(const tlora::glue::Features& train, double fraction, int64_t max, uint64_t seed);

// The task's dev sets (MNLI: matched and mismatched), tokenized.
std::vector<EvalSet> load_dev_sets(tlora::glue::Task task, const std::string& data_dir,
                                   tlora::text::Tokenizer& tokenizer, int64_t max_length,
                                   int64_t limit);

}  // namespace glue_app
