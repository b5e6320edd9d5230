// tlora::train::split_backward: a batch trained as parts side by side gives the whole batch's
// gradient (against a float64 reference), the same masks whichever part runs first, and its
// parts on threads of their own with one intra-op thread each.
#include "test_util.h"
#include "tiny_model.h"
#include "tlora/adapters/adaptable_linear.h"
#include "tlora/adapters/adapter.h"
#include "tlora/adapters/inject.h"
#include "tlora/core/precision.h"
#include "tlora/models/dropout.h"
#include "tlora/train/split_batch.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/nn/module.h>

#include <chrono>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <set>
#include <thread>

namespace {

using tlora::testing::TinyEncoder;
using tlora::testing::error_of;
namespace train = tlora::train;

constexpr int64_t kRows = 7, kSeq = 5, kHidden = 16;

// A TinyEncoder with TLoRA on query and value (core and α non-zero, so the adapter's output and
// its dropout count), in `dtype`.
TinyEncoder adapted_encoder(at::ScalarType dtype, double dropout) {
  torch::manual_seed(3);
  TinyEncoder model;
  tlora::InjectConfig config;
  config.target_modules = {"query", "value"};
  config.adapter.kind = tlora::AdapterKind::TLoRA;
  config.adapter.rank = 4;
  config.adapter.dropout = dropout;
  config.adapter.seed = 11;
  tlora::inject(*model, config);
  {
    const at::NoGradGuard no_grad;
    for (const auto& p : model->named_parameters())
      if (p.key().find("core") != std::string::npos) p.value().copy_(at::randn(p.value().sizes()) * 0.3);
  }
  model->to(dtype);
  model->train();
  return model;
}

std::vector<at::Tensor> trainable(torch::nn::Module& model) {
  std::vector<at::Tensor> out;
  for (const at::Tensor& p : model.parameters())
    if (p.requires_grad()) out.push_back(p);
  return out;
}

std::vector<std::shared_ptr<tlora::AdapterImpl>> adapters(torch::nn::Module& model) {
  std::vector<std::shared_ptr<tlora::AdapterImpl>> out;
  for (const auto& m : model.modules())
    if (const auto host = std::dynamic_pointer_cast<tlora::AdaptableLinearImpl>(m))
      for (const std::string& name : host->adapter_names()) out.push_back(host->adapter(name));
  return out;
}

struct Data {
  at::Tensor x, labels;
};

Data data() {
  torch::manual_seed(5);
  return {at::randn({kRows, kSeq, kHidden}), at::randint(2, {kRows}, at::kLong)};
}

// Part k's share of the batch's mean cross-entropy: its mean weighted by its rows.
at::Tensor share(TinyEncoder& model, const Data& d, int64_t k, int64_t parts, double input_dropout = 0.0) {
  const auto [first, last] = train::part_rows(kRows, k, parts);
  const at::Tensor x = tlora::models::dropout(d.x.slice(0, first, last).to(model->classifier->weight.scalar_type()),
                                              input_dropout, input_dropout > 0);
  return at::cross_entropy_loss(model(x), d.labels.slice(0, first, last)) *
         (static_cast<double>(last - first) / static_cast<double>(kRows));
}

std::vector<at::Tensor> grads_of(const std::vector<at::Tensor>& params) {
  std::vector<at::Tensor> out;
  for (const at::Tensor& p : params) out.push_back(p.grad().defined() ? p.grad().clone() : at::Tensor());
  return out;
}

TEST(SplitBatch, PartRowsCoverTheBatchInOrderWithSizesWithinOne) {
  for (int64_t rows = 1; rows <= 9; ++rows) {
    for (int64_t parts = 1; parts <= rows; ++parts) {
      int64_t next = 0, smallest = rows, largest = 0;
      for (int64_t k = 0; k < parts; ++k) {
        const auto [first, last] = train::part_rows(rows, k, parts);
        EXPECT_EQ(first, next) << rows << " rows, part " << k << " of " << parts;
        smallest = std::min(smallest, last - first);
        largest = std::max(largest, last - first);
        next = last;
      }
      EXPECT_EQ(next, rows);
      EXPECT_LE(largest - smallest, 1);
      EXPECT_GE(smallest, 1);
    }
  }
  EXPECT_EQ(train::batch_parts(32, 2), 2);
  EXPECT_EQ(train::batch_parts(1, 4), 1);
  EXPECT_EQ(train::batch_parts(32, 1), 1);
  EXPECT_EQ(train::batch_parts(32, 8, /*enabled=*/false), 1);
  EXPECT_NE(error_of([] { train::part_rows(3, 0, 4); }).find("4 parts of a batch of 3 rows"), std::string::npos);
  EXPECT_NE(error_of([] { train::part_rows(3, 3, 3); }).find("part 3 of 3"), std::string::npos);
  EXPECT_NE(error_of([] { train::batch_parts(0, 2); }).find("at least one row"), std::string::npos);
}

TEST(SplitBatch, GradientEqualsTheWholeBatchsInFloat64) {
  const Data d = data();
  TinyEncoder reference = adapted_encoder(at::kDouble, 0.0);
  const std::vector<at::Tensor> ref_params = trainable(*reference);
  share(reference, d, 0, 1).backward();
  for (const int64_t parts : {int64_t{2}, int64_t{3}, kRows}) {
    TinyEncoder model = adapted_encoder(at::kFloat, 0.0);
    const std::vector<at::Tensor> params = trainable(*model);
    ASSERT_EQ(params.size(), ref_params.size());
    const at::Tensor loss = train::split_backward(params, parts, [&](int64_t k) { return share(model, d, k, parts); });
    const double ref_loss = share(reference, d, 0, 1).item<double>();
    EXPECT_NEAR(loss.item<double>(), ref_loss, 1e-5 * std::abs(ref_loss)) << parts << " parts";
    for (size_t i = 0; i < params.size(); ++i) {
      ASSERT_TRUE(params[i].grad().defined()) << "parameter " << i;
      const at::Tensor ref = ref_params[i].grad();
      // The backward doubles the forward's chain of rounded stages; every sum has at most
      // 24 terms but the parts' sum over rows, which has kRows · kSeq.
      const double tol = tlora::testing::float32_tolerance(ref, kRows * kSeq, 2 * (4 * 2 + 1) + 1);
      EXPECT_LE((params[i].grad().to(at::kDouble) - ref).abs().max().item<double>(), tol)
          << "parameter " << i << ", " << parts << " parts";
    }
  }
}

TEST(SplitBatch, AddsToGradientsAlreadyThereAndSkipsFrozenTensors) {
  const Data d = data();
  TinyEncoder model = adapted_encoder(at::kFloat, 0.0);
  const std::vector<at::Tensor> params = trainable(*model);
  train::split_backward(params, 2, [&](int64_t k) { return share(model, d, k, 2); });
  const std::vector<at::Tensor> once = grads_of(params);
  std::vector<at::Tensor> all = model->parameters();  // frozen base weights among them
  train::split_backward(all, 2, [&](int64_t k) { return share(model, d, k, 2); });
  for (size_t i = 0; i < params.size(); ++i)
    EXPECT_TRUE(at::allclose(params[i].grad(), 2 * once[i], 1e-6, 1e-7)) << "parameter " << i;
  for (const at::Tensor& p : all)
    if (!p.requires_grad()) EXPECT_FALSE(p.grad().defined());
}

TEST(SplitBatch, DrawsTheSameMasksWhicheverPartRunsFirst) {
  const Data d = data();
  std::vector<std::vector<at::Tensor>> runs;
  std::vector<double> losses;
  // Run 0 as it comes; run 1 holds part 0 back, run 2 part 1, so that the parts take their
  // seeds and adapter calls in the other order.
  for (int run = 0; run < 3; ++run) {
    TinyEncoder model = adapted_encoder(at::kFloat, 0.5);
    const std::vector<at::Tensor> params = trainable(*model);
    torch::manual_seed(9);
    for (int step = 0; step < 2; ++step) {
      const at::Tensor loss = train::split_backward(params, 2, [&](int64_t k) {
        if (run > 0 && k == run - 1) std::this_thread::sleep_for(std::chrono::milliseconds(50));
        return share(model, d, k, 2, /*input_dropout=*/0.25);
      });
      if (step == 1) losses.push_back(loss.item<double>());
    }
    for (const auto& a : adapters(*model)) EXPECT_EQ(a->dropout_calls(), 4u) << a->path();
    runs.push_back(grads_of(params));
  }
  for (int run = 1; run < 3; ++run) {
    EXPECT_EQ(losses[run], losses[0]) << "run " << run;
    for (size_t i = 0; i < runs[0].size(); ++i) EXPECT_TRUE(at::equal(runs[run][i], runs[0][i])) << "run " << run;
  }
}

TEST(SplitBatch, EachPartDrawsItsOwnMasks) {
  // Both parts see the same rows: only their dropout masks (the adapters' and the input's) can
  // tell them apart.
  const Data d = data();
  const at::Tensor twice = at::cat({d.x.slice(0, 0, 3), d.x.slice(0, 0, 3)});
  TinyEncoder model = adapted_encoder(at::kFloat, 0.5);
  for (const double input_dropout : {0.0, 0.25}) {
    std::vector<double> part_losses(2);
    train::split_backward(trainable(*model), 2, [&](int64_t k) {
      const auto [first, last] = train::part_rows(6, k, 2);
      const at::Tensor x = tlora::models::dropout(twice.slice(0, first, last), input_dropout, input_dropout > 0);
      const at::Tensor loss = at::cross_entropy_loss(model(x), d.labels.slice(0, 0, 3));
      part_losses[static_cast<size_t>(k)] = loss.item<double>();
      return loss;
    });
    EXPECT_NE(part_losses[0], part_losses[1]) << "input dropout " << input_dropout;
  }
}

TEST(SplitBatch, RunsThePartsSideBySideWithOneIntraOpThreadEach) {
  const int threads = at::get_num_threads();
  std::mutex mutex;
  std::condition_variable all_started;
  int started = 0;
  bool met = true;
  std::set<std::thread::id> ids;
  std::vector<int> seen(3, 0);
  std::vector<bool> grad_mode(3, true);
  const at::Tensor w = at::ones({2}).requires_grad_();
  {
    const at::NoGradGuard no_grad;  // the caller's thread-local state reaches the parts
    train::split_backward({w}, 3, [&](int64_t k) {
      std::unique_lock<std::mutex> lock(mutex);
      ids.insert(std::this_thread::get_id());
      seen[static_cast<size_t>(k)] = at::get_num_threads();
      grad_mode[static_cast<size_t>(k)] = at::GradMode::is_enabled();
      EXPECT_EQ(train::current_batch_part()->index, k);
      EXPECT_EQ(train::current_batch_part()->count, 3);
      // Every part waits here for the others: parts run one after the other would never meet.
      ++started;
      all_started.notify_all();
      if (!all_started.wait_for(lock, std::chrono::seconds(30), [&] { return started == 3; })) met = false;
      return (w * w).sum();
    });
  }
  EXPECT_TRUE(met) << "the parts did not run side by side";
  EXPECT_EQ(ids.size(), 3u);
  EXPECT_EQ(seen, std::vector<int>(3, 1));
  EXPECT_EQ(grad_mode, std::vector<bool>(3, false));
  EXPECT_FALSE(w.grad().defined());  // no graph under no_grad, so no gradient
  EXPECT_EQ(at::get_num_threads(), threads);
  EXPECT_EQ(train::current_batch_part(), nullptr);
}

TEST(SplitBatch, AutocastInsideAPartCoversItsForwardOnly) {
  const at::Tensor w = at::randn({4, 4}).requires_grad_();
  const at::Tensor x = at::randn({2, 4});
  std::vector<at::ScalarType> dtypes(2);
  train::split_backward({w}, 2, [&](int64_t k) {
    const tlora::AutocastGuard autocast(at::kCPU);
    const at::Tensor y = at::matmul(x, w);
    dtypes[static_cast<size_t>(k)] = y.scalar_type();
    return y.to(at::kFloat).sum();
  });
  EXPECT_EQ(dtypes, std::vector<at::ScalarType>(2, at::kBFloat16));
  EXPECT_EQ(w.grad().scalar_type(), at::kFloat);
  EXPECT_FALSE(at::autocast::is_autocast_enabled(at::kCPU));
}

TEST(SplitBatch, ANonFiniteLossAddsNoGradient) {
  const at::Tensor w = at::ones({3}).requires_grad_();
  w.mutable_grad() = at::full({3}, 2.0);
  for (const int64_t parts : {1, 2}) {
    const at::Tensor loss = train::split_backward({w}, parts, [&](int64_t k) {
      return k == parts - 1 ? (w * std::numeric_limits<double>::quiet_NaN()).sum() : w.sum();
    });
    EXPECT_TRUE(std::isnan(loss.item<double>()));
    EXPECT_TRUE(at::equal(w.grad(), at::full({3}, 2.0))) << parts << " parts";
  }
  train::split_backward({w}, 2, [&](int64_t) { return w.sum(); });  // finite: both parts' ones added
  EXPECT_TRUE(at::equal(w.grad(), at::full({3}, 4.0)));
}

TEST(SplitBatch, AnErrorInAPartReachesTheCallerAndTheThreadsComeBack) {
  const int threads = at::get_num_threads();
  const at::Tensor w = at::ones({3}).requires_grad_();
  const std::string error = error_of([&] {
    train::split_backward({w}, 2, [&](int64_t k) {
      TORCH_CHECK(k == 0, "part ", k, " failed");
      return w.sum();
    });
  });
  EXPECT_NE(error.find("part 1 failed"), std::string::npos) << error;
  EXPECT_EQ(at::get_num_threads(), threads);
  EXPECT_FALSE(w.grad().defined());
  EXPECT_NE(error_of([&] { train::split_backward({w}, 2, [&](int64_t) { return w * 1.0; }); })
                .find("expected a scalar"),
            std::string::npos);
  EXPECT_NE(error_of([&] { train::split_backward({w}, 0, [&](int64_t) { return w.sum(); }); })
                .find("at least 1"),
            std::string::npos);
}

}  // namespace
