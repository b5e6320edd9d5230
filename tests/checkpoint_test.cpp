// Adapter checkpoints: bit-exact round trips for every kind, the config's fields, refusals that
// name the file and the problem and leave the model untouched, atomic saves.
#include "test_util.h"
#include "tiny_model.h"
#include "tlora/io/checkpoint.h"
#include "tlora/adapters/inject.h"
#include "tlora/core/random.h"
#include "tlora/io/safetensors.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/nn/modules/linear.h>

#include <dirent.h>
#include <ftw.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

namespace {

namespace fs = std::filesystem;
using tlora::AdapterKind;
using tlora::testing::TinyEncoder;

constexpr std::array kKinds{AdapterKind::TLoRA, AdapterKind::LoRA, AdapterKind::VeRA, AdapterKind::LoRAXS};
const std::string kQuery0 = "encoder.layer.0.attention.self.query";

using tlora::testing::contains;
using tlora::testing::error_of;

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

nlohmann::ordered_json read_config(const fs::path& dir) {
  return nlohmann::ordered_json::parse(read_bytes(dir / tlora::kAdapterConfigFile));
}

void write_config(const fs::path& dir, const nlohmann::ordered_json& config) {
  write_bytes(dir / tlora::kAdapterConfigFile, config.dump(2));
}

// POSIX rather than std::filesystem's operations: LibTorch exports its own copies of those, built
// against a newer libstdc++, and mixing them crashes.
std::vector<std::string> directory_entries(const fs::path& dir) {
  std::vector<std::string> names;
  DIR* stream = ::opendir(dir.c_str());
  while (const dirent* entry = stream == nullptr ? nullptr : ::readdir(stream)) {
    const std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  if (stream != nullptr) ::closedir(stream);
  std::ranges::sort(names);
  return names;
}

class Checkpoint : public testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp != nullptr ? tmp : "/tmp") + "/tlora-checkpoint-test-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    const auto remove = [](const char* path, const struct stat*, int, FTW*) { return ::remove(path); };
    ::nftw(dir_.c_str(), remove, 16, FTW_DEPTH | FTW_PHYS);
  }

  fs::path dir_;
};

tlora::InjectConfig qv(AdapterKind kind) {
  tlora::InjectConfig c;
  c.adapter.kind = kind;
  c.adapter.rank = 4;
  c.adapter.seed = 7;
  c.target_modules = {"query", "value"};
  c.modules_to_save = {"classifier"};
  return c;
}

// Constructed after the same seed, so every call has the same base weights.
TinyEncoder base_model(int64_t layers = 2, int64_t hidden = 16) {
  at::manual_seed(5);
  return TinyEncoder(layers, hidden);
}

// A model with q and v adapted and every trainable tensor moved off its initial value, as
// training would.
TinyEncoder trained(AdapterKind kind, tlora::InjectReport* report = nullptr, uint64_t seed = 9) {
  TinyEncoder model = base_model();
  const tlora::InjectReport r = tlora::inject(*model, qv(kind));
  if (report != nullptr) *report = r;
  at::manual_seed(seed);
  c10::NoGradGuard no_grad;
  for (auto& p : model->parameters()) {
    if (p.requires_grad()) p.add_(at::randn_like(p) * 0.1);
  }
  return model;
}

at::Tensor input() {
  at::manual_seed(3);
  return at::randn({2, 5, 16});
}

fs::path save(const TinyEncoder& model, const tlora::InjectReport& report, const fs::path& dir,
              bool store_projections = true) {
  tlora::SaveAdapterOptions options = tlora::SaveAdapterOptions::from(report);
  options.store_projections = store_projections;
  tlora::save_adapter(*model, dir, options);
  return dir;
}

std::set<std::string> trainable_names(const torch::nn::Module& m) {
  std::set<std::string> names;
  for (const auto& p : m.named_parameters()) {
    if (p.value().requires_grad()) names.insert(p.key());
  }
  return names;
}

// Everything about a model that loading may change.
struct Snapshot {
  std::map<std::string, at::Tensor> tensors;
  std::set<std::string> trainable;
  std::map<std::string, std::string> modules;  // path -> type, adapters and active adapter
};

Snapshot snapshot(const torch::nn::Module& model) {
  Snapshot s;
  for (const auto& p : model.named_parameters()) s.tensors.emplace(p.key(), p.value().clone());
  for (const auto& b : model.named_buffers()) s.tensors.emplace(b.key(), b.value().clone());
  s.trainable = trainable_names(model);
  for (const auto& item : model.named_modules("", /*include_self=*/false)) {
    std::string description = item.value()->name();
    if (const auto* host = dynamic_cast<const tlora::AdaptableLinearImpl*>(item.value().get())) {
      for (const auto& name : host->adapter_names()) description += " " + name;
      description += " active=" + host->active_adapter();
    }
    s.modules.emplace(item.key(), description);
  }
  return s;
}

