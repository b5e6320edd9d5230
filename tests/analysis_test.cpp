// Adapter analyses: the low-rank route against dense fp64 linear algebra for every adapter kind,
// cosines and principal angles on cases with known answers, effective ranks on constructed
// spectra, entry statistics against SciPy (tools/statistics_fixtures.py), the refusal of
// checkpoints from different bases, and tlora-analyze end to end on the tiny BERT.
#include "test_util.h"
#include "tiny_model.h"
#include "tlora/analysis/adapter_analysis.h"
#include "tlora/io/checkpoint.h"
#include "tlora/adapters/inject.h"
#include "tlora/models/bert.h"
#include "tlora/models/loading.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <ftw.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <map>
#include <numbers>
#include <set>
#include <string>

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using tlora::AdapterKind;
using tlora::testing::contains;
using tlora::testing::error_of;
using tlora::testing::TinyEncoder;

constexpr std::array kKinds{AdapterKind::TLoRA, AdapterKind::LoRA, AdapterKind::VeRA, AdapterKind::LoRAXS};

TinyEncoder base_model(uint64_t seed = 5) {
  at::manual_seed(seed);
  return TinyEncoder(/*layers=*/2, /*hidden=*/16, /*intermediate=*/24);
}

tlora::InjectConfig config_for(AdapterKind kind, const std::string& name = "default") {
  tlora::InjectConfig c;
  c.adapter.kind = kind;
  c.adapter.rank = 4;
  c.adapter.seed = 7;
  c.adapter_name = name;
  // Square (16×16) and rectangular (24×16, 16×24) layers.
  c.target_modules = {"query", "intermediate", "output"};
  return c;
}

// Moves every trainable tensor of adapter `name` off its initial value, as training would.
void perturb(torch::nn::Module& model, const std::string& name, uint64_t seed) {
  at::manual_seed(seed);
  c10::NoGradGuard no_grad;
  for (const auto& p : model.named_parameters()) {
    if (p.key().find("." + name + ".") != std::string::npos) p.value().add_(at::randn_like(p.value()) * 0.3);
  }
}

std::vector<std::pair<std::string, std::shared_ptr<tlora::AdaptableLinearImpl>>> hosts_with(torch::nn::Module& model,
                                                                                   const std::string& name) {
  std::vector<std::pair<std::string, std::shared_ptr<tlora::AdaptableLinearImpl>>> out;
  for (const auto& item : model.named_modules("", false)) {
    if (auto host = std::dynamic_pointer_cast<tlora::AdaptableLinearImpl>(item.value()); host && host->adapter(name)) {
      out.emplace_back(item.key(), host);
    }
  }
  return out;
}

double max_abs(const at::Tensor& t) { return t.abs().max().item<double>(); }

// ---------------------------------------------------------------------------------------------
// The low-rank route against dense linear algebra.

