// tlora-glue end to end: kill-and-resume equals an uninterrupted run, non-finite losses stop the
// run with its last good checkpoint, bad inputs are refused clearly, and a short run on real
// MRPC data learns more than the majority class.
#include "tlora/glue/tasks.h"
#include "tlora/models/bert.h"
#include "tlora/models/config.h"
#include "tlora/models/loading.h"
#include "tlora/models/packaged.h"
#include "tlora/io/safetensors.h"
#include "tlora/train/train_state.h"

#include "test_util.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <sys/wait.h>
#include <vector>

namespace {

using tlora::testing::contains;
using tlora::testing::read_file;
using json = nlohmann::json;

const std::string kBinary = TLORA_GLUE_BINARY;
// Each test (ctest runs them as parallel processes) works in a folder of its own.
std::string scratch() {
  return std::string(TLORA_E2E_DIR) + "/" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
}
const std::string kGlue = TLORA_FIXTURE_DIR "/../../../shared/data/glue";

struct Result {
  int exit_code = -1;  // 128 + signal when killed by one
  std::string output;  // stdout and stderr
};

Result run(const std::string& args, const std::string& env = "") {
  const std::string log = scratch() + "/last.log";
  const std::string command = env + " '" + kBinary + "' " + args + " > '" + log + "' 2>&1";
  const int status = std::system(command.c_str());
  Result r;
  r.exit_code = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
  r.output = read_file(log);
  return r;
}

void write(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

// The first `lines` lines of a file.
std::string head(const std::string& path, int lines) {
  std::ifstream in(path, std::ios::binary);
  std::string out, line;
  for (int i = 0; i < lines && std::getline(in, line); ++i) out += line + "\n";
  return out;
}

// A randomly initialised 2-layer BERT (hidden 32) with MiniLM's tokenizer: training steps take
// milliseconds, so the resume tests can run whole epochs.
void make_tiny_model(const std::string& dir) {
  ASSERT_EQ(std::system(("mkdir -p '" + dir + "'").c_str()), 0);
  const auto minilm = tlora::models::default_model_dir().string();
  json config = json::parse(read_file(minilm + "/config.json"));
  config["hidden_size"] = 32;
  config["num_hidden_layers"] = 2;
  config["num_attention_heads"] = 2;
  config["intermediate_size"] = 64;
  write(dir + "/config.json", config.dump(2));
  at::manual_seed(0);
  tlora::models::BertModel model(tlora::models::EncoderConfig::from_pretrained(dir));
  std::map<std::string, at::Tensor> tensors;
  for (const auto& p : model->named_parameters()) tensors[p.key()] = p.value().detach();
  tlora::safetensors::save(dir + "/model.safetensors", tensors);
  for (const char* file : {"tokenizer.json", "tokenizer_config.json", "vocab.txt"})
    write(dir + "/" + file, read_file(minilm + "/" + file));
}

class GlueE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string dir = scratch();
    ASSERT_EQ(std::system(("rm -rf '" + dir + "' && mkdir -p '" + dir + "/data/RTE'").c_str()), 0);
    make_tiny_model(dir + "/tiny");
    write(dir + "/data/RTE/train.tsv", head(kGlue + "/RTE/train.tsv", 161));
    write(dir + "/data/RTE/dev.tsv", head(kGlue + "/RTE/dev.tsv", 65));
  }
  // fp32 unless `precision` says otherwise: the default (auto) depends on the CPU.
  static std::string tiny_args(const std::string& out, const std::string& precision = "fp32") {
    return "--task rte --model-dir '" + scratch() + "/tiny' --data-dir '" + scratch() +
           "/data' --epochs 2 --batch-size 8 --max-seq-length 32 --save-steps 5 --threads 1 --seed 3 "
           "--precision " + precision + " --output-dir '" + scratch() + "/" + out + "'";
  }
  static std::string file(const std::string& out, const std::string& name) {
    return read_file(scratch() + "/" + out + "/" + name);
  }
};

