// tlora-bench-text: throughput of the text pipeline on real sentences: the WordPiece tokenizer
// (sentences/s, one thread) and the BERT encoder's forward (tokens/s). bench/compare_text.py runs
// it next to bench/hf_text_baseline.py, which measures Hugging Face the same way; README.md
// describes both.

#include "machine.h"
#include "run_main.h"
#include "tlora/models/bert.h"
#include "tlora/models/loading.h"
#include "tlora/models/packaged.h"
#include "tlora/text/tokenizer.h"

#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/utils.h>
#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using nlohmann::json;
namespace models = tlora::models;
namespace text = tlora::text;

// The sentence column of the first `limit` rows of a GLUE TSV with a header. Quoting is off,
// as GLUE's files hold unbalanced quotes: a field is whatever lies between tabs.
std::vector<std::string> read_sentences(const std::filesystem::path& path, size_t limit) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  const auto fields = [](std::string line) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::vector<std::string> out;
    size_t begin = 0;
    for (size_t tab; (tab = line.find('\t', begin)) != std::string::npos; begin = tab + 1) {
      out.push_back(line.substr(begin, tab - begin));
    }
    out.push_back(line.substr(begin));
    return out;
  };
  std::string line;
  std::getline(in, line);
  const std::vector<std::string> header = fields(line);
  const auto column = std::find(header.begin(), header.end(), "sentence") - header.begin();
  if (column == static_cast<std::ptrdiff_t>(header.size())) {
    throw std::runtime_error(path.string() + ": no 'sentence' column in the header");
  }
  std::vector<std::string> sentences;
  while (sentences.size() < limit && std::getline(in, line)) {
    if (line.empty()) continue;
    std::vector<std::string> row = fields(line);
    if (row.size() != header.size()) {
      throw std::runtime_error(fmt::format("{}: row {} has {} fields, the header {}", path.string(),
                                           sentences.size() + 2, row.size(), header.size()));
    }
    sentences.push_back(std::move(row[column]));
  }
  if (sentences.empty()) throw std::runtime_error(path.string() + ": no sentences");
  return sentences;
}

