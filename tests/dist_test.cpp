// tlora::dist: the launch environment, the sampler against torch's DistributedSampler, and
// groups of tlora-test-dist-worker processes over loopback with Gloo (training equal to one
// process, a dead or stalled rank, a group that disagrees on its size).
#include "test_util.h"
#include "tlora/dist/context.h"
#include "tlora/dist/sampler.h"
#include "tlora/io/safetensors.h"

#include <ATen/ATen.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <torch/nn/module.h>

#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

using tlora::testing::contains;
using tlora::testing::error_of;
using Clock = std::chrono::steady_clock;

const char* const kLaunchVariables[] = {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT",
                                        "TORCHELASTIC_USE_AGENT_STORE", "TORCHELASTIC_RESTART_COUNT"};

// Sets launch variables for one test and restores the process's own when it ends.
class ScopedLaunchEnvironment {
 public:
  explicit ScopedLaunchEnvironment(const std::map<std::string, std::string>& values) {
    for (const char* name : kLaunchVariables) {
      if (const char* v = std::getenv(name)) saved_[name] = v;
      ::unsetenv(name);
    }
    for (const auto& [name, value] : values) ::setenv(name.c_str(), value.c_str(), 1);
  }
  ~ScopedLaunchEnvironment() {
    for (const char* name : kLaunchVariables) ::unsetenv(name);
    for (const auto& [name, value] : saved_) ::setenv(name.c_str(), value.c_str(), 1);
  }

 private:
  std::map<std::string, std::string> saved_;
};

// A port that was free a moment ago (the kernel's pick for port 0 on loopback).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
  ::close(fd);
  return ntohs(address.sin_port);
}

struct Outcome {
  int exit_code = -1;  // -1 when killed at the deadline
  double seconds = 0;
  std::string log;     // stdout and stderr
};

// Worker processes with their own launch variables, each logging to a file in `dir`.
class Group {
 public:
  explicit Group(tlora::testing::TempDir& dir) : dir_(dir) {}

  void launch(const std::vector<std::string>& args, const std::map<std::string, std::string>& launch_env) {
    const auto log = dir_.write("worker" + std::to_string(pids_.size()) + ".log", "");
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) {
      const std::string entry = *e;
      bool launch_variable = false;
      for (const char* name : kLaunchVariables) launch_variable |= entry.rfind(std::string(name) + "=", 0) == 0;
      if (!launch_variable) env.push_back(entry);
    }
    for (const auto& [name, value] : launch_env) env.push_back(name + "=" + value);
    env.push_back("GLOO_SOCKET_IFNAME=lo");
    env.push_back("OMP_NUM_THREADS=1");
    std::vector<std::string> argv{TLORA_DIST_WORKER};
    argv.insert(argv.end(), args.begin(), args.end());

    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      const int fd = ::open(log.c_str(), O_WRONLY | O_TRUNC);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      std::vector<char*> cargv, cenv;
      for (auto& a : argv) cargv.push_back(a.data());
      for (auto& e : env) cenv.push_back(e.data());
      cargv.push_back(nullptr);
      cenv.push_back(nullptr);
      ::execve(cargv[0], cargv.data(), cenv.data());
      ::_exit(127);
    }
    pids_.push_back(pid);
    logs_.push_back(log);
    started_.push_back(Clock::now());
  }

  // Waits for process `i` at most `limit` seconds after its start, killing it then.
  Outcome wait(size_t i, double limit) {
    Outcome outcome;
    int status = 0;
    while (::waitpid(pids_[i], &status, WNOHANG) == 0) {
      if (std::chrono::duration<double>(Clock::now() - started_[i]).count() > limit) {
        ::kill(pids_[i], SIGKILL);
        ::waitpid(pids_[i], &status, 0);
        status = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    outcome.seconds = std::chrono::duration<double>(Clock::now() - started_[i]).count();
    if (status != -1 && WIFEXITED(status)) outcome.exit_code = WEXITSTATUS(status);
    outcome.log = tlora::testing::read_file(logs_[i]);
    return outcome;
  }

  // Whether process `i` writes `text` within `limit` seconds of its start.
  bool wait_for_output(size_t i, const std::string& text, double limit) {
    while (tlora::testing::read_file(logs_[i]).find(text) == std::string::npos) {
      if (std::chrono::duration<double>(Clock::now() - started_[i]).count() > limit) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return true;
  }

  // Launches `world` ranks of `args` on a fresh port, all with WORLD_SIZE=world unless
  // `world_sizes` says otherwise per rank, and waits for all of them.
  static std::vector<Outcome> run(tlora::testing::TempDir& dir, const std::vector<std::string>& args, int world,
                                  int timeout_ms, double limit, std::vector<int> world_sizes = {}) {
    Group group(dir);
    const std::string port = std::to_string(free_port());
    for (int r = 0; r < world; ++r) {
      group.launch(args, {{"RANK", std::to_string(r)},
                          {"LOCAL_RANK", std::to_string(r)},
                          {"WORLD_SIZE", std::to_string(world_sizes.empty() ? world : world_sizes[r])},
                          {"MASTER_ADDR", "127.0.0.1"},
                          {"MASTER_PORT", port},
                          {"TLORA_TEST_TIMEOUT_MS", std::to_string(timeout_ms)}});
    }
    std::vector<Outcome> outcomes;
    for (int r = 0; r < world; ++r) outcomes.push_back(group.wait(r, limit));
    return outcomes;
  }

 private:
  tlora::testing::TempDir& dir_;
  std::vector<pid_t> pids_;
  std::vector<std::filesystem::path> logs_;
  std::vector<Clock::time_point> started_;
};

// Groups of processes exchange CPU tensors, so they need Gloo.
class DistGroup : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!tlora::dist::has_backend("gloo")) GTEST_SKIP() << "tlora was configured without the Gloo backend";
  }
};