TEST(Analysis, FactoredDeltaAndItsSvdMatchDenseLinearAlgebraForEveryKind) {
  for (AdapterKind kind : kKinds) {
    SCOPED_TRACE(std::string(tlora::to_string(kind)));
    TinyEncoder model = base_model();
    tlora::inject(*model, config_for(kind));
    perturb(*model, "default", 11);
    const auto hosts = hosts_with(*model, "default");
    ASSERT_EQ(hosts.size(), 8u);
    std::set<std::pair<int64_t, int64_t>> shapes;
    for (const auto& [path, host] : hosts) {
      SCOPED_TRACE(path);
      const auto& adapter = *host->adapter("default");
      const tlora::FactoredDelta delta = tlora::factored_delta(adapter);
      const at::Tensor dense = delta.materialize();
      // The adapter's own ΔW (computed in float32 by its class) is the independent reference.
      const at::Tensor reference = adapter.delta_weight().to(at::kDouble);
      ASSERT_EQ(dense.sizes(), host->weight.sizes());
      shapes.emplace(dense.size(0), dense.size(1));
      // ΔW = α·B·(M·A) in float32: two chained products of at most r terms.
      EXPECT_LE(max_abs(dense - reference),
                tlora::testing::rounding_tolerance(at::kFloat, max_abs(reference), delta.core.size(0), 2));

      const at::Tensor full = at::linalg_svdvals(dense);  // min(out, in) values, float64
      const tlora::DeltaSVD svd = tlora::delta_svd(delta);
      const int64_t k = svd.s.size(0);
      ASSERT_EQ(k, 4);
      const double top = full[0].item<double>();
      ASSERT_GT(top, 0);
      EXPECT_LE(max_abs(svd.s - full.slice(0, 0, k)), 1e-12 * top);
      EXPECT_LE(max_abs(full.slice(0, k)), 1e-12 * top) << "ΔW has rank at most r";
      EXPECT_LE(max_abs(svd.u.mm(at::diag(svd.s)).mm(svd.v.t()) - dense), 1e-12 * top);
      EXPECT_LE(max_abs(svd.u.t().mm(svd.u) - at::eye(k, at::kDouble)), 1e-12);
      EXPECT_LE(max_abs(svd.v.t().mm(svd.v) - at::eye(k, at::kDouble)), 1e-12);

      const tlora::LayerAnalysis a = tlora::analyze_layer(path, adapter, host->weight);
      EXPECT_EQ(a.kind, kind);
      EXPECT_EQ(a.rank, 4);
      EXPECT_EQ(a.out_features, host->weight.size(0));
      EXPECT_EQ(a.in_features, host->weight.size(1));
      EXPECT_NEAR(a.delta_fro, at::linalg_matrix_norm(dense, "fro").item<double>(), 1e-12 * top);
      EXPECT_NEAR(a.base_fro, at::linalg_matrix_norm(host->weight.to(at::kDouble), "fro").item<double>(), 1e-9);
      EXPECT_NEAR(a.core_spectral, at::linalg_svdvals(delta.core)[0].item<double>(), 1e-12);
      EXPECT_NEAR(a.up_spectral, at::linalg_svdvals(delta.up)[0].item<double>(), 1e-12);
      EXPECT_NEAR(a.down_spectral, at::linalg_svdvals(delta.down)[0].item<double>(), 1e-12);
      EXPECT_NEAR(a.core_fro, delta.core.square().sum().sqrt().item<double>(), 1e-12);
    }
    EXPECT_EQ(shapes, (std::set<std::pair<int64_t, int64_t>>{{16, 16}, {24, 16}, {16, 24}}));
  }
}

TEST(Analysis, FactorsAndEntriesAreThoseOfEachKind) {
  const std::map<std::string_view, std::set<std::string>> trainable{{AdapterKind::TLoRA.name(), {"core"}},
                                                                     {AdapterKind::LoRA.name(), {"lora_A", "lora_B"}},
                                                                     {AdapterKind::VeRA.name(), {"lambda_b", "lambda_d"}},
                                                                     {AdapterKind::LoRAXS.name(), {"core"}}};
  for (AdapterKind kind : kKinds) {
    SCOPED_TRACE(std::string(tlora::to_string(kind)));
    TinyEncoder model = base_model();
    tlora::inject(*model, config_for(kind));
    perturb(*model, "default", 12);
    const auto layers = tlora::analyze_adapter(*model, "default");
    ASSERT_EQ(layers.size(), 8u);
    EXPECT_EQ(layers.front().path, "encoder.layer.0.attention.self.query") << "module order";
    const auto hosts = hosts_with(*model, "default");  // .front() of the temporary would dangle
    const auto& [path, host] = hosts.front();
    const auto parameters = host->adapter("default")->named_parameters();
    std::set<std::string> names;
    for (const auto& [name, statistics] : layers.front().entries) {
      names.insert(name);
      EXPECT_EQ(statistics.count, parameters[name].numel());
      EXPECT_NEAR(statistics.mean, parameters[name].to(at::kDouble).mean().item<double>(), 1e-12);
    }
    EXPECT_EQ(names, trainable.at(kind.name()));
    const double expected_alpha = kind == AdapterKind::TLoRA ? parameters["scale"].item<double>()
                                  : kind == AdapterKind::LoRA ? 1.0 / 4.0  // lora_alpha (scale 1) / r
                                                              : 1.0;
    EXPECT_NEAR(layers.front().alpha, expected_alpha, 1e-7);
  }
  TinyEncoder model = base_model();
  EXPECT_TRUE(contains(error_of([&] { tlora::analyze_adapter(*model, "default"); }),
                       "no module of the model has an adapter named 'default'"));
}