testing::AssertionResult unchanged(const Snapshot& before, const torch::nn::Module& model) {
  const Snapshot after = snapshot(model);
  if (after.modules != before.modules) return testing::AssertionFailure() << "the modules or adapters changed";
  if (after.trainable != before.trainable) return testing::AssertionFailure() << "what is trainable changed";
  if (after.tensors.size() != before.tensors.size()) return testing::AssertionFailure() << "tensors were added";
  for (const auto& [key, tensor] : before.tensors) {
    const auto it = after.tensors.find(key);
    if (it == after.tensors.end() || it->second.scalar_type() != tensor.scalar_type() ||
        !at::equal(it->second, tensor)) {
      return testing::AssertionFailure() << "tensor " << key << " changed";
    }
  }
  return testing::AssertionSuccess();
}

std::set<std::string> file_keys(const fs::path& dir) {
  std::set<std::string> keys;
  const auto file = tlora::safetensors::File::open(dir / tlora::kAdapterModelFile);
  for (const auto& info : file.tensors()) keys.insert(info.name);
  return keys;
}

// ---------------------------------------------------------------------------------------------
// Round trips.

TEST_F(Checkpoint, RoundTripIsBitExactForEveryKindWithStoredAndRegeneratedProjections) {
  const at::Tensor x = input();
  for (AdapterKind kind : kKinds) {
    for (bool store : {true, false}) {
      SCOPED_TRACE(std::string(tlora::to_string(kind)) + (store ? " stored" : " regenerated"));
      tlora::InjectReport injected;
      TinyEncoder saved = trained(kind, &injected);
      const fs::path dir = save(saved, injected, dir_ / (std::string(tlora::to_string(kind)) + (store ? "-s" : "-r")), store);
      EXPECT_EQ(directory_entries(dir), (std::vector<std::string>{tlora::kAdapterConfigFile, tlora::kAdapterModelFile}));

      TinyEncoder loaded = base_model();
      const tlora::LoadReport report = tlora::load_adapter(*loaded, dir);
      EXPECT_TRUE(at::equal(loaded(x), saved(x)));
      EXPECT_EQ(snapshot(*loaded).modules, snapshot(*saved).modules);
      EXPECT_EQ(trainable_names(*loaded), trainable_names(*saved));
      const Snapshot want = snapshot(*saved), got = snapshot(*loaded);
      for (const auto& [key, tensor] : want.tensors) EXPECT_TRUE(at::equal(got.tensors.at(key), tensor)) << key;
      EXPECT_EQ(report.adapter_name, "default");
      EXPECT_EQ(report.kind, kind);
      ASSERT_EQ(report.modules.size(), 4u);
      EXPECT_EQ(report.modules[0].path, kQuery0);
      EXPECT_EQ(report.modules[0].trainable, injected.modules[0].trainable);
      EXPECT_EQ(report.saved_modules, std::vector<std::string>{"classifier"});
      EXPECT_TRUE(report.missing_keys.empty() && report.unexpected_keys.empty() && report.mismatched_keys.empty());

      // Keys are module path + tensor name; which fixed tensors are stored depends on the kind.
      const std::set<std::string> keys = file_keys(dir);
      EXPECT_TRUE(keys.count("classifier.weight") && keys.count("classifier.bias"));
      for (const auto& p : saved->blocks[0]->attention->self->query->adapter("default")->named_parameters()) {
        EXPECT_TRUE(keys.count(kQuery0 + "." + p.key())) << p.key();
      }
      const bool regenerated = !store && (kind == AdapterKind::TLoRA || kind == AdapterKind::VeRA);
      EXPECT_EQ(read_config(dir)["projections"], regenerated ? "regenerated" : "stored");
      EXPECT_EQ(read_config(dir).contains("projection_checksum"), regenerated);
      if (kind == AdapterKind::TLoRA) {
        EXPECT_EQ(keys.count(kQuery0 + ".down") + keys.count(kQuery0 + ".up"), store ? 2u : 0u);
      } else if (kind == AdapterKind::VeRA) {
        EXPECT_EQ(keys.count("vera_A") + keys.count("vera_B"), store ? 2u : 0u);
        EXPECT_FALSE(keys.count(kQuery0 + ".vera_A")) << "the shared pair is stored once, not per layer";
      } else if (kind == AdapterKind::LoRAXS) {  // from an SVD: always stored
        EXPECT_EQ(keys.count(kQuery0 + ".down") + keys.count(kQuery0 + ".up") + keys.count(kQuery0 + ".scale"), 3u);
      } else {
        ASSERT_EQ(kind, AdapterKind::LoRA);
        EXPECT_EQ(keys.size(), 4u * 2 + 2);
      }
    }
  }
}

