#include "checkpoint.h"

#include "tlora/io/atomic_file.h"
#include "tlora/io/files.h"
#include "tlora/io/safetensors.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <ATen/ops/from_blob.h>
#include <c10/util/Exception.h>
#include <fmt/format.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <map>
#include <mutex>
#include <set>
#include <sys/stat.h>
#include <unistd.h>

namespace sft {
namespace {

constexpr const char* kStateFile = "trainer_state.json";

// The files of the checkpoint taken at one point of the run: named after that point, so a save
// never overwrites the files that trainer_state.json points to.
struct Files {
  std::string trainable, optimizer, record;
};

Files files_of(const std::string& dir, const tlora::train::TrainState& state) {
  const std::string tag = fmt::format("epoch{}-batch{}", state.epoch, state.batches_done);
  return {dir + "/trainable-" + tag + ".safetensors", dir + "/optimizer-" + tag + ".safetensors",
          dir + "/record-" + tag + ".json"};
}

// Removes every file of `dir` but `keep`: earlier checkpoints, and whatever a save that was
// killed before its commit left behind.
void remove_all_but(const std::string& dir, const std::set<std::string>& keep) {
  DIR* d = ::opendir(dir.c_str());
  TORCH_CHECK(d != nullptr, "cannot open the folder ", dir, ": ", std::strerror(errno));
  std::vector<std::string> stale;
  while (const dirent* entry = ::readdir(d)) {
    const std::string name = entry->d_name;
    if (name != "." && name != ".." && !keep.contains(dir + "/" + name)) stale.push_back(dir + "/" + name);
  }
  ::closedir(d);
  for (const auto& path : stale) {
    TORCH_CHECK(::unlink(path.c_str()) == 0, "cannot remove ", path, ": ", std::strerror(errno));
  }
}

void save_parameters(const tlora::train::NamedParameters& parameters, const std::string& file) {
  std::map<std::string, at::Tensor> tensors;
  for (const auto& [name, p] : parameters) tensors[name] = p.detach();
  tlora::safetensors::save(file, tensors, {{"format", "tlora-sft-trainable"}});
}

void load_parameters(const tlora::train::NamedParameters& parameters, const std::string& file) {
  const auto tensors = tlora::safetensors::load(file);
  for (const auto& [name, p] : parameters) {
    const auto it = tensors.find(name);
    TORCH_CHECK(it != tensors.end(), file, ": has no tensor for the trainable parameter '", name, "'");
    TORCH_CHECK(it->second.sizes() == p.sizes() && it->second.scalar_type() == p.scalar_type(), file, ": '", name,
                "' is ", it->second.scalar_type(), " ", it->second.sizes(), " but the model's is ", p.scalar_type(), " ",
                p.sizes());
  }
  TORCH_CHECK(tensors.size() == parameters.size(), file, ": holds ", tensors.size(), " tensors but the model trains ",
              parameters.size(), " parameters");
  at::NoGradGuard no_grad;
  for (const auto& [name, p] : parameters) p.copy_(tensors.at(name));
}

nlohmann::json to_json(const RunRecord& r) {
  return {{"accuracy_before", r.accuracy_before ? nlohmann::json(*r.accuracy_before) : nlohmann::json()},
          {"skipped_batches", r.skipped_batches},
          {"epoch_skipped_batches", r.epoch_skipped_batches},
          {"epochs", r.epochs}};
}

RunRecord read_record(const std::string& file) {
  try {
    const auto j = nlohmann::json::parse(tlora::read_file(file, "tlora-sft checkpoint"));
    RunRecord r;
    if (!j.at("accuracy_before").is_null()) r.accuracy_before = j.at("accuracy_before").get<double>();
    r.skipped_batches = j.at("skipped_batches").get<int64_t>();
    r.epoch_skipped_batches = j.at("epoch_skipped_batches").get<int64_t>();
    r.epochs = j.at("epochs");
    TORCH_CHECK(r.epochs.is_array(), file, ": \"epochs\" must be an array");
    return r;
  } catch (const nlohmann::json::exception& e) {
    TORCH_CHECK(false, file, ": not a tlora-sft run record: ", e.what());
  }
}

}  // namespace

Checkpoint::Checkpoint(const std::string& output_dir)
    : output_dir_(output_dir), dir_(output_dir + "/checkpoint"), state_file_(dir_ + "/" + kStateFile) {}

bool Checkpoint::exists() const { return path_exists(state_file_); }

void Checkpoint::save(const Trainee& trainee, tlora::train::TrainState& state, const RunRecord& record) const {
  tlora::create_directories(dir_, "tlora-sft");
  const Files files = files_of(dir_, state);
  save_parameters(trainee.parameters, files.trainable);
  tlora::train::save_adamw_state(trainee.optimizer, trainee.parameters, files.optimizer);
  tlora::write_file_atomically(files.record, to_json(record).dump(1) + "\n");
  state.rng_state = tlora::train::cpu_rng_state();
  state.dropout_calls.clear();
  for (const auto& a : trainee.adapters) state.dropout_calls[a->path()] = a->dropout_calls();
  // The commit: from here on a resume finds this checkpoint.
  tlora::train::write_train_state(state_file_, state);
  remove_all_but(dir_, {state_file_, files.trainable, files.optimizer, files.record});
}

tlora::train::TrainState Checkpoint::read_state(const std::string& digest) const {
  tlora::train::TrainState state = tlora::train::read_train_state(state_file_);
  TORCH_CHECK(state.config_digest == digest, "cannot resume the run in ", output_dir_,
              ": it was started with other settings (see ", output_dir_,
              "/config.json); resume with the same options, or choose another --output-dir");
  return state;
}

RunRecord Checkpoint::restore(const Trainee& trainee, const tlora::train::TrainState& state) const {
  const Files files = files_of(dir_, state);
  load_parameters(trainee.parameters, files.trainable);
  tlora::train::load_adamw_state(trainee.optimizer, trainee.parameters, files.optimizer);
  tlora::train::set_cpu_rng_state(state.rng_state);
  for (const auto& a : trainee.adapters) {
    const auto it = state.dropout_calls.find(a->path());
    TORCH_CHECK(it != state.dropout_calls.end(), state_file_, ": no dropout counter for ", a->path());
    a->set_dropout_calls(it->second);
  }
  return read_record(files.record);
}

bool path_exists(const std::string& path) {
  struct stat s {};
  return ::stat(path.c_str(), &s) == 0;
}

}  // namespace sft
