// Joining a group: the TCPStore at MASTER_ADDR:MASTER_PORT and the checks that every rank
// describes the same group.
#pragma once

#include "environment.h"

#include <torch/csrc/distributed/c10d/Store.hpp>

#include <chrono>

namespace tlora::dist::detail {

/// Connects to the store (rank 0 hosts it unless torchrun's agent does) and checks, within
/// `timeout`, that every rank joined with the same WORLD_SIZE and that no RANK is taken twice;
/// each rank refuses a mismatch with a c10::Error naming both values, and rank 0 passes its
/// verdict on so that no rank waits for a group that cannot form. Returns this attempt's view of
/// the store (keys prefixed by the torchrun restart count).
c10::intrusive_ptr<c10d::Store> rendezvous(const LaunchEnvironment& env, std::chrono::milliseconds timeout);

/// Returns when all `world_size` ranks have called it with the same `generation`, or throws
/// after `timeout`; through the store, so it needs no collective backend.
void store_barrier(c10d::Store& store, int rank, int world_size, int64_t generation,
                   std::chrono::milliseconds timeout);

}  // namespace tlora::dist::detail
