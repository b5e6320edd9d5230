#include "environment.h"

#include <c10/util/Exception.h>

#include <charconv>
#include <cstdlib>
#include <limits>

namespace tlora::dist::detail {
namespace {

std::optional<std::string> variable(const char* name) {
  const char* value = std::getenv(name);
  return value ? std::optional<std::string>(value) : std::nullopt;
}

std::string required(const char* name) {
  std::optional<std::string> value = variable(name);
  TORCH_CHECK(value && !value->empty(), "tlora::dist: WORLD_SIZE is set but ", name,
              " is not; launch with torchrun or set RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR "
              "and MASTER_PORT");
  return *value;
}

// The whole value as a decimal integer in [low, high], or an error naming the variable.
int64_t integer(const char* name, const std::string& value, int64_t low, int64_t high) {
  int64_t parsed = 0;
  const char* end = value.data() + value.size();
  const auto [ptr, ec] = std::from_chars(value.data(), end, parsed);
  TORCH_CHECK(ec == std::errc() && ptr == end && parsed >= low && parsed <= high,
              "tlora::dist: ", name, "=\"", value, "\" is not an integer in [", low, ", ", high, "]");
  return parsed;
}

}  // namespace

std::optional<LaunchEnvironment> read_launch_environment() {
  const std::optional<std::string> world = variable("WORLD_SIZE");
  if (!world) return std::nullopt;
  LaunchEnvironment env;
  constexpr int64_t kMaxInt = std::numeric_limits<int>::max();
  env.world_size = static_cast<int>(integer("WORLD_SIZE", *world, 1, kMaxInt));
  env.rank = static_cast<int>(integer("RANK", required("RANK"), 0, kMaxInt));
  TORCH_CHECK(env.rank < env.world_size, "tlora::dist: RANK=", env.rank,
              " is not below WORLD_SIZE=", env.world_size);
  // LOCAL_RANK picks the GPU; launchers that start one process per machine may leave it out.
  const std::optional<std::string> local = variable("LOCAL_RANK");
  if (local) {
    env.local_rank = static_cast<int>(integer("LOCAL_RANK", *local, 0, kMaxInt));
    TORCH_CHECK(env.local_rank < env.world_size, "tlora::dist: LOCAL_RANK=", env.local_rank,
                " is not below WORLD_SIZE=", env.world_size);
  }
  if (env.world_size == 1) return env;
  env.master_addr = required("MASTER_ADDR");
  env.master_port = static_cast<uint16_t>(
      integer("MASTER_PORT", required("MASTER_PORT"), 1, std::numeric_limits<uint16_t>::max()));
  env.agent_store = variable("TORCHELASTIC_USE_AGENT_STORE").value_or("") == "True";
  if (const auto restarts = variable("TORCHELASTIC_RESTART_COUNT")) {
    env.restart_count = static_cast<int>(integer("TORCHELASTIC_RESTART_COUNT", *restarts, 0, kMaxInt));
  }
  return env;
}

}  // namespace tlora::dist::detail
