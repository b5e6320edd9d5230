// The c10d backends behind tlora::dist, each in its own translation unit so that NCCL's
// headers are compiled only where LibTorch has them (and a CPU build never sees CUDA code).
#pragma once

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <chrono>

namespace tlora::dist::detail {

/// Whether tlora was configured with the Gloo backend (TLORA_HAVE_GLOO).
bool have_gloo();
/// A Gloo backend (CPU tensors) over `store`; refuses, naming what is missing, when tlora was
/// configured without Gloo.
c10::intrusive_ptr<c10d::Backend> make_gloo_backend(const c10::intrusive_ptr<c10d::Store>& store,
                                                    int rank, int size, std::chrono::milliseconds timeout);

/// Whether tlora was configured with the NCCL backend (TLORA_HAVE_NCCL).
bool have_nccl();
/// An NCCL backend (CUDA tensors) over `store`, for the current CUDA device; refuses, naming
/// what is missing, when tlora was configured without NCCL.
c10::intrusive_ptr<c10d::Backend> make_nccl_backend(const c10::intrusive_ptr<c10d::Store>& store,
                                                    int rank, int size, std::chrono::milliseconds timeout);

}  // namespace tlora::dist::detail