// TLoRA's options beyond the defaults survive a round trip with regenerated projections: the
// orthonormal A and B are redrawn bit-identically, and a fixed α comes back as a buffer.
TEST_F(Checkpoint, OrthonormalProjectionsAndAFixedScaleRoundTrip) {
  tlora::InjectConfig config = qv(AdapterKind::TLoRA);
  config.adapter.init = tlora::InitScheme::Orthonormal;
  config.adapter.train_scale = false;
  config.adapter.scale = 0.25;
  TinyEncoder saved = base_model();
  const tlora::InjectReport injected = tlora::inject(*saved, config);
  {
    at::manual_seed(9);
    c10::NoGradGuard no_grad;
    for (auto& p : saved->parameters())
      if (p.requires_grad()) p.add_(at::randn_like(p) * 0.1);
  }
  const fs::path dir = save(saved, injected, dir_ / "ortho", /*store_projections=*/false);
  const nlohmann::ordered_json c = read_config(dir);
  EXPECT_EQ(c["init"], "orthonormal");
  EXPECT_EQ(c["train_scale"], false);
  EXPECT_FALSE(file_keys(dir).count(kQuery0 + ".scale")) << "a fixed α is regenerated, not stored";

  TinyEncoder loaded = base_model();
  tlora::load_adapter(*loaded, dir);
  const at::Tensor x = input();
  EXPECT_TRUE(at::equal(loaded(x), saved(x)));
  EXPECT_EQ(trainable_names(*loaded), trainable_names(*saved));
  for (const std::string& name : trainable_names(*loaded)) EXPECT_FALSE(name.ends_with(".scale")) << name;
  const auto buffers = loaded->blocks[0]->attention->self->query->adapter("default")->named_buffers();
  EXPECT_EQ(buffers["scale"].item<double>(), 0.25);
}

// docs/checkpoints.md's base_checksum, computed from its description: FNV-1a-64 over "weight",
// NUL, the dtype name, the number of dimensions and the sizes as int64, and the bytes.
std::string documented_base_checksum(const at::Tensor& weight) {
  uint64_t hash = tlora::fnv1a64("weight", 7);
  hash = tlora::fnv1a64("F32", 3, hash);
  const int64_t header[] = {2, weight.size(0), weight.size(1)};
  hash = tlora::fnv1a64(header, sizeof header, hash);
  const at::Tensor data = weight.detach().to(at::kFloat).contiguous();
  hash = tlora::fnv1a64(data.const_data_ptr(), data.nbytes(), hash);
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash));
  return hex;
}

TEST_F(Checkpoint, ConfigHasTheDocumentedFields) {
  tlora::InjectReport injected;
  TinyEncoder saved = trained(AdapterKind::TLoRA, &injected);
  const nlohmann::ordered_json c = read_config(save(saved, injected, dir_ / "a", /*store_projections=*/false));
  EXPECT_EQ(c["format_version"], tlora::kAdapterFormatVersion);
  EXPECT_EQ(c["library"], "tlora");
  EXPECT_EQ(c["library_version"], "0.1.0");
  EXPECT_EQ(c["adapter_name"], "default");
  EXPECT_EQ(c["kind"], "tlora");
  EXPECT_EQ(c["rank"], 4);
  EXPECT_EQ(c["scale"], 1.0);
  EXPECT_EQ(c["dropout"], 0.0);
  EXPECT_EQ(c["dropout_position"], "output");
  EXPECT_EQ(c["init"], "paper");
  EXPECT_EQ(c["train_scale"], true);
  EXPECT_EQ(c["seed"], 7);
  EXPECT_EQ(c["strategy"], "auto");
  EXPECT_FALSE(c.contains("vera_d_initial")) << "VeRA's own option is written only for VeRA";
  EXPECT_EQ(c["dtype"], "float32");
  EXPECT_EQ(c["projections"], "regenerated");
  EXPECT_EQ(c["projection_checksum"].get<std::string>().size(), 16u);
  EXPECT_EQ(c["tensors_checksum"].get<std::string>().size(), 16u);
  EXPECT_EQ(c["modules_to_save"], nlohmann::ordered_json::array({"classifier"}));
  ASSERT_EQ(c["modules"].size(), 4u);
  EXPECT_EQ(c["modules"].begin().key(), kQuery0) << "modules are listed in module order";
  EXPECT_EQ(c["modules"][kQuery0],
            (nlohmann::ordered_json{{"in_features", 16}, {"out_features", 16}, {"rank", 4}, {"scale", 1.0},
                                    {"base_checksum", documented_base_checksum(saved->blocks[0]->attention->self->query->weight)}}));
  EXPECT_FALSE(c.contains("base_model_name_or_path")) << "only written when SaveAdapterOptions::base_model is set";
}

