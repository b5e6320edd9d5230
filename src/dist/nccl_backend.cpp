#include "backends.h"

#include <c10/util/Exception.h>

#if TLORA_HAVE_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace tlora::dist::detail {

bool have_nccl() { return TLORA_HAVE_NCCL; }

c10::intrusive_ptr<c10d::Backend> make_nccl_backend(const c10::intrusive_ptr<c10d::Store>& store,
                                                    int rank, int size, std::chrono::milliseconds timeout) {
#if TLORA_HAVE_NCCL
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, options);
#else
  (void)store, (void)rank, (void)size, (void)timeout;
  TORCH_CHECK(false, "tlora::dist: CUDA tensors need the NCCL backend, but tlora was configured "
              "without it (see the 'tlora::dist' lines of the CMake output: a LibTorch without "
              "CUDA/USE_C10D_NCCL, or nccl.h not found)");
#endif
}

}  // namespace tlora::dist::detail