// ---------------------------------------------------------------------------------------------
// Two adapters.

double dense_cosine(const at::Tensor& x, const at::Tensor& y) {
  return (x * y).sum().item<double>() / (x.norm().item<double>() * y.norm().item<double>());
}

// The principal angles by the textbook route, from dense SVDs: acos of the singular values of
// U_aᵀ·U_b.
at::Tensor dense_angles(const at::Tensor& x, const at::Tensor& y, int64_t k, bool left) {
  const auto [ux, sx, vxh] = at::linalg_svd(x, false);
  const auto [uy, sy, vyh] = at::linalg_svd(y, false);
  const at::Tensor a = left ? ux.slice(1, 0, k) : vxh.t().slice(1, 0, k);
  const at::Tensor b = left ? uy.slice(1, 0, k) : vyh.t().slice(1, 0, k);
  return at::acos(at::linalg_svdvals(a.t().mm(b)).clamp(-1, 1));
}

TEST(Analysis, CosineAndAnglesOfTwoAdaptersMatchTheMaterializedUpdates) {
  for (AdapterKind other : {AdapterKind::LoRA, AdapterKind::VeRA}) {
    SCOPED_TRACE(std::string(tlora::to_string(other)));
    TinyEncoder model = base_model();
    tlora::inject(*model, config_for(AdapterKind::TLoRA, "t"));
    tlora::inject(*model, config_for(other, "o"));
    perturb(*model, "t", 13);
    perturb(*model, "o", 14);
    tlora::AnalysisOptions options;
    options.top_k = 3;
    const auto comparisons = tlora::compare_adapters(*model, "t", "o", options);
    const auto hosts = hosts_with(*model, "t");
    ASSERT_EQ(comparisons.size(), hosts.size());
    for (size_t i = 0; i < hosts.size(); ++i) {
      const auto& [path, host] = hosts[i];
      const auto& c = comparisons[i];
      SCOPED_TRACE(path);
      EXPECT_EQ(c.path, path);
      const at::Tensor dt = tlora::factored_delta(*host->adapter("t")).materialize();
      const at::Tensor d_other = tlora::factored_delta(*host->adapter("o")).materialize();
      const at::Tensor w0 = host->weight.to(at::kDouble);
      EXPECT_NEAR(c.cosine, dense_cosine(dt, d_other), 1e-12);
      EXPECT_NEAR(c.full_weight_cosine, dense_cosine(w0 + dt, w0 + d_other), 1e-12);
      EXPECT_LT(std::abs(c.cosine), 0.9) << "independent random updates are far from parallel";
      ASSERT_EQ(c.k, 3);
      EXPECT_LE(max_abs(c.left_angles - dense_angles(dt, d_other, 3, true)), 1e-6);
      EXPECT_LE(max_abs(c.right_angles - dense_angles(dt, d_other, 3, false)), 1e-6);
    }
  }
}

TEST(Analysis, IdenticalAndOppositeAdaptersHaveCosineOneAndMinusOneAndZeroAngles) {
  TinyEncoder model = base_model();
  tlora::inject(*model, config_for(AdapterKind::TLoRA, "a"));
  tlora::inject(*model, config_for(AdapterKind::TLoRA, "b"));  // same seed: the same A and B
  perturb(*model, "a", 15);
  const auto copy_core = [&](double sign) {
    c10::NoGradGuard no_grad;
    for (const auto& [path, host] : hosts_with(*model, "a")) {
      auto from = host->adapter("a")->named_parameters(), to = host->adapter("b")->named_parameters();
      to["core"].copy_(from["core"] * sign);
      to["scale"].copy_(from["scale"]);
    }
  };
  copy_core(1.0);
  for (const auto& c : tlora::compare_adapters(*model, "a", "b")) {
    EXPECT_NEAR(c.cosine, 1.0, 1e-12);
    EXPECT_NEAR(c.full_weight_cosine, 1.0, 1e-12);
    EXPECT_EQ(c.k, 4);
    EXPECT_LE(max_abs(c.left_angles), 1e-7);
    EXPECT_LE(max_abs(c.right_angles), 1e-7);
  }
  copy_core(-1.0);
  for (const auto& c : tlora::compare_adapters(*model, "a", "b")) {
    EXPECT_NEAR(c.cosine, -1.0, 1e-12);
    EXPECT_LE(max_abs(c.left_angles), 1e-7) << "the same subspaces, whatever the sign";
  }
  // A zero update has no direction: NaN cosine and no subspace.
  {
    c10::NoGradGuard no_grad;
    for (const auto& [path, host] : hosts_with(*model, "b")) host->adapter("b")->named_parameters()["core"].zero_();
  }
  const auto zero = tlora::compare_adapters(*model, "a", "b").front();
  EXPECT_TRUE(std::isnan(zero.cosine));
  EXPECT_EQ(zero.k, 0);
  EXPECT_EQ(zero.left_angles.numel(), 0);
  EXPECT_TRUE(contains(error_of([&] { tlora::compare_adapters(*model, "a", "c"); }),
                       "no module of the model has both an adapter named 'a' and one named 'c'"));
}