TEST_F(Checkpoint, PerModuleRankAndScaleAreKept) {
  TinyEncoder model = base_model();
  tlora::InjectConfig c = qv(AdapterKind::TLoRA);
  c.rank_pattern = {{"value", 2}};
  c.scale_pattern = {{"layer.1.attention.self.query", 0.25}};
  const auto injected = tlora::inject(*model, c);
  const fs::path dir = save(model, injected, dir_ / "a", false);
  EXPECT_EQ(read_config(dir)["modules"]["encoder.layer.0.attention.self.value"]["rank"], 2);
  EXPECT_EQ(read_config(dir)["modules"]["encoder.layer.1.attention.self.query"]["scale"], 0.25);
  TinyEncoder loaded = base_model();
  const auto report = tlora::load_adapter(*loaded, dir);
  EXPECT_EQ(report.modules[1].rank, 2);
  EXPECT_EQ(report.modules[2].scale, 0.25);
  EXPECT_TRUE(at::equal(loaded(input()), model(input())));
}

// The model's dtype wins: a float32 checkpoint loads into a float64 model (regenerated
// projections are verified in the checkpoint's dtype, then converted).
TEST_F(Checkpoint, LoadsIntoTheModelsDtype) {
  for (AdapterKind kind : {AdapterKind::TLoRA, AdapterKind::VeRA}) {
    SCOPED_TRACE(tlora::to_string(kind));
    tlora::InjectReport injected;
    TinyEncoder saved = trained(kind, &injected);
    const fs::path dir = save(saved, injected, dir_ / tlora::to_string(kind), false);
    TinyEncoder loaded = base_model();
    loaded->to(at::kDouble);
    tlora::load_adapter(*loaded, dir);
    const Snapshot got = snapshot(*loaded);
    for (const auto& [key, tensor] : snapshot(*saved).tensors) {
      const at::Tensor& other = got.tensors.at(key);
      EXPECT_EQ(other.scalar_type(), at::kDouble) << key;
      EXPECT_TRUE(at::equal(other, tensor.to(at::kDouble))) << key;
    }
    const at::Tensor expected = saved(input()).to(at::kDouble);
    EXPECT_LT((loaded(input().to(at::kDouble)) - expected).abs().max().item<double>(),
              tlora::testing::tiny_encoder_tolerance(expected));
  }
}

TEST_F(Checkpoint, LoadOptionsNameAndActivation) {
  tlora::InjectReport injected;
  TinyEncoder saved = trained(AdapterKind::TLoRA, &injected);
  const fs::path dir = save(saved, injected, dir_ / "a");
  TinyEncoder model = base_model();
  tlora::load_adapter(*model, dir);
  EXPECT_TRUE(contains(error_of([&] { tlora::load_adapter(*model, dir); }),
                       "module '" + kQuery0 + "' already has an adapter named 'default'"));
  tlora::LoadAdapterOptions options;
  options.adapter_name = "copy";
  options.activate = false;
  EXPECT_EQ(tlora::load_adapter(*model, dir, options).adapter_name, "copy");
  auto query = model->blocks[0]->attention->self->query;
  EXPECT_EQ(query->adapter_names(), (std::vector<std::string>{"copy", "default"}));
  EXPECT_EQ(query->active_adapter(), "default");
  EXPECT_FALSE(query->adapter("copy")->named_parameters()["core"].requires_grad());
  EXPECT_TRUE(query->adapter("default")->named_parameters()["core"].requires_grad());
  tlora::set_active_adapter(*model, "copy");
  EXPECT_TRUE(at::equal(model(input()), saved(input())));
  options.adapter_name = "a.b";
  EXPECT_TRUE(contains(error_of([&] { tlora::load_adapter(*model, dir, options); }), "invalid adapter name 'a.b'"));
}

// A foreign torch::nn::Linear is swapped on load when that is live, and patched in place otherwise.
struct FreeNet : torch::nn::Module {
  FreeNet() { register_module("fc", torch::nn::Linear(8, 8)); }  // held by the registry only
  at::Tensor forward(const at::Tensor& x) {
    return named_children()["fc"]->as<tlora::AdaptableLinear>()->forward(x);
  }
};
struct MemberNet : torch::nn::Module {
  MemberNet() : fc(register_module("fc", torch::nn::Linear(8, 8))) {}
  at::Tensor forward(const at::Tensor& x) { return fc(x); }
  torch::nn::Linear fc;
};

TEST_F(Checkpoint, ForeignLinearsAreSwappedWhenLiveElsePatchedInPlace) {
  at::manual_seed(1);
  FreeNet saved;
  tlora::InjectConfig c = qv(AdapterKind::TLoRA);
  c.target_modules = {"fc"};
  c.modules_to_save = {};
  tlora::inject(saved, c);
  {
    c10::NoGradGuard no_grad;
    saved.named_parameters()["fc.default.core"].normal_();
  }
  tlora::save_adapter(saved, dir_ / "a");
  at::manual_seed(1);
  FreeNet loaded;
  tlora::load_adapter(loaded, dir_ / "a");
  const at::Tensor x = at::randn({3, 8});
  EXPECT_TRUE(at::equal(loaded.forward(x), saved.forward(x)));

  at::manual_seed(1);
  MemberNet member;
  tlora::load_adapter(member, dir_ / "a");
  // The same sum in another association (W0 + ΔW first), so equal up to float32 rounding.
  const at::Tensor expected = saved.forward(x);
  EXPECT_TRUE(at::allclose(member.forward(x), expected, 0, tlora::testing::float32_tolerance(expected, 8, 2)));
  tlora::save_adapter(member, dir_ / "b");
  const auto resaved = tlora::safetensors::load(dir_ / "b" / tlora::kAdapterModelFile);
  const auto original = tlora::safetensors::load(dir_ / "a" / tlora::kAdapterModelFile);
  ASSERT_EQ(resaved.size(), original.size());
  for (const auto& [key, tensor] : original) EXPECT_TRUE(at::equal(resaved.at(key), tensor)) << key;
}

