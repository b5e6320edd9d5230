#include "tlora/core/progress.h"

#include <fmt/format.h>

#include <algorithm>
#include <unistd.h>

namespace tlora {
namespace {

std::string format_seconds(double s) {
  if (!(s >= 0) || s > 1e7) return "--:--";
  const auto t = static_cast<int64_t>(s + 0.5);
  return t >= 3600 ? fmt::format("{}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60)
                   : fmt::format("{:02}:{:02}", t / 60, t % 60);
}

}  // namespace

ProgressBar::ProgressBar(std::string label, int64_t total, std::FILE* stream)
    : label_(std::move(label)),
      total_(std::max<int64_t>(total, 1)),
      stream_(stream),
      terminal_(isatty(fileno(stream)) != 0),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_ - std::chrono::seconds(1)) {}

void ProgressBar::update(int64_t done, std::string_view status) {
  done_ = done;
  status_ = status;
  const auto now = std::chrono::steady_clock::now();
  if (terminal_) {
    if (now - last_draw_ < std::chrono::milliseconds(100)) return;
  } else {
    const int64_t decile = std::clamp<int64_t>(done, 0, total_) * 10 / total_;
    // The last tenth is reported by finish(), with the total time.
    if (decile == last_decile_ || decile == 10) return;
    last_decile_ = decile;
  }
  last_draw_ = now;
  draw(done, status, false);
}

void ProgressBar::log(std::string_view line) {
  if (terminal_ && !finished_) {
    fmt::print(stream_, "\r\033[K{}\n", line);
    draw(done_, status_, false);
  } else {
    fmt::print(stream_, "{}\n", line);
    std::fflush(stream_);
  }
}

void ProgressBar::finish(std::string_view status) {
  if (finished_) return;
  finished_ = true;
  draw(total_, status, true);
}

void ProgressBar::stop(std::string_view status) {
  if (finished_) return;
  finished_ = true;
  draw(done_, status, true);
}

void ProgressBar::draw(int64_t done, std::string_view status, bool final) {
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double fraction = std::clamp(static_cast<double>(done) / total_, 0.0, 1.0);
  const double rate = elapsed > 0 ? done / elapsed : 0.0;
  const double eta = rate > 0 ? (total_ - done) / rate : -1.0;
  const std::string timing = final ? fmt::format("{} total", format_seconds(elapsed))
                                   : fmt::format("{} left", format_seconds(eta));
  if (terminal_) {
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(fraction * kWidth);
    fmt::print(stream_, "\r\033[K{} [{}{}] {}/{} {:.1f} it/s {}{}{}", label_,
               std::string(filled, '#'), std::string(kWidth - filled, '.'), done, total_, rate,
               timing, status.empty() ? "" : " ", status);
    if (final) fmt::print(stream_, "\n");
  } else {
    fmt::print(stream_, "{} {:3.0f}% {}/{} {:.1f} it/s {}{}{}\n", label_, fraction * 100, done,
               total_, rate, timing, status.empty() ? "" : " ", status);
  }
  std::fflush(stream_);
}

}  // namespace tlora
