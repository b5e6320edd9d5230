// Saves versions FIRST, FIRST+1, ... of the fault-injection model to DIR, one after the other,
// printing each version once its save has returned, until it is killed:
// checkpoint_writer DIR FIRST
#include "fault_model.h"

#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s DIR FIRST\n", argv[0]);
    return 2;
  }
  const auto options = tlora::testing::fault_save_options();
  for (long long version = std::atoll(argv[2]);; ++version) {
    const auto model = tlora::testing::fault_model(version);
    tlora::save_adapter(*model, argv[1], options);
    std::printf("%lld\n", version);
    std::fflush(stdout);
  }
}