TEST(DistEnvironment, WithoutWorldSizeIsOneProcessWithIdentityCollectives) {
  ScopedLaunchEnvironment env({});
  const tlora::dist::Context ctx = tlora::dist::Context::from_environment();
  EXPECT_EQ(ctx.rank(), 0);
  EXPECT_EQ(ctx.world_size(), 1);
  EXPECT_TRUE(ctx.is_main());
  const at::Tensor t = at::randn({3, 2});
  EXPECT_TRUE(at::equal(ctx.all_reduce_sum(t), t));
  EXPECT_TRUE(at::equal(ctx.all_gather(t), t));

  torch::nn::Module module;
  at::Tensor p = module.register_parameter("p", at::randn({4}));
  p.mutable_grad() = at::randn({4});
  const at::Tensor before = p.grad().clone();
  ctx.all_reduce_gradients(module);
  ctx.broadcast_parameters(module);
  ctx.barrier();
  EXPECT_TRUE(at::equal(p.grad(), before));
}

TEST(DistEnvironment, RefusesMissingAndGarbledValues) {
  const std::map<std::string, std::string> good{
      {"WORLD_SIZE", "2"}, {"RANK", "1"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", "29500"}};
  auto with = [&](std::map<std::string, std::string> changes, const std::string& drop = "") {
    std::map<std::string, std::string> values = good;
    for (auto& [k, v] : changes) values[k] = v;
    if (!drop.empty()) values.erase(drop);
    ScopedLaunchEnvironment env(values);
    return error_of([] { tlora::dist::Context::from_environment(); });
  };
  EXPECT_TRUE(contains(with({{"WORLD_SIZE", "two"}}), "WORLD_SIZE=\"two\" is not an integer"));
  EXPECT_TRUE(contains(with({{"WORLD_SIZE", "0"}}), "WORLD_SIZE=\"0\" is not an integer in [1,"));
  EXPECT_TRUE(contains(with({{"RANK", "1x"}}), "RANK=\"1x\" is not an integer"));
  EXPECT_TRUE(contains(with({{"RANK", "-1"}}), "RANK=\"-1\""));
  EXPECT_TRUE(contains(with({{"RANK", "2"}}), "RANK=2 is not below WORLD_SIZE=2"));
  EXPECT_TRUE(contains(with({{"LOCAL_RANK", "5"}}), "LOCAL_RANK=5 is not below WORLD_SIZE=2"));
  EXPECT_TRUE(contains(with({}, "RANK"), "WORLD_SIZE is set but RANK is not"));
  EXPECT_TRUE(contains(with({}, "MASTER_ADDR"), "WORLD_SIZE is set but MASTER_ADDR is not"));
  EXPECT_TRUE(contains(with({{"MASTER_PORT", "70000"}}), "MASTER_PORT=\"70000\" is not an integer in [1, 65535]"));
  ScopedLaunchEnvironment env(good);
  EXPECT_TRUE(contains(error_of([] { tlora::dist::Context::from_environment({.timeout = std::chrono::milliseconds(0)}); }),
                       "timeout must be positive"));
}

TEST(DistSampler, MatchesTorchDistributedSampler) {
  std::ifstream in(TLORA_FIXTURE_DIR "/dist/sampler.json");
  const nlohmann::json fixture = nlohmann::json::parse(in);
  ASSERT_FALSE(fixture["cases"].empty());
  for (const auto& c : fixture["cases"]) {
    const int world = c["world_size"];
    for (int r = 0; r < world; ++r) {
      tlora::dist::DistributedSampler sampler(c["size"], world, r,
                                              {.shuffle = c["shuffle"], .seed = c["seed"], .drop_last = c["drop_last"]});
      const std::vector<int64_t> expected = c["indices"][r];
      EXPECT_EQ(sampler.indices(c["epoch"]), expected) << c.dump();
      EXPECT_EQ(sampler.shard_size(), static_cast<int64_t>(expected.size())) << c.dump();
    }
  }
}

TEST(DistSampler, ShardsPartitionEachEpochAndUnshardRestoresItsOrder) {
  const int64_t size = 11;
  const int world = 3;
  std::vector<std::vector<int64_t>> epochs;
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    std::vector<at::Tensor> blocks;
    std::multiset<int64_t> seen;
    for (int r = 0; r < world; ++r) {
      const std::vector<int64_t> mine = tlora::dist::DistributedSampler(size, world, r, {.seed = 3}).indices(epoch);
      EXPECT_EQ(mine.size(), 4u);  // ceil(11 / 3)
      seen.insert(mine.begin(), mine.end());
      blocks.push_back(at::tensor(mine));
    }
    for (int64_t i = 0; i < size; ++i) EXPECT_GE(seen.count(i), 1u) << i;  // every index, one repeated
    EXPECT_EQ(seen.size(), 12u);
    // Unsharding the gathered indices themselves gives the epoch's order: a permutation.
    const at::Tensor order = tlora::dist::DistributedSampler(size, world, 0, {.seed = 3}).unshard(at::cat(blocks));
    const std::vector<int64_t> v(order.data_ptr<int64_t>(), order.data_ptr<int64_t>() + order.numel());
    EXPECT_EQ(std::set<int64_t>(v.begin(), v.end()).size(), static_cast<size_t>(size));
    // One rank walking the same epoch sees exactly that order.
    EXPECT_EQ(v, tlora::dist::DistributedSampler(size, 1, 0, {.seed = 3}).indices(epoch));
    epochs.push_back(v);
  }
  EXPECT_NE(epochs[0], epochs[1]);
  EXPECT_TRUE(contains(error_of([] { tlora::dist::DistributedSampler(4, 2, 2); }), "rank 2 is not in [0, 2)"));
  EXPECT_TRUE(contains(error_of([] { tlora::dist::DistributedSampler(1, 2, 0, {.drop_last = true}); }),
                       "drop_last with 1 samples for 2 ranks"));
}

TEST_F(DistGroup, TwoRanksTrainTheSameAdapterAsOne) {
  tlora::testing::TempDir dir;
  const std::string out = dir.path().string();
  const std::vector<std::string> args{"train", out, "6", "8"};
  Group single(dir);
  single.launch(args, {});
  const Outcome alone = single.wait(0, 60);
  ASSERT_EQ(alone.exit_code, 0) << alone.log;
  const auto single_file = dir.adopt("single.safetensors");
  ASSERT_EQ(::rename(dir.adopt("rank0.safetensors").c_str(), single_file.c_str()), 0);
  const auto reference = tlora::safetensors::load(single_file);

  for (const Outcome& o : Group::run(dir, args, 2, 10000, 60)) ASSERT_EQ(o.exit_code, 0) << o.log;
  const auto rank0 = tlora::safetensors::load(dir.path() / "rank0.safetensors");
  const auto rank1 = tlora::safetensors::load(dir.adopt("rank1.safetensors"));

  ASSERT_EQ(rank0.size(), reference.size());
  int adapter_tensors = 0;
  for (const auto& [name, expected] : reference) {
    ASSERT_TRUE(rank0.count(name)) << name;
    EXPECT_TRUE(at::equal(rank0.at(name), rank1.at(name))) << name << ": the replicas drifted apart";
    EXPECT_TRUE(at::allclose(rank0.at(name), expected, 1e-4, 1e-5))
        << name << ": max difference " << (rank0.at(name) - expected).abs().max().item<double>();
    if (name.find(".core") != std::string::npos) {
      ++adapter_tensors;
      EXPECT_GT(expected.abs().max().item<double>(), 1e-3) << name << " did not train (it starts at zero)";
    }
  }
  EXPECT_EQ(adapter_tensors, 4);  // query and value of two layers
  EXPECT_EQ(reference.at("eval_logits").size(0), 23);
  EXPECT_EQ(rank0.at("correct").item<int64_t>(), reference.at("correct").item<int64_t>());
}

TEST_F(DistGroup, ADeadRankMakesTheOthersFailFast) {
  tlora::testing::TempDir dir;
  const auto outcomes = Group::run(dir, {"die"}, 2, 5000, 30);
  EXPECT_EQ(outcomes[1].exit_code, 3) << outcomes[1].log;
  EXPECT_EQ(outcomes[0].exit_code, 2) << outcomes[0].log;
  EXPECT_LT(outcomes[0].seconds, 15);
  EXPECT_TRUE(contains(outcomes[0].log, "tlora::dist: all_reduce_sum failed on rank 0 of 2"));
}

TEST_F(DistGroup, AStalledRankMakesTheOthersFailAtTheTimeout) {
  tlora::testing::TempDir dir;
  Group group(dir);
  const std::string port = std::to_string(free_port());
  for (int r = 0; r < 2; ++r) {
    group.launch({"stall"}, {{"RANK", std::to_string(r)}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "127.0.0.1"},
                             {"MASTER_PORT", port}, {"TLORA_TEST_TIMEOUT_MS", "2000"}});
  }
  const Outcome waiting = group.wait(0, 30);
  group.wait(1, 0);  // kills the sleeper
  EXPECT_EQ(waiting.exit_code, 2) << waiting.log;
  EXPECT_TRUE(contains(waiting.log, "tlora::dist: all_reduce_sum failed on rank 0 of 2"));
  EXPECT_TRUE(contains(waiting.log, "2 s timeout"));
  EXPECT_LT(waiting.seconds, 20);
}

