// The launch environment of a data-parallel process, as torchrun describes it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace tlora::dist::detail {

/// What RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT say.
struct LaunchEnvironment {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr;
  uint16_t master_port = 0;
  /// torchrun's agent hosts the store itself (TORCHELASTIC_USE_AGENT_STORE=True): every rank
  /// is a client, rank 0 included.
  bool agent_store = false;
  /// TORCHELASTIC_RESTART_COUNT, which keeps the keys of a restarted attempt apart.
  int restart_count = 0;
};

/// Reads the variables; nullopt when WORLD_SIZE is unset. Refuses missing or garbled values, RANK ≥ WORLD_SIZE and
/// LOCAL_RANK ≥ WORLD_SIZE with a c10::Error naming the variable and its value.
std::optional<LaunchEnvironment> read_launch_environment();

}  // namespace tlora::dist::detail