TEST_F(GlueE2E, KilledOrStoppedRunsResumeToTheSameResult) {
  const Result whole = run(tiny_args("whole"));
  ASSERT_EQ(whole.exit_code, 0) << whole.output;
  ASSERT_TRUE(contains(whole.output, "rte tlora dev (best epoch"));

  // SIGKILL after step 13: nothing is saved then, the run resumes from step 10's checkpoint.
  const Result killed = run(tiny_args("killed"), "TLORA_GLUE_FAULT=kill:13");
  ASSERT_EQ(killed.exit_code, 128 + 9) << killed.output;
  EXPECT_EQ(tlora::train::read_train_state(scratch() + "/killed/checkpoint/trainer_state.json").global_step, 10);
  const Result resumed = run(tiny_args("killed") + " --resume");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_TRUE(contains(resumed.output, "resuming"));

  // SIGTERM after step 7 (mid-epoch): step 8 finishes, the run saves there and says how to go on.
  const Result stopped = run(tiny_args("stopped"), "TLORA_GLUE_FAULT=term:7");
  ASSERT_EQ(stopped.exit_code, 143) << stopped.output;
  EXPECT_TRUE(contains(stopped.output, "--resume"));
  EXPECT_EQ(tlora::train::read_train_state(scratch() + "/stopped/checkpoint/trainer_state.json").global_step, 8);
  ASSERT_EQ(run(tiny_args("stopped") + " --resume").exit_code, 0);

  for (const std::string out : {"killed", "stopped"}) {
    SCOPED_TRACE(out);
    // Bit-identical: the same data order, dropout masks, optimizer state and weights.
    EXPECT_EQ(file(out, "metrics.jsonl"), file("whole", "metrics.jsonl"));
    EXPECT_TRUE(file(out, "best/adapter_model.safetensors") == file("whole", "best/adapter_model.safetensors"));
    EXPECT_EQ(json::parse(file(out, "results.json"))["metrics"],
              json::parse(file("whole", "results.json"))["metrics"]);
  }
  const auto lines = file("whole", "metrics.jsonl");
  EXPECT_EQ(std::count(lines.begin(), lines.end(), '\n'), 2);

  // Resuming with other settings is refused; a finished run is not started again by accident.
  EXPECT_TRUE(contains(run(tiny_args("whole") + " --lr 0.5 --resume").output, "other settings"));
  EXPECT_TRUE(contains(run(tiny_args("whole")).output, "already holds a run"));

  // The saved best adapter evaluates to the metrics the run reported for it.
  const Result eval = run("--eval-only --adapter '" + scratch() + "/whole/best' --data-dir '" + scratch() +
                          "/data' --model-dir '" + scratch() + "/tiny'");
  ASSERT_EQ(eval.exit_code, 0) << eval.output;
  const auto report = json::parse(eval.output.substr(eval.output.find('{')));
  EXPECT_EQ(report["sets"][0]["metrics"], json::parse(file("whole", "results.json"))["metrics"]);
  const auto predictions = file("whole", "best/predictions_dev.tsv");
  EXPECT_EQ(std::count(predictions.begin(), predictions.end(), '\n'), 65);
  EXPECT_TRUE(contains(predictions, "index\tprediction\n0\t"));
}