TEST(Analysis, PrincipalAnglesHaveTheirKnownValues) {
  const at::Tensor e = at::eye(6, at::kDouble);
  const auto col = [&](int64_t i) { return e.slice(1, i, i + 1); };
  const double half_pi = std::numbers::pi / 2;

  at::Tensor angles = tlora::principal_angles(e.slice(1, 0, 2), e.slice(1, 2, 4));
  EXPECT_LE(max_abs(angles - half_pi), 1e-15) << "orthogonal subspaces";

  for (double theta : {0.3, 1.2, 1e-9, half_pi - 1e-9}) {
    SCOPED_TRACE(theta);
    const at::Tensor rotated = at::cat({col(0) * std::cos(theta) + col(2) * std::sin(theta), col(1)}, 1);
    angles = tlora::principal_angles(e.slice(1, 0, 2), rotated);
    ASSERT_EQ(angles.numel(), 2);
    EXPECT_LE(std::abs(angles[0].item<double>()), 1e-15);
    // Relative accuracy also for tiny angles, where acos(cos θ) would lose all digits.
    EXPECT_NEAR(angles[1].item<double>(), theta, 1e-12 * theta);
  }

  // Bases of different widths: as many angles as the narrower one has columns.
  const at::Tensor diagonal = (col(0) + col(1)) / std::sqrt(2.0);
  angles = tlora::principal_angles(e.slice(1, 0, 3), diagonal);
  ASSERT_EQ(angles.numel(), 1);
  EXPECT_LE(angles[0].item<double>(), 1e-15);
  angles = tlora::principal_angles(diagonal, e.slice(1, 1, 4));
  EXPECT_NEAR(angles[0].item<double>(), std::numbers::pi / 4, 1e-15);

  EXPECT_TRUE(contains(error_of([&] { tlora::principal_angles(e, e.slice(0, 0, 3)); }),
                       "the bases must be n×k matrices with the same n, got [6, 6] and [3, 6]"));
}

TEST(Analysis, EffectiveRanksOfConstructedSpectra) {
  const auto spectrum = [](std::vector<double> s) { return at::tensor(s, at::kDouble); };
  EXPECT_NEAR(tlora::entropy_effective_rank(spectrum({2, 2, 2, 2})), 4.0, 1e-14) << "a flat spectrum: its length";
  EXPECT_NEAR(tlora::entropy_effective_rank(spectrum({5, 0, 0})), 1.0, 1e-14) << "rank one";
  EXPECT_EQ(tlora::entropy_effective_rank(spectrum({0, 0})), 0.0);
  // p = (3/4, 1/4): H = log 4 − (3/4)·log 3, so exp(H) = 4 / 3^(3/4).
  EXPECT_NEAR(tlora::entropy_effective_rank(spectrum({3, 1})), 4.0 / std::pow(3.0, 0.75), 1e-14);
  // Scale does not matter.
  EXPECT_NEAR(tlora::entropy_effective_rank(spectrum({3e-6, 1e-6})), 4.0 / std::pow(3.0, 0.75), 1e-14);

  const at::Tensor s = spectrum({1, 0.5, 0.009, 0});
  EXPECT_EQ(tlora::numerical_rank(s, 1e-2), 2);
  EXPECT_EQ(tlora::numerical_rank(s, 1e-3), 3);
  EXPECT_EQ(tlora::numerical_rank(s, 0), 3);
  EXPECT_EQ(tlora::numerical_rank(spectrum({0, 0}), 1e-2), 0);
}

