// Configure-time probe: ProcessGroupNCCL.hpp compiles with the nccl.h found and its
// constructor links against libtorch_cuda.
#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

int main(int argc, char**) {
  if (argc > 1) {  // linked, never run
    auto store = c10::make_intrusive<c10d::HashStore>();
    c10::make_intrusive<c10d::ProcessGroupNCCL>(store, 0, 1, c10d::ProcessGroupNCCL::Options::create());
  }
  return 0;
}