TEST_F(GlueE2E, MixedPrecisionRunsResumeAndTheirAdaptersLoadOnTheFloat32Base) {
  const Result whole = run(tiny_args("whole", "bf16-mixed"));
  ASSERT_EQ(whole.exit_code, 0) << whole.output;
  EXPECT_EQ(json::parse(file("whole", "config.json"))["precision"], "bf16-mixed");
  const Result killed = run(tiny_args("killed", "bf16-mixed"), "TLORA_GLUE_FAULT=kill:13");
  ASSERT_EQ(killed.exit_code, 128 + 9) << killed.output;
  ASSERT_EQ(run(tiny_args("killed", "bf16-mixed") + " --resume").exit_code, 0);
  EXPECT_EQ(file("killed", "metrics.jsonl"), file("whole", "metrics.jsonl"));
  EXPECT_TRUE(file("killed", "best/adapter_model.safetensors") == file("whole", "best/adapter_model.safetensors"));
  // The adapter holds float32 tensors only (the trainable ones are master weights).
  for (const auto& [name, t] : tlora::safetensors::load(scratch() + "/whole/best/adapter_model.safetensors"))
    EXPECT_EQ(t.scalar_type(), at::kFloat) << name;

  // Evaluated in the precision it was trained in, it scores what the run reported; in fp32, on
  // the float32 base whose bfloat16 rounding it was trained on, it loads (base checksum) and runs.
  const std::string eval = "--eval-only --adapter '" + scratch() + "/whole/best' --data-dir '" + scratch() +
                           "/data' --model-dir '" + scratch() + "/tiny' --precision ";
  const Result mixed = run(eval + "bf16-mixed");
  ASSERT_EQ(mixed.exit_code, 0) << mixed.output;
  EXPECT_EQ(json::parse(mixed.output.substr(mixed.output.find('{')))["sets"][0]["metrics"],
            json::parse(file("whole", "results.json"))["metrics"]);
  const Result fp32 = run(eval + "fp32");
  ASSERT_EQ(fp32.exit_code, 0) << fp32.output;
}

TEST_F(GlueE2E, AValidationSplitPicksTheEpochAndDevIsReportedForIt) {
  const Result r = run(tiny_args("val") + " --validation-split 0.2 --epochs 3");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const json results = json::parse(file("val", "results.json"));
  EXPECT_EQ(results["selected_by"], "validation");
  EXPECT_EQ(results["validation_examples"], 32) << "20% of the 160 training pairs";
  EXPECT_EQ(results["train_examples"], 128);
  // The epoch is the validation split's best; dev is reported for it, and the best dev epoch
  // (the paper's selection) beside it.
  std::istringstream lines(file("val", "metrics.jsonl"));
  std::vector<json> epochs;
  for (std::string line; std::getline(lines, line);) epochs.push_back(json::parse(line));
  ASSERT_EQ(epochs.size(), 3u);
  const auto best_by = [&](const char* key) {
    size_t best = 0;
    for (size_t i = 1; i < epochs.size(); ++i)
      if (epochs[i][key].get<double>() > epochs[best][key].get<double>()) best = i;
    return best;
  };
  const size_t selected = best_by("score"), on_dev = best_by("dev_score");
  EXPECT_TRUE(epochs[selected].contains("validation"));
  EXPECT_EQ(results["best_epoch"], selected + 1);
  EXPECT_EQ(results["metrics"], epochs[selected]["dev"]);
  EXPECT_EQ(results["validation_metrics"], epochs[selected]["validation"]);
  EXPECT_EQ(results["best_dev_epoch"], on_dev + 1);
  EXPECT_EQ(results["best_dev_metrics"], epochs[on_dev]["dev"]);

  const Result tiny = run(tiny_args("tiny") + " --validation-split 0.5 --max-train-samples 1");
  EXPECT_EQ(tiny.exit_code, 1);
  EXPECT_TRUE(contains(tiny.output, "--validation-split 0.5 of 1 training examples")) << tiny.output;
}

TEST_F(GlueE2E, NonFiniteLossStopsAndKeepsTheLastGoodCheckpoint) {
  const Result r = run(tiny_args("nan") + " --lr 1e38 --head-lr 1e38 --max-grad-norm 0 --save-steps 1");
  ASSERT_EQ(r.exit_code, 3) << r.output;
  EXPECT_TRUE(contains(r.output, "not finite") || contains(r.output, "the loss is")) << r.output;
  EXPECT_TRUE(contains(r.output, "last good checkpoint")) << r.output;
  const auto state = tlora::train::read_train_state(scratch() + "/nan/checkpoint/trainer_state.json");
  EXPECT_GE(state.global_step, 1);
  for (const auto& [name, t] : tlora::safetensors::load(scratch() + "/nan/checkpoint/trainable.safetensors"))
    EXPECT_TRUE(t.isfinite().all().item<bool>()) << name;
}

