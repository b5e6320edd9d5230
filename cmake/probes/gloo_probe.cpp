// Configure-time probe: ProcessGroupGloo.hpp compiles with the gloo headers found and its
// constructor links against libtorch_cpu.
#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>

int main(int argc, char**) {
  if (argc > 1) {  // linked, never run
    auto store = c10::make_intrusive<c10d::HashStore>();
    auto options = c10d::ProcessGroupGloo::Options::create_default(std::chrono::milliseconds(1000));
    c10::make_intrusive<c10d::ProcessGroupGloo>(store, 0, 1, options);
  }
  return 0;
}
