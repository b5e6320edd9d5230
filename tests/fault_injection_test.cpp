// Failures injected into checkpoint and results writes: a full disk, a read-only file system, no
// permission, a writer killed mid-save. Each must leave the previous checkpoint (or results
// file) intact and readable, and each failed write must be reported with its path and the
// system's reason.
#include "fault_model.h"
#include "test_util.h"
#include "tlora/io/atomic_file.h"
#include "tlora/io/checkpoint.h"
#include "tlora/io/safetensors.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <gtest/gtest.h>

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

namespace fs = std::filesystem;
using tlora::testing::contains;
using tlora::testing::error_of;
using tlora::testing::fault_base_model;
using tlora::testing::fault_model;
using tlora::testing::fault_save_options;
using tlora::testing::read_file;

// A scratch folder removed with everything in it (POSIX calls: see test_util.h).
class ScratchDir {
 public:
  ScratchDir() {
    std::string pattern = ::testing::TempDir() + "tlora_fault_XXXXXX";
    EXPECT_NE(::mkdtemp(pattern.data()), nullptr);
    path_ = pattern;
  }
  ~ScratchDir() {
    const auto remove = [](const char* p, const struct stat*, int, FTW*) { return ::remove(p); };
    ::nftw(path_.c_str(), remove, 16, FTW_DEPTH | FTW_PHYS);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// A small tmpfs mounted on a scratch folder: a file system that really fills up (or turns
// read-only), unlike RLIMIT_FSIZE, which fails with EFBIG. Needs CAP_SYS_ADMIN.
class SmallFileSystem {
 public:
  explicit SmallFileSystem(const char* size) {
    const std::string options = std::string("size=") + size + ",mode=0755";
    if (::mount("tmpfs", dir_.path().c_str(), "tmpfs", 0, options.c_str()) == 0) {
      mounted_ = true;
    } else {
      error_ = std::strerror(errno);
    }
  }
  ~SmallFileSystem() {
    if (mounted_) ::umount2(dir_.path().c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  const std::string& error() const { return error_; }
  const fs::path& path() const { return dir_.path(); }

  // Writes a file that takes all the space left; the write that fails must say ENOSPC.
  void fill() const {
    const fs::path filler = path() / "filler";
    const int fd = ::open(filler.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    const std::vector<char> block(4096, 'x');
    int error = 0;
    while (error == 0) {
      if (::write(fd, block.data(), block.size()) < 0) error = errno;
    }
    ::close(fd);
    ASSERT_EQ(error, ENOSPC) << std::strerror(error);
  }

  void remount_read_only() const {
    ASSERT_EQ(::mount(nullptr, path().c_str(), nullptr, MS_REMOUNT | MS_RDONLY, nullptr), 0)
        << std::strerror(errno);
  }

 private:
  ScratchDir dir_;
  bool mounted_ = false;
  std::string error_;
};

#define REQUIRE_MOUNTED(disk)                                                                \
  if (!(disk).mounted()) GTEST_SKIP() << "cannot mount a tmpfs (needs CAP_SYS_ADMIN): " << (disk).error()

std::vector<std::string> entries(const fs::path& dir) {
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

void save_version(int64_t version, const fs::path& dir) {
  tlora::save_adapter(*fault_model(version), dir, fault_save_options());
}

// Whether the checkpoint in `dir` loads into the base model as exactly version `version`:
// every parameter and buffer bit for bit.
::testing::AssertionResult loads_as(const fs::path& dir, int64_t version) {
  auto loaded = fault_base_model();
  tlora::load_adapter(*loaded, dir);
  const auto expected = fault_model(version);
  const auto actual_parameters = loaded->named_parameters();
  for (const auto& p : expected->named_parameters()) {
    const at::Tensor* actual = actual_parameters.find(p.key());
    if (actual == nullptr || !at::equal(*actual, p.value())) {
      return ::testing::AssertionFailure() << "parameter " << p.key() << " is not version " << version;
    }
  }
  const auto actual_buffers = loaded->named_buffers();
  for (const auto& b : expected->named_buffers()) {
    const at::Tensor* actual = actual_buffers.find(b.key());
    if (actual == nullptr || !at::equal(*actual, b.value())) {
      return ::testing::AssertionFailure() << "buffer " << b.key() << " is not version " << version;
    }
  }
  return ::testing::AssertionSuccess();
}

const std::vector<std::string> kCheckpointFiles{tlora::kAdapterConfigFile, tlora::kAdapterModelFile};

TEST(FaultInjection, AFullDiskKeepsThePreviousCheckpointAndNamesTheFile) {
  SmallFileSystem disk("2m");
  REQUIRE_MOUNTED(disk);
  const fs::path dir = disk.path() / "checkpoint";
  save_version(1, dir);
  disk.fill();

  const std::string message = error_of([&] { save_version(2, dir); });
  EXPECT_TRUE(contains(message, (dir / tlora::kAdapterModelFile).string()));
  EXPECT_TRUE(contains(message, "No space left on device"));
  EXPECT_EQ(entries(dir), kCheckpointFiles);  // no temporary file left behind
  EXPECT_TRUE(loads_as(dir, 1));
}

TEST(FaultInjection, AFullDiskDuringResultsWritingIsReportedAndKeepsTheOldResults) {
  SmallFileSystem disk("64k");
  REQUIRE_MOUNTED(disk);
  const fs::path results = disk.path() / "results.json";
  const std::string old_results = R"({"task": "rte", "accuracy": 0.5})";
  tlora::write_file_atomically(results, old_results);
  disk.fill();

  const std::string message = error_of([&] {
    tlora::write_file_atomically(results, std::string(R"({"task": "rte", "accuracy": 0.75})"));
  });
  EXPECT_TRUE(contains(message, results.string()));
  EXPECT_TRUE(contains(message, "No space left on device"));
  EXPECT_EQ(read_file(results), old_results);
  EXPECT_EQ(entries(disk.path()), (std::vector<std::string>{"filler", "results.json"}));
}

TEST(FaultInjection, AReadOnlyFileSystemKeepsThePreviousCheckpoint) {
  SmallFileSystem disk("2m");
  REQUIRE_MOUNTED(disk);
  const fs::path dir = disk.path() / "checkpoint";
  save_version(1, dir);
  disk.remount_read_only();

  const std::string message = error_of([&] { save_version(2, dir); });
  EXPECT_TRUE(contains(message, (dir / tlora::kAdapterModelFile).string()));
  EXPECT_TRUE(contains(message, "Read-only file system"));
  EXPECT_TRUE(loads_as(dir, 1));
}

// Root passes every permission check, so as root the save runs with the effective user id of
// `nobody` (the saved set-user-id keeps the way back); otherwise the folder is made read-only.
class WithoutWritePermission {
 public:
  explicit WithoutWritePermission(const fs::path& dir) : dir_(dir) {
    if (::geteuid() == 0) {
      EXPECT_EQ(::seteuid(65534), 0) << std::strerror(errno);
      dropped_ = true;
    } else {
      EXPECT_EQ(::chmod(dir.c_str(), 0555), 0) << std::strerror(errno);
    }
  }
  ~WithoutWritePermission() {
    if (dropped_) {
      EXPECT_EQ(::seteuid(0), 0) << std::strerror(errno);
    } else {
      ::chmod(dir_.c_str(), 0755);
    }
  }
  WithoutWritePermission(const WithoutWritePermission&) = delete;
  WithoutWritePermission& operator=(const WithoutWritePermission&) = delete;

 private:
  fs::path dir_;
  bool dropped_ = false;
};

TEST(FaultInjection, NoWritePermissionKeepsThePreviousCheckpoint) {
  ScratchDir scratch;
  ASSERT_EQ(::chmod(scratch.path().c_str(), 0755), 0);  // others may look inside, not write
  const fs::path dir = scratch.path() / "checkpoint";
  save_version(1, dir);
  ASSERT_EQ(::chmod(dir.c_str(), 0755), 0);

  std::string message;
  {
    const WithoutWritePermission guard(dir);
    message = error_of([&] { save_version(2, dir); });
  }
  EXPECT_TRUE(contains(message, (dir / tlora::kAdapterModelFile).string()));
  EXPECT_TRUE(contains(message, "Permission denied"));
  EXPECT_EQ(entries(dir), kCheckpointFiles);
  EXPECT_TRUE(loads_as(dir, 1));
}

// The state a save killed between its two atomic writes leaves: the new tensor file beside the
// old config. The tensor file carries its own config, so the new checkpoint loads, whole.
TEST(FaultInjection, ASaveInterruptedBetweenItsTwoWritesLoadsTheNewTensorFile) {
  ScratchDir scratch;
  const fs::path dir = scratch.path() / "checkpoint", next = scratch.path() / "next";
  save_version(1, dir);
  save_version(2, next);
  tlora::write_file_atomically(dir / tlora::kAdapterModelFile, read_file(next / tlora::kAdapterModelFile));
  ASSERT_NE(read_file(dir / tlora::kAdapterConfigFile), read_file(next / tlora::kAdapterConfigFile));
  EXPECT_TRUE(loads_as(dir, 2));

  // Tensors that match neither config are still refused.
  std::string bytes = read_file(dir / tlora::kAdapterModelFile);
  bytes.back() = static_cast<char>(bytes.back() ^ 1);
  tlora::write_file_atomically(dir / tlora::kAdapterModelFile, bytes);
  EXPECT_TRUE(contains(error_of([&] { loads_as(dir, 2); }), "do not match tensors_checksum"));
}

// A writer process saving version after version, killed with SIGKILL at random moments: the
// checkpoint it leaves must load as the last version whose save returned or as the one in
// flight, bit for bit.
TEST(FaultInjection, AWriterKilledMidSaveLeavesTheLastOrTheNextCheckpoint) {
  ScratchDir scratch;
  const fs::path dir = scratch.path() / "checkpoint";
  save_version(0, dir);
  int64_t completed = 0;  // the newest version whose save returned
  std::mt19937 random(20261201);
  constexpr int kRounds = 12;
  int interrupted_between_writes = 0;

  for (int round = 0; round < kRounds; ++round) {
    const int64_t first = 1 + round * 1'000'000;
    int out[2];
    ASSERT_EQ(::pipe(out), 0);
    posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    ::posix_spawn_file_actions_addclose(&actions, out[0]);
    const std::string first_arg = std::to_string(first);
    const char* argv[] = {TLORA_CHECKPOINT_WRITER, dir.c_str(), first_arg.c_str(), nullptr};
    pid_t child = 0;
    ASSERT_EQ(::posix_spawn(&child, TLORA_CHECKPOINT_WRITER, &actions, nullptr,
                            const_cast<char* const*>(argv), environ),
              0);
    ::posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);

    // Wait for its first completed save (the start-up is slow and not what is tested), then
    // let it run a random few more before the kill.
    std::string printed;
    char buffer[256];
    while (printed.find('\n') == std::string::npos) {
      const ssize_t n = ::read(out[0], buffer, sizeof buffer);
      ASSERT_GT(n, 0) << "the writer exited before its first save";
      printed.append(buffer, static_cast<size_t>(n));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(
        std::uniform_int_distribution<int>(0, 60'000)(random)));
    ASSERT_EQ(::kill(child, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;
    for (ssize_t n; (n = ::read(out[0], buffer, sizeof buffer)) > 0;) {
      printed.append(buffer, static_cast<size_t>(n));
    }
    ::close(out[0]);

    int64_t last = completed;
    for (size_t start = 0, end; (end = printed.find('\n', start)) != std::string::npos; start = end + 1) {
      last = std::stoll(printed.substr(start, end - start));
    }
    const int64_t in_flight = last == completed ? first : last + 1;
    const auto config = read_file(dir / tlora::kAdapterConfigFile);
    const auto embedded = tlora::safetensors::File::open(dir / tlora::kAdapterModelFile)
                              .metadata().at("tlora.adapter_config");
    if (config != embedded) ++interrupted_between_writes;
    const bool as_last = loads_as(dir, last);
    EXPECT_TRUE(as_last || loads_as(dir, in_flight))
        << "round " << round << ": neither version " << last << " nor " << in_flight;
    completed = as_last ? last : in_flight;
  }
  RecordProperty("rounds", kRounds);
  RecordProperty("killed_between_the_two_writes", interrupted_between_writes);
  std::printf("%d of %d kills landed between the tensor and the config write\n",
              interrupted_between_writes, kRounds);
}

}  // namespace
