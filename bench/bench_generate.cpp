// tlora-bench-generate: prompt processing and generation speed of LlamaForCausalLM (tokens/s,
// batch 1, greedy, KV cache), with the frozen weights in float32 or bfloat16 (bf16-mixed:
// autocast products, float32 residual stream), and what bfloat16 costs in accuracy (largest
// logit difference and top-1 agreement against float32 on the prompt). bench/compare_generate.py
// runs it beside transformers and llama.cpp; README.md describes the output.

#include "machine.h"
#include "run_main.h"
#include "tlora/models/generation.h"
#include "tlora/models/llama.h"
#include "tlora/core/precision.h"

#include <ATen/Parallel.h>
#include <ATen/ops/randint.h>
#include <CLI/CLI.hpp>
#include <c10/core/GradMode.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <set>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// The bytes of the model's parameters and buffers, shared tensors (a tied head) counted once.
double weights_mib(const torch::nn::Module& model) {
  std::set<const void*> seen;
  double bytes = 0;
  const auto add = [&](const at::Tensor& t) {
    if (seen.insert(t.data_ptr()).second) bytes += static_cast<double>(t.nbytes());
  };
  for (const auto& p : model.parameters()) add(p);
  for (const auto& b : model.buffers()) add(b);
  return bytes / (1024.0 * 1024.0);
}

double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

struct Result {
  double prompt_tokens_per_s = 0, generated_tokens_per_s = 0;
  at::Tensor prompt_logits;
};

// Median over `repetitions` of the prompt's forward pass and of `new_tokens` greedy steps.
Result measure(tlora::models::LlamaForCausalLMImpl& model, const std::vector<int64_t>& prompt, int64_t new_tokens,
               int repetitions, bool bf16) {
  std::vector<double> prefill, decode;
  Result r;
  for (int i = 0; i < repetitions + 1; ++i) {  // the first run warms up
    std::optional<tlora::AutocastGuard> autocast;
    if (bf16) autocast.emplace(at::kCPU);
    c10::NoGradGuard no_grad;
    auto start = Clock::now();
    r.prompt_logits = model.forward(at::tensor(prompt, at::kLong).unsqueeze(0)).to(at::kFloat);
    const double p = seconds_since(start);
    tlora::models::GenerationOptions options;
    options.max_new_tokens = new_tokens;
    start = Clock::now();
    tlora::models::generate(model, {prompt}, options);
    const double total = seconds_since(start);
    if (i == 0) continue;
    prefill.push_back(p);
    decode.push_back(std::max(total - p, 1e-9));  // generate() processes the prompt once too
  }
  std::ranges::sort(prefill);
  std::ranges::sort(decode);
  r.prompt_tokens_per_s = static_cast<double>(prompt.size()) / prefill[prefill.size() / 2];
  r.generated_tokens_per_s = static_cast<double>(new_tokens) / decode[decode.size() / 2];
  return r;
}

int run(int argc, char** argv) {
  CLI::App app{"Prompt and generation speed of a LLaMA-family model, float32 and bfloat16 weights"};
  std::string model_path, json_path;
  int64_t prompt_tokens = 128, new_tokens = 64;
  int repetitions = 3, threads = 2;
  std::string precisions = "fp32,bf16-mixed";
  app.add_option("--model", model_path, "a GGUF file or a Hugging Face folder")->required();
  app.add_option("--prompt-tokens", prompt_tokens, "prompt length")->check(CLI::PositiveNumber);
  app.add_option("--new-tokens", new_tokens, "tokens generated")->check(CLI::PositiveNumber);
  app.add_option("--repetitions", repetitions, "timed runs (the median is reported)")->check(CLI::PositiveNumber);
  app.add_option("--threads", threads, "torch threads")->check(CLI::PositiveNumber);
  app.add_option("--precisions", precisions, "comma-separated: fp32, bf16-mixed");
  app.add_option("--json", json_path, "also write the figures to this file");
  CLI11_PARSE(app, argc, argv);
  at::set_num_threads(threads);

  auto model = tlora::models::load_llama(model_path);
  model->eval();
  // The base of a served or fine-tuned model is frozen, which is what cast_frozen_matrices_ casts.
  for (auto& p : model->parameters()) p.requires_grad_(false);
  at::manual_seed(0);
  const at::Tensor ids = at::randint(model->config().vocab_size, {prompt_tokens}, at::kLong);
  const std::vector<int64_t> prompt(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + prompt_tokens);

  nlohmann::json out = {{"cpu", tlora::bench::cpu_model()}, {"bf16_instructions", tlora::bench::cpu_bf16_text()},
                        {"threads", threads}, {"prompt_tokens", prompt_tokens}, {"new_tokens", new_tokens}};
  fmt::print("{} ({} threads; bf16 instructions: {}), prompt {} tokens, {} generated, batch 1, median of {}\n",
             tlora::bench::cpu_model(), threads, tlora::bench::cpu_bf16_text(), prompt_tokens, new_tokens, repetitions);
  at::Tensor fp32_logits;
  for (const std::string& name : {std::string("fp32"), std::string("bf16-mixed")}) {
    if (precisions.find(name) == std::string::npos) continue;
    const bool bf16 = name == "bf16-mixed";
    if (bf16) tlora::cast_frozen_matrices_(*model, at::kBFloat16);
    const Result r = measure(*model, prompt, new_tokens, repetitions, bf16);
    nlohmann::json entry = {{"prompt_tokens_per_s", r.prompt_tokens_per_s},
                            {"generated_tokens_per_s", r.generated_tokens_per_s},
                            {"weights_mib", weights_mib(*model)}, {"peak_rss_mib", peak_rss_mib()}};
    std::string accuracy;
    if (!bf16) {
      fp32_logits = r.prompt_logits;
    } else if (fp32_logits.defined()) {
      const double max_diff = (r.prompt_logits - fp32_logits).abs().max().item<double>();
      const double agreement = (r.prompt_logits.argmax(-1) == fp32_logits.argmax(-1)).to(at::kFloat).mean().item<double>();
      entry["max_logit_diff_vs_fp32"] = max_diff;
      entry["top1_agreement_vs_fp32"] = agreement;
      accuracy = fmt::format(", max |logit - fp32| {:.3f}, top-1 agreement {:.1f}%", max_diff, 100 * agreement);
    }
    out[name] = entry;
    fmt::print("{:<11} prompt {:8.1f} tokens/s, generation {:6.1f} tokens/s, weights {:.0f} MiB{}\n", name,
               r.prompt_tokens_per_s, r.generated_tokens_per_s, weights_mib(*model), accuracy);
  }
  if (!json_path.empty()) std::ofstream(json_path) << out.dump(2) << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return tlora::bench::run_main("tlora-bench-generate", run, argc, argv); }