// ---------------------------------------------------------------------------------------------
// Statistics against SciPy.

// Equal to a relative 1e-9 (absolute 1e-300 for underflowing p-values); null in the fixture
// stands for NaN.
testing::AssertionResult close(double actual, const json& expected) {
  if (expected.is_null()) {
    return std::isnan(actual) ? testing::AssertionSuccess() : testing::AssertionFailure() << actual << " is not NaN";
  }
  const double e = expected.get<double>();
  if (std::abs(actual - e) <= 1e-9 * std::abs(e) + 1e-300) return testing::AssertionSuccess();
  return testing::AssertionFailure() << actual << " vs " << e;
}

TEST(Analysis, EntryStatisticsMatchScipy) {
  std::ifstream in(std::string(TLORA_FIXTURE_DIR) + "/entry_statistics.json");
  ASSERT_TRUE(in) << "missing " << TLORA_FIXTURE_DIR << "/entry_statistics.json (tools/statistics_fixtures.py)";
  const json cases = json::parse(in).at("cases");
  ASSERT_GE(cases.size(), 8u);
  for (const json& c : cases) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    const auto values = c.at("values").get<std::vector<double>>();
    // A 2-D float64 tensor: the shape must not matter.
    const auto s = tlora::entry_statistics(at::tensor(values, at::kDouble).view({-1, 1}));
    EXPECT_EQ(s.count, static_cast<int64_t>(values.size()));
    EXPECT_TRUE(close(s.mean, c["mean"]));
    EXPECT_TRUE(close(s.std, c["std"]));
    EXPECT_TRUE(close(s.skewness, c["skewness"]));
    EXPECT_TRUE(close(s.excess_kurtosis, c["excess_kurtosis"]));
    EXPECT_TRUE(close(s.jarque_bera, c["jarque_bera"]));
    EXPECT_TRUE(close(s.jarque_bera_p, c["jarque_bera_p"]));
    EXPECT_TRUE(close(s.skew_z, c["skew_z"]));
    EXPECT_TRUE(close(s.kurtosis_z, c["kurtosis_z"]));
    EXPECT_TRUE(close(s.k2, c["k2"]));
    EXPECT_TRUE(close(s.k2_p, c["k2_p"]));
  }
}

TEST(Analysis, StatisticsThatAreUndefinedAreNaN) {
  const auto constant = tlora::entry_statistics(at::zeros({4, 4}));
  EXPECT_EQ(constant.count, 16);
  EXPECT_EQ(constant.mean, 0.0);
  EXPECT_EQ(constant.std, 0.0);
  EXPECT_TRUE(std::isnan(constant.skewness) && std::isnan(constant.excess_kurtosis) && std::isnan(constant.k2_p) &&
              std::isnan(constant.jarque_bera_p));
  const auto few = tlora::entry_statistics(at::tensor({1.0, 2.0, 4.0, 8.0, 16.0}, at::kDouble));
  EXPECT_TRUE(std::isnan(few.skew_z)) << "skewtest needs 8 entries";
  EXPECT_FALSE(std::isnan(few.kurtosis_z)) << "kurtosistest needs 5";
  EXPECT_FALSE(std::isnan(few.jarque_bera_p));
  EXPECT_TRUE(contains(error_of([] { tlora::entry_statistics(at::zeros({0})); }), "the tensor has no entries"));
}

// ---------------------------------------------------------------------------------------------
// Checkpoints and bases.

class AnalysisFiles : public testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "tlora-analysis-test-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    const auto remove = [](const char* path, const struct stat*, int, FTW*) { return ::remove(path); };
    ::nftw(dir_.c_str(), remove, 16, FTW_DEPTH | FTW_PHYS);
  }
  fs::path dir_;
};

tlora::CheckpointInfo info(std::vector<std::pair<std::string, std::string>> modules, std::string base_model = "") {
  tlora::CheckpointInfo i;
  i.base_model = std::move(base_model);
  for (auto& [path, checksum] : modules) i.modules.push_back({path, 16, 16, 4, 1.0, checksum});
  return i;
}

