// Entry points of the CUDA kernels. Built from *.cu when CUDA is enabled, otherwise from
// no_cuda.cpp, whose versions refuse with a message saying how to get a CUDA build.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace tlora::kernels {

/// Whether this build of the library contains the CUDA kernels.
bool built_with_cuda();

/// Fills the float CUDA tensor `mask` with the inverted-dropout mask of philox_dropout_mask.
void philox_dropout_mask_cuda(at::Tensor& mask, double p, uint64_t seed, uint64_t stream);

}  // namespace tlora::kernels