TEST_F(DistGroup, RanksThatDisagreeOnTheWorldSizeAreRefused) {
  tlora::testing::TempDir dir;
  const auto outcomes = Group::run(dir, {"join"}, 2, 10000, 30, {2, 3});
  EXPECT_EQ(outcomes[0].exit_code, 2) << outcomes[0].log;
  EXPECT_EQ(outcomes[1].exit_code, 2) << outcomes[1].log;
  EXPECT_TRUE(contains(outcomes[0].log, "rank 1 has WORLD_SIZE=3 but rank 0 has WORLD_SIZE=2"));
  EXPECT_TRUE(contains(outcomes[1].log, "rank 1 has WORLD_SIZE=3 but rank 0 has WORLD_SIZE=2"));
  EXPECT_LT(outcomes[0].seconds, 10);  // refused at rendezvous, not at the timeout
}

TEST_F(DistGroup, ARankTakenTwiceIsRefused) {
  tlora::testing::TempDir dir;
  Group group(dir);
  const std::map<std::string, std::string> env{{"WORLD_SIZE", "2"}, {"MASTER_ADDR", "127.0.0.1"},
                                               {"MASTER_PORT", std::to_string(free_port())},
                                               {"TLORA_TEST_TIMEOUT_MS", "10000"}};
  auto as_rank = [&](const char* rank) {
    auto e = env;
    e["RANK"] = rank;
    return e;
  };
  group.launch({"join", "3000"}, as_rank("0"));
  group.launch({"join", "3000"}, as_rank("1"));
  // Once the group has formed (its store still up), a second process claims RANK 1.
  ASSERT_TRUE(group.wait_for_output(1, "sum of ranks 1", 30));
  group.launch({"join"}, as_rank("1"));
  const Outcome refused = group.wait(2, 30);
  EXPECT_EQ(refused.exit_code, 2) << refused.log;
  EXPECT_TRUE(contains(refused.log, "RANK=1 is claimed by two processes"));
  for (size_t i = 0; i < 2; ++i) {
    const Outcome member = group.wait(i, 30);
    EXPECT_EQ(member.exit_code, 0) << member.log;
  }
}

TEST_F(DistGroup, ARankThatNeverJoinsTimesOutTheRendezvous) {
  tlora::testing::TempDir dir;
  Group group(dir);
  group.launch({"join"}, {{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "127.0.0.1"},
                          {"MASTER_PORT", std::to_string(free_port())}, {"TLORA_TEST_TIMEOUT_MS", "1500"}});
  const Outcome alone = group.wait(0, 30);
  EXPECT_EQ(alone.exit_code, 2) << alone.log;
  EXPECT_TRUE(contains(alone.log, "rank 0 waited for rank 1 of WORLD_SIZE=2 to join at 127.0.0.1:"));
}

TEST_F(DistGroup, ThreeRanksReduceAndMeetAtABarrier) {
  tlora::testing::TempDir dir;
  for (const Outcome& o : Group::run(dir, {"join"}, 3, 10000, 60)) {
    EXPECT_EQ(o.exit_code, 0) << o.log;
    EXPECT_TRUE(contains(o.log, "sum of ranks 3"));
  }
}

}  // namespace
