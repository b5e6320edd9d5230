// Resumable training state: the schedule, trainer_state.json and the AdamW state file.
#include "tlora/train/interruption.h"
#include "tlora/train/optimizer_state.h"
#include "tlora/train/schedule.h"
#include "tlora/train/train_state.h"

#include "test_util.h"

#include <ATen/ops/allclose.h>
#include <ATen/ops/equal.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/zeros.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdlib>

namespace {

using tlora::testing::contains;
using tlora::testing::error_of;
using tlora::testing::TempDir;
namespace train = tlora::train;

TEST(LinearSchedule, RisesThenFallsToZero) {
  // transformers' lr_lambda: step/warmup during warmup, then (total-step)/(total-warmup).
  EXPECT_EQ(train::linear_schedule(0, 10, 110), 0.0);
  EXPECT_DOUBLE_EQ(train::linear_schedule(5, 10, 110), 0.5);
  EXPECT_EQ(train::linear_schedule(10, 10, 110), 1.0);
  EXPECT_DOUBLE_EQ(train::linear_schedule(60, 10, 110), 0.5);
  EXPECT_EQ(train::linear_schedule(110, 10, 110), 0.0);
  EXPECT_EQ(train::linear_schedule(200, 10, 110), 0.0);
  EXPECT_EQ(train::linear_schedule(0, 0, 10), 1.0);
  EXPECT_EQ(train::warmup_steps(0.06, 100), 6);
  EXPECT_EQ(train::warmup_steps(0.06, 101), 7);
  EXPECT_TRUE(contains(error_of([] { train::linear_schedule(1, 20, 10); }), "warmup_steps"));
  EXPECT_TRUE(contains(error_of([] { train::warmup_steps(1.5, 10); }), "[0, 1]"));
}

train::TrainState sample_state() {
  train::TrainState s;
  s.epoch = 2;
  s.batches_done = 17;
  s.epoch_loss_sum = 9.25;
  s.global_step = 250;
  s.best_score = 0.8125;
  s.best_epoch = 2;
  s.train_seconds = 12.5;
  s.train_tokens = 123456;
  s.rng_state = {0, 1, 254, 255, 16};
  s.dropout_calls = {{"bert.encoder.layer.0.attention.self.query", 250}};
  s.config_digest = "0123456789abcdef";
  return s;
}

TEST(TrainState, RoundTripsThroughJson) {
  const auto s = sample_state();
  const auto r = train::parse_train_state(train::to_json(s), "state");
  EXPECT_EQ(r.epoch, s.epoch);
  EXPECT_EQ(r.batches_done, s.batches_done);
  EXPECT_EQ(r.epoch_loss_sum, s.epoch_loss_sum);
  EXPECT_EQ(r.global_step, s.global_step);
  EXPECT_EQ(r.best_score, s.best_score);
  EXPECT_EQ(r.best_epoch, s.best_epoch);
  EXPECT_EQ(r.train_seconds, s.train_seconds);
  EXPECT_EQ(r.train_tokens, s.train_tokens);
  EXPECT_EQ(r.rng_state, s.rng_state);
  EXPECT_EQ(r.dropout_calls, s.dropout_calls);
  EXPECT_EQ(r.config_digest, s.config_digest);
  const auto fresh = train::parse_train_state(train::to_json(train::TrainState{}), "fresh");
  EXPECT_TRUE(std::isinf(fresh.best_score));
  TempDir dir;
  const auto file = dir.path() / "trainer_state.json";
  train::write_train_state(file, s);
  dir.write("trainer_state.json", tlora::testing::read_file(file));  // so TempDir removes it
  EXPECT_EQ(train::read_train_state(file).global_step, 250);
}

TEST(TrainState, RefusesCorruptedStates) {
  const std::string good = train::to_json(sample_state());
  auto edit = [&](const char* key, nlohmann::json value) {
    auto j = nlohmann::json::parse(good);
    if (value.is_discarded()) j.erase(key);
    else j[key] = value;
    return j.dump();
  };
  const auto gone = nlohmann::json(nlohmann::json::value_t::discarded);
  // Found by the resume_state fuzz target: nlohmann throws out_of_range for a number beyond
  // double's range, not parse_error.
  std::string overflow = good;
  const size_t at = overflow.find("\"epoch_loss_sum\": ");
  overflow.replace(at, overflow.find(',', at) - at, "\"epoch_loss_sum\": 1e999");
  const std::vector<std::pair<std::string, std::string>> cases{
      {good.substr(0, good.size() / 2), "not valid JSON"},
      {"[1, 2]", "expected a JSON object"},
      {overflow, "number overflow"},
      {edit("version", 99), "unsupported version 99"},
      {edit("epoch", -1), "'epoch' must be an integer >= 0"},
      {edit("global_step", "12"), "'global_step' must be an integer"},
      {edit("batches_done", gone), "field 'batches_done' is missing"},
      {edit("rng_state", "abc"), "odd number of hex digits"},
      {edit("rng_state", "zz"), "not lower-case hex"},
      {edit("best_epoch", 5), "after the current epoch"},
      {edit("best_score", nullptr), "disagree"},
      {edit("train_seconds", -1.0), "'train_seconds' must be finite and >= 0"},
      {edit("dropout_calls", nlohmann::json{{"x", -3}}), "dropout_calls['x']"},
  };
  for (const auto& c : cases)  // not a structured binding: clang 14 cannot capture one
    EXPECT_TRUE(contains(error_of([&] { train::parse_train_state(c.first, "ckpt/trainer_state.json"); }),
                         c.second))
        << c.first;
  EXPECT_TRUE(contains(error_of([&] { train::parse_train_state("{", "ckpt/trainer_state.json"); }),
                       "ckpt/trainer_state.json"));
}

// Two optimizers stepped with the same gradients; one is saved and restored midway.
TEST(TrainState, CpuRngStateRestoresTheDraws) {
  at::manual_seed(3);
  const std::vector<uint8_t> saved = tlora::train::cpu_rng_state();
  const at::Tensor first = at::randn({16});
  at::randn({5});  // move on, as training would
  tlora::train::set_cpu_rng_state(saved);
  EXPECT_TRUE(at::equal(at::randn({16}), first));
}

TEST(FaultHook, RefusesAMalformedSpecNamingTheVariable) {
  for (const char* bad : {"kill", "kill:", "kill:0", "stop:3", "term:3x"}) {
    ::setenv("TLORA_TEST_FAULT", bad, 1);
    EXPECT_TRUE(tlora::testing::contains(
        tlora::testing::error_of([] { tlora::train::FaultHook hook("TLORA_TEST_FAULT"); }),
        "TLORA_TEST_FAULT must be kill:STEP or term:STEP"))
        << bad;
  }
  ::setenv("TLORA_TEST_FAULT", "", 1);
  tlora::train::FaultHook none("TLORA_TEST_FAULT");
  none.after_step(1);  // no fault asked for: returns
  ::unsetenv("TLORA_TEST_FAULT");
}

TEST(AdamWState, RestoredOptimizerContinuesIdentically) {
  at::manual_seed(3);
  const at::Tensor w0 = at::randn({4, 3}), b0 = at::randn({3});
  auto make = [&] {
    train::NamedParameters p{{"w", w0.clone().set_requires_grad(true)},
                             {"b", b0.clone().set_requires_grad(true)}};
    return p;
  };
  auto pa = make(), pb = make();
  auto options = torch::optim::AdamWOptions(0.1).weight_decay(0.01);
  torch::optim::AdamW a({pa[0].second, pa[1].second}, options);
  std::vector<at::Tensor> grads;
  for (int i = 0; i < 6; ++i) grads.push_back(at::randn({4, 3})), grads.push_back(at::randn({3}));
  auto step = [&](train::NamedParameters& p, torch::optim::AdamW& opt, int i) {
    p[0].second.mutable_grad() = grads[2 * i].clone();
    p[1].second.mutable_grad() = grads[2 * i + 1].clone();
    opt.step();
  };
  for (int i = 0; i < 3; ++i) step(pa, a, i);
  TempDir dir;
  const auto file = dir.path() / "optimizer.safetensors";
  train::save_adamw_state(a, pa, file);
  dir.write("optimizer.safetensors", tlora::testing::read_file(file));

  {
    at::NoGradGuard no_grad;
    pb[0].second.copy_(pa[0].second);
    pb[1].second.copy_(pa[1].second);
  }
  torch::optim::AdamW b({pb[0].second, pb[1].second}, options);
  train::load_adamw_state(b, pb, file);
  for (int i = 3; i < 6; ++i) step(pa, a, i), step(pb, b, i);
  EXPECT_TRUE(at::equal(pa[0].second, pb[0].second));
  EXPECT_TRUE(at::equal(pa[1].second, pb[1].second));

  // An optimizer that starts afresh from the same weights drifts: the restored state mattered.
  auto pc = make();
  {
    at::NoGradGuard no_grad;
    for (int k = 0; k < 2; ++k) pc[k].second.copy_(pb[k].second);
  }
  auto pd = make();
  {
    at::NoGradGuard no_grad;
    for (int k = 0; k < 2; ++k) pd[k].second.copy_(pb[k].second);
  }
  torch::optim::AdamW fresh({pc[0].second, pc[1].second}, options);
  torch::optim::AdamW restored({pd[0].second, pd[1].second}, options);
  train::load_adamw_state(restored, pd, file);
  step(pc, fresh, 0);
  step(pd, restored, 0);
  EXPECT_FALSE(at::allclose(pc[0].second, pd[0].second));

  train::NamedParameters wrong{{"w", at::zeros({3, 4}).set_requires_grad(true)},
                               {"b", at::zeros({3}).set_requires_grad(true)}};
  torch::optim::AdamW c({wrong[0].second, wrong[1].second}, options);
  EXPECT_TRUE(contains(error_of([&] { train::load_adamw_state(c, wrong, file); }), "has shape"));
  train::NamedParameters renamed{{"weight", wrong[0].second}, {"b", wrong[1].second}};
  EXPECT_TRUE(contains(error_of([&] { train::load_adamw_state(c, renamed, file); }),
                       "belongs to no parameter"));
  EXPECT_TRUE(contains(error_of([&] { train::load_adamw_state(a, wrong, file); }),
                       "not optimised by this optimizer"));
}

}  // namespace
