// tlora-glue: fine-tune a BERT-family encoder on a GLUE task with TLoRA or a baseline, or
// evaluate a saved adapter. See README.md beside this file.
#include "options.h"
#include "trainer.h"

#include <CLI/CLI.hpp>
#include <c10/util/Exception.h>

#include <cstdio>
#include <exception>

int main(int argc, char** argv) {
  CLI::App app{"Fine-tune a BERT-family encoder on a GLUE task with TLoRA or a baseline "
               "(LoRA, VeRA, LoRA-XS, full fine-tuning, head only), or evaluate a saved adapter.",
               "tlora-glue"};
  glue_app::RunConfig config;
  glue_app::add_options(app, config);
  try {
    app.parse(argc, argv);
    glue_app::finalize(app, config);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    return config.eval_only ? glue_app::run_evaluation(config) : glue_app::run_training(config);
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "tlora-glue: %s\n", e.what_without_backtrace());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tlora-glue: %s\n", e.what());
  }
  return 1;
}