// ---------------------------------------------------------------------------------------------
// Refusals.

// Rewrites the tensor file of `dir` after `edit` changed its tensors.
void edit_tensors(const fs::path& dir, const std::function<void(std::map<std::string, at::Tensor>&)>& edit) {
  auto tensors = tlora::safetensors::load(dir / tlora::kAdapterModelFile);
  edit(tensors);
  tlora::safetensors::save(dir / tlora::kAdapterModelFile, tensors);
}

// A copy of `dir` in `to`, to corrupt.
fs::path copy_checkpoint(const fs::path& dir, const fs::path& to) {
  ::mkdir(to.c_str(), 0777);
  for (const char* name : {tlora::kAdapterConfigFile, tlora::kAdapterModelFile}) write_bytes(to / name, read_bytes(dir / name));
  return to;
}

TEST_F(Checkpoint, CorruptCheckpointsAreRefusedAndLeaveTheModelUntouched) {
  tlora::InjectReport injected;
  const fs::path stored = save(trained(AdapterKind::TLoRA, &injected), injected, dir_ / "stored");
  const fs::path regenerated = save(trained(AdapterKind::TLoRA), injected, dir_ / "regenerated", false);
  const fs::path other = save(trained(AdapterKind::TLoRA, nullptr, /*seed=*/10), injected, dir_ / "other");

  // The target already has an adapter, which must survive every refusal as it was.
  TinyEncoder model = base_model();
  tlora::InjectConfig keys = qv(AdapterKind::LoRA);
  keys.target_modules = {"key"};
  keys.adapter_name = "keys";
  tlora::inject(*model, keys);
  const Snapshot before = snapshot(*model);

  int case_number = 0;
  const auto expect_refused = [&](const std::function<void(const fs::path&)>& corrupt, const fs::path& source,
                                  std::vector<std::string> parts) {
    const fs::path dir = copy_checkpoint(source, dir_ / ("case" + std::to_string(case_number++)));
    corrupt(dir);
    const std::string message = error_of([&] { tlora::load_adapter(*model, dir); });
    for (const auto& part : parts) EXPECT_TRUE(contains(message, part)) << "case " << case_number - 1;
    EXPECT_TRUE(unchanged(before, *model)) << "case " << case_number - 1 << ": " << message;
  };
  // The files of the next case, which its message must name.
  const auto next_file = [&](const char* name) { return (dir_ / ("case" + std::to_string(case_number)) / name).string(); };
  const auto config_file = [&] { return next_file(tlora::kAdapterConfigFile); };
  const auto model_file = [&] { return next_file(tlora::kAdapterModelFile); };

  expect_refused([](const fs::path& d) {
    const std::string bytes = read_bytes(d / tlora::kAdapterModelFile);
    write_bytes(d / tlora::kAdapterModelFile, bytes.substr(0, bytes.size() - 16));  // data cut short
  }, stored, {model_file(), "run past the end of the"});
  expect_refused([](const fs::path& d) {
    std::string bytes = read_bytes(d / tlora::kAdapterModelFile);
    bytes[8] = static_cast<char>(bytes[8] ^ 0xff);  // the header's opening brace
    write_bytes(d / tlora::kAdapterModelFile, bytes);
  }, stored, {model_file(), "the header is not valid JSON"});
  expect_refused([](const fs::path& d) {
    edit_tensors(d, [](auto& t) { t[kQuery0 + ".core"] = t[kQuery0 + ".core"].to(at::kDouble); });
  }, stored, {model_file(), "mismatched keys: " + kQuery0 + ".core (expected F32 [4, 4], found F64 [4, 4])"});
  expect_refused([](const fs::path& d) {
    edit_tensors(d, [](auto& t) { t[kQuery0 + ".core"] = at::zeros({4, 5}); });
  }, stored, {model_file(), "mismatched keys: " + kQuery0 + ".core (expected F32 [4, 4], found F32 [4, 5])"});
  expect_refused([](const fs::path& d) {
    edit_tensors(d, [](auto& t) { t.erase("classifier.bias"); t.erase(kQuery0 + ".down"); });
  }, stored, {model_file(), "missing keys: classifier.bias, " + kQuery0 + ".down"});
  expect_refused([](const fs::path& d) {
    edit_tensors(d, [](auto& t) { t[kQuery0 + ".extra"] = at::zeros({2}); });
  }, stored, {model_file(), "unexpected keys: " + kQuery0 + ".extra"});
  expect_refused([](const fs::path& d) {
    edit_tensors(d, [](auto& t) { t[kQuery0 + ".down"] = at::zeros({4, 16}); });
  }, regenerated, {model_file(), "unexpected keys: " + kQuery0 + ".down"});
  expect_refused([](const fs::path& d) {
    std::string bytes = read_bytes(d / tlora::kAdapterModelFile);
    bytes.back() = static_cast<char>(bytes.back() ^ 1);  // a bit of the last tensor's data
    write_bytes(d / tlora::kAdapterModelFile, bytes);
  }, stored, {model_file(), "do not match tensors_checksum", "come from different saves"});
  // Another save's tensors without the config that save_adapter puts inside the file (which
  // would make it loadable on its own: fault_injection_test.cpp).
  expect_refused([&](const fs::path& d) {
    tlora::safetensors::save(d / tlora::kAdapterModelFile, tlora::safetensors::load(other / tlora::kAdapterModelFile));
  }, stored, {model_file(), "do not match tensors_checksum", "come from different saves"});
  expect_refused([](const fs::path& d) {
    auto c = read_config(d);
    c["projection_checksum"] = "0123456789abcdef";
    write_config(d, c);
  }, regenerated, {config_file(), "the projections regenerated on this machine differ from those at save time"});
  expect_refused([](const fs::path& d) {
    auto c = read_config(d);
    c["seed"] = 8;
    write_config(d, c);
  }, regenerated, {config_file(), "the projections regenerated on this machine differ"});
  expect_refused([](const fs::path& d) {
    auto c = read_config(d);
    c["kind"] = "dora";
    write_config(d, c);
  }, stored, {config_file(), "field 'kind' is \"dora\"; expected one of tlora, lora, vera, loraxs"});
  expect_refused([](const fs::path& d) {
    auto c = read_config(d);
    c["format_version"] = tlora::kAdapterFormatVersion + 1;
    write_config(d, c);
  }, stored, {config_file(), "field 'format_version' is 2: the checkpoint was written by a newer tlora"});
  expect_refused([](const fs::path& d) {
    auto c = read_config(d);
    c.erase("seed");
    write_config(d, c);
  }, stored, {config_file(), "field 'seed' is missing"});
  expect_refused([](const fs::path& d) {
    auto c = read_config(d);
    c["modules"][kQuery0]["rank"] = "four";
    write_config(d, c);
  }, stored, {config_file(), "modules[\"" + kQuery0 + "\"]: field 'rank' must be an integer >= 1, got \"four\""});
  expect_refused([](const fs::path& d) {
    auto c = read_config(d);
    c["modules"]["encoder.layer.1.attention.self.output"] = c["modules"][kQuery0];
    write_config(d, c);
  }, stored, {config_file(), "module 'encoder.layer.1.attention.self.output' is not in the model"});
  expect_refused([](const fs::path& d) {
    auto c = read_config(d);
    c["modules"]["encoder.layer.1.attention.self"] = c["modules"][kQuery0];
    write_config(d, c);
  }, stored, {config_file(), "module 'encoder.layer.1.attention.self' is a", "not a linear layer"});
  expect_refused([](const fs::path& d) {
    write_bytes(d / tlora::kAdapterConfigFile, "{\"library\": \"tlora\",");
  }, stored, {config_file(), "not valid JSON"});
  expect_refused([](const fs::path& d) {  // out of double's range (found by fuzzing)
    auto c = read_config(d);
    c["scale"] = 12345.5;
    std::string text = c.dump(2);
    text.replace(text.find("12345.5"), 7, "1e999");
    write_bytes(d / tlora::kAdapterConfigFile, text);
  }, stored, {config_file(), "not valid JSON", "number overflow"});
  expect_refused([](const fs::path& d) { ::remove((d / tlora::kAdapterConfigFile).c_str()); },
                 stored, {config_file(), "cannot open", "No such file or directory"});
}