// Seconds of each of `repetitions` timed calls of `pass`, after `warmup`, which takes the
// one-time costs (allocations, first touch of the weights) out of the figures.
std::vector<double> time_passes(int repetitions, const std::function<void()>& warmup,
                                const std::function<void()>& pass) {
  warmup();
  std::vector<double> seconds;
  for (int r = 0; r < repetitions; ++r) {
    const auto start = std::chrono::steady_clock::now();
    pass();
    seconds.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return seconds;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// The JSON of one timed contender; `items` are what a pass processes (sentences or tokens). On a
// shared machine the best pass is the steadier figure, as other load only ever adds time.
json timing(const std::vector<double>& seconds, const std::string& unit, double items) {
  const double med = median(seconds);
  const double best = *std::min_element(seconds.begin(), seconds.end());
  return {{"seconds", seconds},
          {"median_s", med},
          {"min_s", best},
          {unit + "_per_s", items / med},
          {"best_" + unit + "_per_s", items / best}};
}

// Mean of the last hidden state over each sentence's real tokens: [batch, hidden].
at::Tensor mean_pooled(const at::Tensor& hidden, const at::Tensor& attention_mask) {
  const at::Tensor mask = attention_mask.unsqueeze(-1).to(hidden.scalar_type());
  return (hidden * mask).sum(1) / mask.sum(1);
}

int run(int argc, char** argv) {
  CLI::App app{"Times the WordPiece tokenizer and the BERT encoder on a GLUE TSV's sentences."};
  std::string model_dir, data_path, json_path, dump_path;
  size_t max_sentences = 20000, encoder_sentences = 256, batch_size = 32, max_length = 128;
  int repetitions = 3, threads = 0;
  app.add_option("--model-dir", model_dir,
                 "model folder (config.json, model.safetensors, tokenizer files; default: "
                 "tlora::models::default_model_dir())");
  app.add_option("--data", data_path, "GLUE TSV with a 'sentence' column (SST-2's train.tsv)")
      ->required();
  app.add_option("--max-sentences", max_sentences, "sentences the tokenizer encodes per pass")
      ->check(CLI::PositiveNumber);
  app.add_option("--encoder-sentences", encoder_sentences,
                 "sentences the encoder runs per pass (the first ones of the file)")
      ->check(CLI::PositiveNumber);
  app.add_option("--batch", batch_size, "sentences per encoder batch, padded to the longest")
      ->check(CLI::PositiveNumber);
  app.add_option("--max-length", max_length, "truncation, special tokens included")
      ->check(CLI::Range(3, 512));
  app.add_option("--repetitions", repetitions, "timed passes per contender (after one untimed)")
      ->check(CLI::PositiveNumber);
  app.add_option("--threads", threads,
                 "torch intra-op threads of the encoder (default: torch's choice)")
      ->check(CLI::PositiveNumber);
  app.add_option("--json", json_path, "write the results to this file");
  app.add_option("--dump", dump_path,
                 "write the token ids and the first batch's mean-pooled embeddings (JSON) for "
                 "compare_text.py's parity check");
  CLI11_PARSE(app, argc, argv);

  // Opened now, so that a bad path fails before the long run.
  std::ofstream json_file, dump_file;
  if (!json_path.empty()) {
    json_file.open(json_path);
    if (!json_file) throw std::runtime_error("cannot write " + json_path);
  }
  if (!dump_path.empty()) {
    dump_file.open(dump_path);
    if (!dump_file) throw std::runtime_error("cannot write " + dump_path);
  }
  const std::filesystem::path dir = model_dir.empty() ? models::default_model_dir()
                                                      : std::filesystem::path(model_dir);
  const std::vector<std::string> all =
      read_sentences(data_path, std::max(max_sentences, encoder_sentences));
  const std::span<const std::string> sentences(all.data(), std::min(max_sentences, all.size()));
  const std::span<const std::string> encoder_input(all.data(),
                                                   std::min(encoder_sentences, all.size()));

  std::unique_ptr<text::Tokenizer> tokenizer = text::load_tokenizer(dir);
  // MiniLM's tokenizer.json pads every encoding to 128; throughput is measured without padding.
  tokenizer->set_padding(std::nullopt);
  tokenizer->set_truncation(text::TruncationOptions{max_length});

  // One thread for the tokenizer, as Hugging Face's is measured with its parallelism off.
  const int encoder_threads = threads > 0 ? threads : at::get_num_threads();
  at::set_num_threads(1);
  std::vector<text::Encoding> single(sentences.size()), batched;
  const auto encode_all = [&] {
    for (size_t i = 0; i < sentences.size(); ++i) single[i] = tokenizer->encode(sentences[i]);
  };
  const auto encode_batch = [&] { batched = tokenizer->encode_batch(sentences); };
  const std::vector<double> single_s = time_passes(repetitions, encode_all, encode_all);
  const std::vector<double> batch_s = time_passes(repetitions, encode_batch, encode_batch);
  size_t tokens = 0, batch_mismatches = 0;
  for (size_t i = 0; i < single.size(); ++i) {
    tokens += single[i].size();
    batch_mismatches += single[i].ids != batched[i].ids;
  }
  const auto n = static_cast<double>(sentences.size());
  const json tokenizer_json = {
      {"sentences", sentences.size()},
      {"tokens", tokens},
      {"threads", 1},
      {"batch_mismatches", batch_mismatches},
      {"contenders",
       {{"tlora_encode", timing(single_s, "sentences", n)},
        {"tlora_encode_batch", timing(batch_s, "sentences", n)}}}};

  at::set_num_threads(encoder_threads);
  tokenizer->set_padding(text::PaddingOptions{});
  std::vector<text::Batch> batches;
  int64_t real_tokens = 0, padded_tokens = 0;
  for (size_t begin = 0; begin < encoder_input.size(); begin += batch_size) {
    const size_t count = std::min(batch_size, encoder_input.size() - begin);
    batches.push_back(text::to_batch(tokenizer->encode_batch(encoder_input.subspan(begin, count))));
    real_tokens += batches.back().attention_mask.sum().item<int64_t>();
    padded_tokens += batches.back().input_ids.numel();
  }
  models::BertModel model = models::from_pretrained<models::BertModel>(dir);
  model->eval();
  torch::NoGradGuard no_grad;
  const auto forward = [&](const text::Batch& b) {
    return model->forward(b.input_ids, b.attention_mask, b.token_type_ids);
  };
  // A pass of the encoder takes seconds on a small CPU: one batch warms it up.
  const std::vector<double> encoder_s = time_passes(
      repetitions, [&] { forward(batches.front()); },
      [&] {
        for (const text::Batch& b : batches) forward(b);
      });
  json encoder_json = timing(encoder_s, "tokens", static_cast<double>(real_tokens));
  encoder_json["padded_tokens_per_s"] = static_cast<double>(padded_tokens) / median(encoder_s);
  encoder_json.update({{"sentences", encoder_input.size()},
                       {"batches", batches.size()},
                       {"batch", batch_size},
                       {"tokens", real_tokens},
                       {"padded_tokens", padded_tokens},
                       {"threads", at::get_num_threads()},
                       {"dtype", "fp32"}});

  fmt::print("{:<28} {:>10} {:>10} {:>14} {:>14}\n", "contender", "median s", "min s", "median /s",
             "best /s");
  for (const auto& [name, t] : tokenizer_json["contenders"].items()) {
    fmt::print("{:<28} {:>10.4f} {:>10.4f} {:>10.0f} sen {:>10.0f} sen\n", name,
               t["median_s"].get<double>(), t["min_s"].get<double>(),
               t["sentences_per_s"].get<double>(), t["best_sentences_per_s"].get<double>());
  }
  fmt::print("{:<28} {:>10.4f} {:>10.4f} {:>10.0f} tok {:>10.0f} tok\n", "tlora_bert_forward",
             encoder_json["median_s"].get<double>(), encoder_json["min_s"].get<double>(),
             encoder_json["tokens_per_s"].get<double>(),
             encoder_json["best_tokens_per_s"].get<double>());
  fmt::print("tokenizer: {} sentences, {} tokens, 1 thread, truncation {}; encode_batch "
             "differs from encode for {}\nencoder: {} sentences in {} batches of {} ({} tokens, "
             "{} with padding), {} threads, fp32, no grad\n",
             sentences.size(), tokens, max_length, batch_mismatches, encoder_input.size(),
             batches.size(), batch_size, real_tokens, padded_tokens, at::get_num_threads());

  if (!dump_path.empty()) {
    std::vector<std::vector<int64_t>> ids;
    for (const text::Encoding& e : single) ids.push_back(e.ids);
    const text::Batch& first = batches.front();
    const at::Tensor pooled =
        mean_pooled(forward(first).last_hidden_state, first.attention_mask).contiguous();
    std::vector<std::vector<float>> rows;
    for (int64_t r = 0; r < pooled.size(0); ++r) {
      const float* p = pooled[r].data_ptr<float>();
      rows.emplace_back(p, p + pooled.size(1));
    }
    dump_file << json{{"ids", ids}, {"first_batch_mean_pooled", rows}}.dump() << "\n";
    if (!dump_file) throw std::runtime_error("cannot write " + dump_path);
  }
  if (!json_path.empty()) {
    const json doc = {
        {"implementation", "tlora"},
        {"machine", {{"cpu", tlora::bench::cpu_model()}, {"torch", TORCH_VERSION}}},
        {"settings",
         {{"model_dir", dir.string()},
          {"data", data_path},
          {"max_sentences", max_sentences},
          {"encoder_sentences", encoder_sentences},
          {"batch", batch_size},
          {"max_length", max_length},
          {"repetitions", repetitions},
          {"threads", encoder_threads},
          {"clock", "std::chrono::steady_clock, wall time"}}},
        {"tokenizer", tokenizer_json},
        {"encoder", encoder_json}};
    json_file << doc.dump(2) << "\n";
    if (!json_file) throw std::runtime_error("cannot write " + json_path);
    fmt::print("wrote {}\n", json_path);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return tlora::bench::run_main("tlora-bench-text", run, argc, argv); }