TEST_F(GlueE2E, RefusesBadInputClearly) {
  EXPECT_TRUE(contains(run(tiny_args("bad") + " --task glue").output, "unknown task \"glue\""));
  EXPECT_TRUE(contains(run(tiny_args("bad") + " --model-dir /nonexistent/model").output,
                       "/nonexistent/model does not exist"));
  EXPECT_TRUE(contains(run(tiny_args("bad") + " --data-dir /nonexistent").output, "is not a folder"));
  EXPECT_TRUE(contains(run("--task rte --method full --rank 4").output, "--rank"));
  EXPECT_TRUE(contains(run("--task rte --rank 0").output, "--rank: must be a number above 0, got 0"));
  EXPECT_TRUE(contains(run("--task rte --threads -1").output, "--threads: must be a number of 0 or more, got -1"));

  const std::string broken = scratch() + "/broken/RTE";
  ASSERT_EQ(std::system(("mkdir -p '" + broken + "'").c_str()), 0);
  write(broken + "/train.tsv", head(kGlue + "/RTE/train.tsv", 3) + "17\tonly two columns\n");
  write(broken + "/dev.tsv", head(kGlue + "/RTE/dev.tsv", 5));
  const Result tsv = run(tiny_args("bad") + " --data-dir '" + scratch() + "/broken'");
  EXPECT_EQ(tsv.exit_code, 1);
  EXPECT_TRUE(contains(tsv.output, "RTE/train.tsv:4")) << tsv.output;

  // An adapter trained on the tiny model, evaluated on MiniLM.
  ASSERT_EQ(run(tiny_args("other") + " --epochs 1").exit_code, 0);
  const Result other = run("--eval-only --adapter '" + scratch() + "/other/best' --data-dir '" + scratch() +
                           "/data' --model-dir '" + tlora::models::default_model_dir().string() + "'");
  EXPECT_EQ(other.exit_code, 1);
  EXPECT_TRUE(contains(other.output, "trained on another base model")) << other.output;
  EXPECT_TRUE(contains(run("--eval-only --adapter '" + scratch() + "'").output, "is not a tlora-glue output"));
}

}  // namespace

namespace {

// 640 MRPC training examples, four epochs: TLoRA (12,300 adapter parameters and the head) must
// learn something beyond predicting "paraphrase" for every pair.
TEST(GlueLearning, ShortTLoRARunOnMrpcBeatsTheMajorityClass) {
  const std::string out = scratch() + "/mrpc";
  ASSERT_EQ(std::system(("rm -rf '" + scratch() + "' && mkdir -p '" + scratch() + "'").c_str()), 0);
  const Result r = run("--task mrpc --data-dir '" + kGlue + "' --max-train-samples 640 --epochs 4 --lr 2e-2 "
                       "--max-seq-length 64 --threads 1 --output-dir '" + out + "'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto dev = tlora::glue::read_examples(tlora::glue::Task::MRPC,
                                              tlora::glue::dev_file(tlora::glue::Task::MRPC, kGlue));
  double positives = 0;
  for (const auto& e : dev) positives += *e.label;
  const double majority = std::max(positives, dev.size() - positives) / static_cast<double>(dev.size());
  const auto results = json::parse(read_file(out + "/results.json"));
  EXPECT_GT(results["metrics"]["accuracy"].get<double>(), majority + 0.005) << results.dump(2);
  EXPECT_EQ(results["trainable_params"].get<int64_t>(), 12 * (32 * 32 + 1) + 384 * 2 + 2);
  for (const char* key : {"task", "method", "total_params", "train_seconds", "tokens_per_second"})
    EXPECT_TRUE(results.contains(key)) << key;
  EXPECT_TRUE(results["metrics"].contains("f1"));
}

}  // namespace
