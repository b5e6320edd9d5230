// Trains one TLoRALinear step through the installed package and checks that only M and α moved.
#include <tlora/linear.h>

#include <ATen/ops/equal.h>
#include <ATen/ops/randn.h>

#include <cstdio>

int main() {
  tlora::TLoRALinear layer(tlora::TLoRALinearOptions(16, 8, 4));
  const at::Tensor weight = layer->weight.clone();
  const at::Tensor loss = layer(at::randn({3, 16})).pow(2).sum();
  loss.backward();
  const bool ok = layer->core.grad().defined() && layer->scale.grad().defined() &&
                  !layer->weight.grad().defined() && at::equal(weight, layer->weight);
  std::printf("consumer: %s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
