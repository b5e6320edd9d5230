// The trainer_state.json reader (what `tlora-glue --resume` trusts) on arbitrary text; a state
// it accepts must survive a write and a second read unchanged (to_json(parse(to_json(s))) ==
// to_json(s)), and must hold the invariants the trainer relies on without checking again.
#include "fuzz_check.h"

#include "tlora/train/train_state.h"

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace {
constexpr std::string_view kName = "fuzz/trainer_state.json";
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace train = tlora::train;
  namespace fuzz = tlora::fuzz;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  train::TrainState state;
  try {
    state = train::parse_train_state(text, kName);
  } catch (const c10::Error& e) {
    fuzz::require_names(e, kName);
    return 0;
  }
  fuzz::require(state.epoch >= 0 && state.batches_done >= 0 && state.global_step >= 0 &&
                    state.train_tokens >= 0,
                "an accepted state has a negative count");
  fuzz::require(state.best_epoch <= state.epoch, "an accepted state is best after its epoch");
  fuzz::require(std::isfinite(state.epoch_loss_sum) && std::isfinite(state.train_seconds) &&
                    state.train_seconds >= 0,
                "an accepted state has a non-finite loss sum or time");
  fuzz::require((state.best_epoch == 0) == std::isinf(state.best_score),
                "best_score and best_epoch of an accepted state disagree");
  const std::string written = train::to_json(state);
  try {
    fuzz::require(train::to_json(train::parse_train_state(written, kName)) == written,
                  "an accepted state changes when written and read back");
  } catch (const c10::Error& e) {
    fuzz::require(false, std::string("an accepted state, written back, is refused: ") +
                             e.what_without_backtrace());
  }
  return 0;
}