TEST_F(Checkpoint, ModelsOfAnotherShapeAreRefusedUntouched) {
  tlora::InjectReport injected;
  const fs::path dir = save(trained(AdapterKind::VeRA, &injected), injected, dir_ / "a");
  const std::string config = (dir / tlora::kAdapterConfigFile).string();

  // Layer 0 fits; layer 1 is missing, found only after layer 0 was checked.
  TinyEncoder shallow = base_model(/*layers=*/1);
  Snapshot before = snapshot(*shallow);
  std::string message = error_of([&] { tlora::load_adapter(*shallow, dir); });
  EXPECT_TRUE(contains(message, config));
  EXPECT_TRUE(contains(message, "module 'encoder.layer.1.attention.self.query' is not in the model"));
  EXPECT_TRUE(unchanged(before, *shallow));

  TinyEncoder narrow = base_model(2, /*hidden=*/8);
  before = snapshot(*narrow);
  message = error_of([&] { tlora::load_adapter(*narrow, dir); });
  EXPECT_TRUE(contains(message, config));
  EXPECT_TRUE(contains(message, "module '" + kQuery0 + "' has in_features=8, out_features=8 but the checkpoint "
                                "was saved for in_features=16, out_features=16"));
  EXPECT_TRUE(unchanged(before, *narrow));
}

