#include "tlora/train/interruption.h"

#include <c10/util/Exception.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <string>

namespace tlora::train {
namespace {

std::atomic<int> g_stop_signal{0};

extern "C" void on_stop_signal(int signal) { g_stop_signal.store(signal); }

}  // namespace

void install_stop_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGTERM, &action, nullptr);
  ::sigaction(SIGINT, &action, nullptr);
}

int stop_requested() { return g_stop_signal.load(); }

FaultHook::FaultHook(const char* variable) {
  const char* spec = std::getenv(variable);
  if (spec == nullptr || *spec == '\0') return;
  const std::string text = spec;
  const auto colon = text.find(':');
  const std::string kind = text.substr(0, colon);
  char* end = nullptr;
  const long long step = colon == std::string::npos ? 0 : std::strtoll(text.c_str() + colon + 1, &end, 10);
  TORCH_CHECK((kind == "kill" || kind == "term") && end != nullptr && *end == '\0' && step > 0, variable,
              " must be kill:STEP or term:STEP with STEP > 0, got '", text, "'");
  signal_ = kind == "kill" ? SIGKILL : SIGTERM;
  step_ = step;
}

void FaultHook::after_step(int64_t step) const {
  if (step == step_) ::raise(signal_);
}

}  // namespace tlora::train
