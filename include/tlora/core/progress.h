// Progress reporting for long loops: a redrawn bar on a terminal, periodic lines otherwise.
#pragma once

#include "tlora/export.h"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

TLORA_API_BEGIN
namespace tlora {

/// A progress bar with rate and ETA. On a terminal it redraws one line (at most 10 times a
/// second); when the stream is not a terminal (logs, CI) it prints a plain line every 10%.
class ProgressBar {
 public:
  /// `total` steps labelled `label`, written to `stream` (stderr by default).
  ProgressBar(std::string label, int64_t total, std::FILE* stream = stderr);
  /// Records that `done` steps are complete; `status` (e.g. "loss 0.123") is shown beside it.
  void update(int64_t done, std::string_view status = {});
  /// Prints a whole line above the bar (on a terminal the bar is redrawn below it).
  void log(std::string_view line);
  /// Draws the final state (all `total` steps) and ends the line.
  void finish(std::string_view status = {});
  /// Draws where a loop that ends early (interrupted) stopped, not 100%, and ends the line.
  void stop(std::string_view status = {});

 private:
  void draw(int64_t done, std::string_view status, bool final);

  std::string label_;
  int64_t total_;
  std::FILE* stream_;
  bool terminal_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
  int64_t last_decile_ = -1;
  int64_t done_ = 0;
  std::string status_;
  bool finished_ = false;
};

}  // namespace tlora
TLORA_API_END
