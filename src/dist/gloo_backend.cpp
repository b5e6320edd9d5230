#include "backends.h"

#include <c10/util/Exception.h>

#if TLORA_HAVE_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif

namespace tlora::dist::detail {

bool have_gloo() { return TLORA_HAVE_GLOO; }

c10::intrusive_ptr<c10d::Backend> make_gloo_backend(const c10::intrusive_ptr<c10d::Store>& store,
                                                    int rank, int size, std::chrono::milliseconds timeout) {
#if TLORA_HAVE_GLOO
  // create_default picks the network interface: GLOO_SOCKET_IFNAME if set, else the one the
  // host name resolves to.
  auto options = c10d::ProcessGroupGloo::Options::create_default(timeout);
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, options);
#else
  (void)store, (void)rank, (void)size, (void)timeout;
  TORCH_CHECK(false, "tlora::dist: CPU tensors need the Gloo backend, but tlora was configured "
              "without it (see the 'tlora::dist' lines of the CMake output: a LibTorch without "
              "USE_C10D_GLOO, or no gloo headers: apt-get install libgloo-dev)");
#endif
}

}  // namespace tlora::dist::detail