TEST_F(AnalysisFiles, CheckpointsFromDifferentBasesAreRefused) {
  const auto save = [&](uint64_t base_seed, const std::string& name) {
    TinyEncoder model = base_model(base_seed);
    tlora::inject(*model, config_for(AdapterKind::TLoRA));
    perturb(*model, "default", 16);
    tlora::save_adapter(*model, dir_ / name);
    return tlora::read_checkpoint_info(dir_ / name);
  };
  const auto first = save(5, "first"), same = save(5, "same"), other = save(6, "other");
  tlora::check_same_base(first, "first", same, "same");
  const std::string message = error_of([&] { tlora::check_same_base(first, "first", other, "other"); });
  EXPECT_TRUE(contains(message, "the checkpoints first and other were saved on different base models: layer "
                                "'encoder.layer.0.attention.self.query' has base_checksum"));

  // Without checksums (older checkpoints) the recorded names decide, when both have one.
  tlora::check_same_base(info({{"q", ""}}, "m1"), "a", info({{"q", ""}}, ""), "b");
  EXPECT_TRUE(contains(error_of([&] { tlora::check_same_base(info({{"q", ""}}, "m1"), "a", info({{"q", ""}}, "m2"), "b"); }),
                       "saved on different base models ('m1' and 'm2', and no base checksums to compare)"));
  // Equal checksums win over different names (the same model in two folders).
  tlora::check_same_base(info({{"q", "0123456789abcdef"}}, "m1"), "a", info({{"q", "0123456789abcdef"}}, "m2"), "b");
}