TEST_F(Checkpoint, TheBaseIsRecordedAndAnotherBaseIsRefusedUntouched) {
  tlora::InjectReport injected;
  const TinyEncoder saved = trained(AdapterKind::LoRA, &injected);
  tlora::SaveAdapterOptions options = tlora::SaveAdapterOptions::from(injected);
  options.base_model = "tests/tiny";
  tlora::save_adapter(*saved, dir_ / "a", options);
  const fs::path dir = dir_ / "a";
  const auto config = read_config(dir);
  EXPECT_EQ(config["base_model_name_or_path"], "tests/tiny");
  const std::string query_checksum = documented_base_checksum(saved->blocks[0]->attention->self->query->weight);
  EXPECT_EQ(config["modules"][kQuery0]["base_checksum"], query_checksum);

  const tlora::CheckpointInfo info = tlora::read_checkpoint_info(dir);
  EXPECT_EQ(info.adapter_name, "default");
  EXPECT_EQ(info.kind, AdapterKind::LoRA);
  EXPECT_EQ(info.base_model, "tests/tiny");
  ASSERT_EQ(info.modules.size(), 4u);
  EXPECT_EQ(info.modules[0].path, kQuery0);
  EXPECT_EQ(info.modules[0].base_checksum, query_checksum);
  EXPECT_EQ(info.modules[0].rank, 4);

  // Other base weights of the same shapes: refused, naming the layer.
  at::manual_seed(6);
  TinyEncoder other(2, 16);
  const Snapshot before = snapshot(*other);
  const std::string message = error_of([&] { tlora::load_adapter(*other, dir); });
  EXPECT_TRUE(contains(message, (dir / tlora::kAdapterConfigFile).string()));
  EXPECT_TRUE(contains(message, "module '" + kQuery0 + "' has other base weights than the adapter was saved with"));
  EXPECT_TRUE(unchanged(before, *other));
  tlora::LoadAdapterOptions anyway;
  anyway.verify_base = false;
  tlora::load_adapter(*other, dir, anyway);

  // The same base cast to float64 matches: the checksum is taken in the checkpoint's dtype.
  TinyEncoder wide = base_model();
  wide->to(at::kDouble);
  tlora::load_adapter(*wide, dir);

  // A checkpoint written before the base was recorded loads anywhere.
  auto old = config;
  old.erase("base_model_name_or_path");
  for (auto& [path, entry] : old["modules"].items()) entry.erase("base_checksum");
  write_config(dir, old);
  EXPECT_TRUE(tlora::read_checkpoint_info(dir).base_model.empty());
  TinyEncoder third(2, 16);
  tlora::load_adapter(*third, dir);
}

// Not strict: missing, unexpected and mismatched keys are reported, and those tensors keep the
// values they had.
TEST_F(Checkpoint, NonStrictLoadingReportsTheKeys) {
  tlora::InjectReport injected;
  TinyEncoder saved = trained(AdapterKind::LoRA, &injected);
  const fs::path dir = save(saved, injected, dir_ / "a");
  edit_tensors(dir, [](auto& t) {
    t.erase("classifier.bias");
    t[kQuery0 + ".lora_B"] = at::zeros({16, 5});
    t["extra"] = at::zeros({1});
  });
  auto config = read_config(dir);
  config.erase("tensors_checksum");  // it is optional; the edited file no longer matches it
  write_config(dir, config);

  TinyEncoder model = base_model();
  EXPECT_TRUE(contains(error_of([&] { tlora::load_adapter(*model, dir); }), "missing keys: classifier.bias"));
  const at::Tensor bias = model->classifier->bias.clone();
  tlora::LoadAdapterOptions options;
  options.strict = false;
  const auto report = tlora::load_adapter(*model, dir, options);
  EXPECT_EQ(report.missing_keys, std::vector<std::string>{"classifier.bias"});
  EXPECT_EQ(report.unexpected_keys, std::vector<std::string>{"extra"});
  ASSERT_EQ(report.mismatched_keys.size(), 1u);
  EXPECT_EQ(report.mismatched_keys[0].key, kQuery0 + ".lora_B");
  EXPECT_EQ(report.mismatched_keys[0].expected, "F32 [16, 4]");
  EXPECT_EQ(report.mismatched_keys[0].found, "F32 [16, 5]");
  EXPECT_TRUE(at::equal(model->classifier->bias, bias));
  EXPECT_TRUE(at::equal(model->classifier->weight, saved->classifier->weight));
  auto query = model->blocks[0]->attention->self->query->adapter("default")->named_parameters();
  EXPECT_TRUE(at::equal(query["lora_B"], at::zeros({16, 4}))) << "the initial value";
  EXPECT_TRUE(at::equal(query["lora_A"], saved->blocks[0]->attention->self->query->adapter("default")->named_parameters()["lora_A"]));
}

