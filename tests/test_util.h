// Helpers shared by the test suites.
#pragma once

#include <c10/util/Exception.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <string_view>
#include <unistd.h>
#include <vector>

namespace tlora::testing {

/// The message of the c10::Error that `f` throws, without backtrace; a test failure if none.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  }
  ADD_FAILURE() << "no c10::Error was thrown";
  return "no error";
}

/// Success when `part` occurs in `text`, otherwise a failure that shows both.
inline ::testing::AssertionResult contains(const std::string& text, std::string_view part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << part << "\" not in: " << text;
}

/// The whole file as bytes.
inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

/// A scratch folder, removed with the files written through it. POSIX calls, because
/// std::filesystem operations are unsafe next to LibTorch's own copy of them.
class TempDir {
 public:
  TempDir() {
    std::string pattern = ::testing::TempDir() + "tlora_test_XXXXXX";
    EXPECT_NE(::mkdtemp(pattern.data()), nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    for (const auto& f : files_) ::unlink(f.c_str());
    ::rmdir(path_.c_str());
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  /// Writes `bytes` to `name` inside the folder and returns its path.
  std::filesystem::path write(const std::string& name, const std::string& bytes) {
    const std::filesystem::path p = path_ / name;
    std::ofstream(p, std::ios::binary) << bytes;
    files_.push_back(p);
    return p;
  }
  /// The path of `name` inside the folder, for a file that something else writes (a child
  /// process); removed with the folder like those written through write().
  std::filesystem::path adopt(const std::string& name) {
    files_.push_back(path_ / name);
    return files_.back();
  }
  /// The folder.
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  std::vector<std::filesystem::path> files_;
};

}  // namespace tlora::testing