#ifdef TLORA_ANALYZE
// Runs `command`, returning its exit status; stderr goes to `stderr_file`.
int run(const std::string& command, const fs::path& stderr_file) {
  const int status = std::system((command + " 2> '" + stderr_file.string() + "' > /dev/null").c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST_F(AnalysisFiles, TloraAnalyzeWritesTheAnalysesOfTwoCheckpointsOfTheTinyBert) {
  const fs::path tiny = fs::path(TLORA_FIXTURE_DIR) / "models" / "bert-tiny";
  auto model = tlora::models::from_pretrained<tlora::models::BertForSequenceClassification>(tiny);
  tlora::InjectConfig c = config_for(AdapterKind::TLoRA);
  c.target_modules = {"query", "value"};
  c.modules_to_save = {"classifier"};
  tlora::inject(*model, c);
  c.adapter.kind = AdapterKind::LoRA;
  c.adapter_name = "lora";
  tlora::inject(*model, c);
  perturb(*model, "default", 17);
  perturb(*model, "lora", 18);
  for (const std::string name : {"default", "lora"}) {
    tlora::SaveAdapterOptions save;
    save.adapter_name = name;
    save.modules_to_save = {"classifier"};
    save.base_model = tiny.string();
    tlora::save_adapter(*model, dir_ / name, save);
  }

  const fs::path output = dir_ / "analysis.json", errors = dir_ / "stderr.txt";
  const std::string tool = std::string(TLORA_ANALYZE) + " --adapter '" + (dir_ / "default").string() + "' --adapter '" +
                           (dir_ / "lora").string() + "' --top-k 2 --output '" + output.string() + "'";
  ASSERT_EQ(run(tool, errors), 0) << tlora::testing::read_file(errors);
  const json report = json::parse(tlora::testing::read_file(output));
  EXPECT_EQ(report["model_dir"], tiny.string()) << "from base_model_name_or_path";
  ASSERT_EQ(report["adapters"].size(), 2u);

  const auto expected = tlora::analyze_adapter(*model, "default");
  const json& first = report["adapters"][0];
  EXPECT_EQ(first["kind"], "tlora");
  EXPECT_EQ(first["base_verified"], true);
  ASSERT_EQ(first["layers"].size(), 4u);
  for (size_t i = 0; i < expected.size(); ++i) {
    const json& layer = first["layers"][i];
    SCOPED_TRACE(expected[i].path);
    EXPECT_EQ(layer["path"], expected[i].path);
    EXPECT_TRUE(expected[i].path.starts_with("bert.encoder.layer."));
    const auto singular = layer["singular_values"].get<std::vector<double>>();
    ASSERT_EQ(singular.size(), 4u);
    for (size_t j = 0; j < singular.size(); ++j) EXPECT_NEAR(singular[j], expected[i].singular_values[j].item<double>(), 1e-12);
    EXPECT_NEAR(layer["alpha"].get<double>(), expected[i].alpha, 1e-12);
    EXPECT_NEAR(layer["relative_delta"].get<double>(), expected[i].delta_fro / expected[i].base_fro, 1e-12);
    EXPECT_EQ(layer["entries"]["core"]["values"].size(), 16u) << "a 4×4 core";
    EXPECT_NEAR(layer["entries"]["core"]["normaltest"]["p"].get<double>(), expected[i].entries[0].second.k2_p, 1e-12);
  }
  EXPECT_EQ(report["adapters"][1]["kind"], "lora");
  const auto comparisons = tlora::compare_adapters(*model, "default", "lora");
  const json& compared = report["comparison"]["layers"];
  ASSERT_EQ(compared.size(), comparisons.size());
  for (size_t i = 0; i < comparisons.size(); ++i) {
    EXPECT_NEAR(compared[i]["cosine"].get<double>(), comparisons[i].cosine, 1e-12);
    EXPECT_EQ(compared[i]["left_angles"].size(), 2u) << "--top-k 2";
  }

#ifdef TLORA_PLOT_ANALYSIS
  const fs::path figures = dir_ / "figures";
  ASSERT_EQ(run(std::string(TLORA_PLOT_ANALYSIS) + " --analysis '" + output.string() + "' --out-dir '" +
                    figures.string() + "' --prefix tiny_",
                errors),
            0)
      << tlora::testing::read_file(errors);
  for (const char* name : {"alpha", "norms", "spectra", "similarity", "core_hist"}) {
    const std::string png = tlora::testing::read_file(figures / (std::string("tiny_") + name + ".png"));
    EXPECT_TRUE(png.starts_with("\x89PNG")) << name << ".png";
  }
#endif

  // A checkpoint of another base (one query weight changed): refused against the first, and
  // alone against the tiny BERT it claims as its base.
  auto changed = tlora::models::from_pretrained<tlora::models::BertForSequenceClassification>(tiny);
  {
    c10::NoGradGuard no_grad;
    changed->named_parameters()["bert.encoder.layer.0.attention.self.query.weight"].add_(0.01);
  }
  c.adapter.kind = AdapterKind::TLoRA;
  c.adapter_name = "default";
  tlora::inject(*changed, c);
  tlora::SaveAdapterOptions save;
  save.modules_to_save = {"classifier"};
  save.base_model = tiny.string();
  tlora::save_adapter(*changed, dir_ / "changed", save);
  const std::string pair = std::string(TLORA_ANALYZE) + " --adapter '" + (dir_ / "default").string() +
                           "' --adapter '" + (dir_ / "changed").string() + "' --output '" + output.string() + "'";
  EXPECT_EQ(run(pair, errors), 1);
  EXPECT_TRUE(contains(tlora::testing::read_file(errors), "were saved on different base models: layer "
                                                          "'bert.encoder.layer.0.attention.self.query'"));
  const std::string alone = std::string(TLORA_ANALYZE) + " --adapter '" + (dir_ / "changed").string() +
                            "' --output '" + output.string() + "'";
  EXPECT_EQ(run(alone, errors), 1);
  EXPECT_TRUE(contains(tlora::testing::read_file(errors), "has other base weights than the adapter was saved with"));

  // A folder that is not a checkpoint, and three checkpoints.
  EXPECT_EQ(run(std::string(TLORA_ANALYZE) + " --adapter '" + dir_.string() + "' --output '" + output.string() + "'", errors), 1);
  EXPECT_TRUE(contains(tlora::testing::read_file(errors),
                       "read_checkpoint_info: cannot open \"" + (dir_ / tlora::kAdapterConfigFile).string() + "\""));
  const std::string three = std::string(TLORA_ANALYZE) + " --adapter '" + (dir_ / "default").string() + "' --adapter '" +
                            (dir_ / "lora").string() + "' --adapter '" + (dir_ / "lora").string() + "' --output x.json";
  EXPECT_EQ(run(three, errors), 2);
  EXPECT_TRUE(contains(tlora::testing::read_file(errors), "--adapter given 3 times; give one checkpoint, or two to compare"));
}
#endif

}  // namespace
