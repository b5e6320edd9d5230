// tlora-generate: continue a prompt, or answer a chat message, with a LLaMA-family model from a
// GGUF file or a Hugging Face folder, optionally with a saved adapter; the answer streams to the
// terminal as it is generated.
#include "tlora/io/checkpoint.h"
#include "tlora/models/generation.h"
#include "tlora/models/llama.h"
#include "tlora/text/bpe.h"
#include "tlora/text/chat_template.h"

#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>
#include <c10/util/Exception.h>
#include <fmt/format.h>

#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace {

struct Options {
  std::string model, adapter, prompt, chat, system;
  std::vector<std::string> stop;
  tlora::models::GenerationOptions generation;
  int threads = 0;
  bool no_stream = false;
};

// Prints the text of the tokens generated so far beyond what was printed, holding back an
// incomplete UTF-8 character at the end until its last byte arrives.
class Streamer {
 public:
  explicit Streamer(const tlora::text::ByteLevelBPETokenizer& tokenizer) : tokenizer_(tokenizer) {}
  void add(int64_t token) {
    tokens_.push_back(token);
    const std::string text = tokenizer_.decode(tokens_, /*skip_special_tokens=*/true);
    size_t end = text.size();
    for (size_t back = 1; back <= std::min<size_t>(3, text.size()); ++back) {
      const auto c = static_cast<unsigned char>(text[text.size() - back]);
      if ((c & 0xC0) == 0x80) continue;  // a continuation byte: look further back
      const size_t length = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
      if (length > back) end = text.size() - back;
      break;
    }
    if (end > printed_) {
      std::fwrite(text.data() + printed_, 1, end - printed_, stdout);
      std::fflush(stdout);
      printed_ = end;
    }
  }

 private:
  const tlora::text::ByteLevelBPETokenizer& tokenizer_;
  std::vector<int64_t> tokens_;
  size_t printed_ = 0;
};

int run(int argc, char** argv) {
  CLI::App app{"Generate text with a LLaMA-family model (GGUF file or Hugging Face folder)"};
  Options o;
  auto& g = o.generation;
  app.add_option("--model", o.model, "a GGUF file or a Hugging Face folder (config.json, model.safetensors, tokenizer.json)")->required();
  app.add_option("--adapter", o.adapter, "a folder written by save_adapter, applied to the model");
  auto* prompt = app.add_option("--prompt", o.prompt, "text to continue as it is");
  auto* chat = app.add_option("--chat", o.chat, "a user message, wrapped in the model's chat template");
  prompt->excludes(chat);
  app.add_option("--system", o.system, "the system message of --chat (default: the template's own, if any)");
  app.add_option("--max-new-tokens", g.max_new_tokens, "most tokens to generate")->check(CLI::NonNegativeNumber);
  app.add_option("--temperature", g.temperature, "0: greedy; above 0: sampling")->check(CLI::NonNegativeNumber);
  app.add_option("--top-k", g.top_k, "sample among the k likeliest tokens (0: all)")->check(CLI::NonNegativeNumber);
  app.add_option("--top-p", g.top_p, "sample among the likeliest tokens summing to p")->check(CLI::Range(1e-9, 1.0));
  app.add_option("--repetition-penalty", g.repetition_penalty, "divide the logits of seen tokens by this")
      ->check(CLI::PositiveNumber);
  app.add_option("--stop", o.stop, "stop when the answer contains this text (repeatable)");
  app.add_option("--seed", g.seed, "seed of the sampling");
  app.add_option("--threads", o.threads, "torch threads (0: LibTorch's default)")->check(CLI::NonNegativeNumber);
  app.add_flag("--no-stream", o.no_stream, "print the answer when it is complete, not token by token");
  CLI11_PARSE(app, argc, argv);
  if (o.prompt.empty() && o.chat.empty()) throw CLI::ValidationError("give --prompt or --chat");
  if (o.threads > 0) at::set_num_threads(o.threads);

  tlora::models::LlamaText text = tlora::models::load_llama_text(o.model);
  auto model = tlora::models::load_llama(o.model);
  if (!o.adapter.empty()) tlora::load_adapter(*model, o.adapter);
  model->eval();

  std::string input = o.prompt;
  if (!o.chat.empty()) {
    TORCH_CHECK(text.chat, "--chat: the model ", o.model, " has no chat template; use --prompt");
    std::vector<tlora::text::ChatMessage> messages;
    if (!o.system.empty()) messages.push_back({"system", o.system});
    messages.push_back({"user", o.chat});
    input = text.chat->apply(messages, /*add_generation_prompt=*/true);
  }
  const auto& config = model->config();
  if (config.eos_token_id) g.eos_token_ids.push_back(*config.eos_token_id);
  if (const auto end = text.tokenizer->token_to_id("<|im_end|>"); end && !o.chat.empty()) g.eos_token_ids.push_back(*end);
  g.pad_token_id = config.pad_token_id.value_or(config.eos_token_id.value_or(0));
  g.stop_strings = o.stop;
  g.decode = [&](std::span<const int64_t> ids) { return text.tokenizer->decode(ids, true); };

  const bool stream = !o.no_stream && ::isatty(STDOUT_FILENO);
  Streamer streamer(*text.tokenizer);
  const auto out = tlora::models::generate(*model, {text.tokenizer->encode(input, false).ids}, g,
                                           [&](size_t, int64_t token) { if (stream) streamer.add(token); });
  if (!stream) std::fputs(text.tokenizer->decode(out[0].tokens, true).c_str(), stdout);
  std::fputs("\n", stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const c10::Error& e) {
    fmt::print(stderr, "tlora-generate: {}\n", e.what_without_backtrace());
  } catch (const std::exception& e) {
    fmt::print(stderr, "tlora-generate: {}\n", e.what());
  }
  return 1;
}
