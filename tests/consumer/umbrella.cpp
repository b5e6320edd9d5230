// Every public header in one translation unit, linked against every component: the headers stand
// alone together, and each component exports what its headers declare.
#include <tlora/tlora.h>

#include <cstdio>

int main() {
  // One call into each component, resolved by the dynamic linker at start-up.
  const bool core = tlora::adapter_kind_from_string("tlora") == tlora::AdapterKind::TLoRA;
  const bool models = tlora::models::python_package_dir("no_such_package_tlora").has_value() == false;
  const bool glue = tlora::glue::task_from_name("mrpc") == tlora::glue::Task::MRPC;
  const bool dist = tlora::dist::has_backend("no-such-backend") == false;
  std::printf("umbrella: core %d, models %d, glue %d, dist %d\n", core, models, glue, dist);
  return core && models && glue && dist ? 0 : 1;
}