// ---------------------------------------------------------------------------------------------
// Saving.

TEST_F(Checkpoint, AFailedSaveKeepsThePreviousCheckpoint) {
  tlora::InjectReport injected;
  TinyEncoder first = trained(AdapterKind::TLoRA, &injected);
  const fs::path dir = save(first, injected, dir_ / "a");
  TinyEncoder second = trained(AdapterKind::TLoRA, nullptr, /*seed=*/10);

  // A file-size limit below the tensor file's size makes write(2) fail as a full disk would.
  rlimit saved_limit{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved_limit), 0);
  rlimit small = saved_limit;
  small.rlim_cur = 256;
  const auto previous_handler = std::signal(SIGXFSZ, SIG_IGN);
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  const std::string message = error_of([&] { save(second, injected, dir); });
  ::setrlimit(RLIMIT_FSIZE, &saved_limit);
  std::signal(SIGXFSZ, previous_handler);
  EXPECT_TRUE(contains(message, (dir / tlora::kAdapterModelFile).string()));
  EXPECT_TRUE(contains(message, "File too large"));
  EXPECT_EQ(directory_entries(dir), (std::vector<std::string>{tlora::kAdapterConfigFile, tlora::kAdapterModelFile}));
  TinyEncoder loaded = base_model();
  tlora::load_adapter(*loaded, dir);
  EXPECT_TRUE(at::equal(loaded(input()), first(input())));

  // A directory where the tensor file goes: refused, naming it, and no config written.
  const fs::path blocked = dir_ / "blocked";
  ASSERT_EQ(::mkdir(blocked.c_str(), 0777), 0);
  ASSERT_EQ(::mkdir((blocked / tlora::kAdapterModelFile).c_str(), 0777), 0);
  ASSERT_EQ(::mkdir((blocked / tlora::kAdapterModelFile / "child").c_str(), 0777), 0);
  EXPECT_TRUE(contains(error_of([&] { save(first, injected, blocked); }),
                       (blocked / tlora::kAdapterModelFile).string()));
  EXPECT_EQ(directory_entries(blocked), std::vector<std::string>{tlora::kAdapterModelFile});
}

TEST_F(Checkpoint, SaveCreatesDirectoriesAndRefusesWhatCannotBeSaved) {
  tlora::InjectReport injected;
  TinyEncoder model = trained(AdapterKind::TLoRA, &injected);
  save(model, injected, dir_ / "deep" / "er" / "dir");
  EXPECT_EQ(directory_entries(dir_ / "deep" / "er" / "dir").size(), 2u);

  write_bytes(dir_ / "plain", "x");
  EXPECT_TRUE(contains(error_of([&] { save(model, injected, dir_ / "plain" / "sub"); }),
                       "cannot create the directory \"" + (dir_ / "plain" / "sub").string() + "\": Not a directory"));

  tlora::SaveAdapterOptions options;
  options.adapter_name = "nope";
  EXPECT_TRUE(contains(error_of([&] { tlora::save_adapter(*model, dir_ / "b", options); }),
                       "no module has an adapter named 'nope'"));
  options = tlora::SaveAdapterOptions::from(injected);
  options.modules_to_save = {"head"};
  EXPECT_TRUE(contains(error_of([&] { tlora::save_adapter(*model, dir_ / "b", options); }),
                       "modules_to_save entry 'head' is not a module of the model"));

  // Cast after injection, the projections are no longer what the seed draws in that dtype.
  model->to(at::kDouble);
  EXPECT_TRUE(contains(error_of([&] { save(model, injected, dir_ / "b", false); }),
                       "'" + kQuery0 + ".down' differs from what its seed regenerates"));
  save(model, injected, dir_ / "b", true);
  EXPECT_EQ(read_config(dir_ / "b")["dtype"], "float64");

  // Adapters of one name but different configurations cannot share a config.
  TinyEncoder mixed = base_model();
  tlora::InjectConfig c = qv(AdapterKind::TLoRA);
  c.target_modules = {"query"};
  tlora::inject(*mixed, c);
  c.target_modules = {"value"};
  c.adapter.seed = 8;
  tlora::inject(*mixed, c);
  EXPECT_TRUE(contains(error_of([&] { tlora::save_adapter(*mixed, dir_ / "c"); }),
                       "differ in seed; one checkpoint holds one adapter configuration"));
  struct stat status {};
  EXPECT_NE(::stat((dir_ / "c").c_str(), &status), 0) << "nothing was created";
}

}  // namespace
