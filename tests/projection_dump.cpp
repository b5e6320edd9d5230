// Writes the A and B buffers of a TLoRALinear as raw fp32, so a test can compare the
// projections drawn in another process: projection_dump SEED NAME IN OUT RANK FILE
#include "tlora/adapters/tlora_linear.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>

int main(int argc, char** argv) {
  if (argc != 7) {
    std::fprintf(stderr, "usage: %s SEED NAME IN OUT RANK FILE\n", argv[0]);
    return 2;
  }
  tlora::TLoRALinear layer(tlora::TLoRALinearOptions(std::atoll(argv[3]), std::atoll(argv[4]),
                                                     std::atoll(argv[5]))
                               .seed(std::strtoull(argv[1], nullptr, 10))
                               .name(argv[2]));
  std::ofstream out(argv[6], std::ios::binary);
  for (const at::Tensor& t : {layer->down.contiguous(), layer->up.contiguous()}) {
    out.write(static_cast<const char*>(t.data_ptr()), t.numel() * sizeof(float));
  }
  return out.good() ? 0 : 1;
}
