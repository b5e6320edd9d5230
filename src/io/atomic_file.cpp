#include "tlora/io/atomic_file.h"

#include <c10/util/Exception.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <streambuf>
#include <string>
#include <system_error>
#include <utility>

namespace tlora {
namespace {

namespace fs = std::filesystem;

[[noreturn]] void fail(const fs::path& target, const std::string& step, int error) {
  TORCH_CHECK(false, "cannot write ", target, ": ", step, ": ",
              std::system_category().message(error));
}

// An output buffer over a file descriptor that keeps the first write error: std::ofstream would
// report only "failed" and lose errno, which is what tells a full disk from anything else.
class FdBuffer : public std::streambuf {
 public:
  explicit FdBuffer(int fd) : fd_(fd) { reset(); }

  int error() const { return error_; }

 protected:
  int_type overflow(int_type c) override {
    if (!drain()) return traits_type::eof();
    if (!traits_type::eq_int_type(c, traits_type::eof())) {
      *pptr() = traits_type::to_char_type(c);
      pbump(1);
    }
    return traits_type::not_eof(c);
  }

  // Large writes (tensor data) go straight to the file instead of through the buffer.
  std::streamsize xsputn(const char* data, std::streamsize n) override {
    if (n == 0) return 0;  // data may then be null, which memcpy must not see
    if (n <= epptr() - pptr()) {
      std::memcpy(pptr(), data, static_cast<size_t>(n));
      pbump(static_cast<int>(n));
      return n;
    }
    return drain() && write_all(data, static_cast<size_t>(n)) ? n : 0;
  }

  int sync() override { return drain() ? 0 : -1; }

 private:
  void reset() { setp(buffer_.data(), buffer_.data() + buffer_.size()); }

  bool drain() {
    const bool ok = write_all(pbase(), static_cast<size_t>(pptr() - pbase()));
    reset();
    return ok;
  }

  bool write_all(const char* data, size_t n) {
    while (error_ == 0 && n > 0) {
      const ssize_t written = ::write(fd_, data, n);
      if (written < 0) {
        if (errno != EINTR) error_ = errno;
        continue;
      }
      data += written;
      n -= static_cast<size_t>(written);
    }
    return error_ == 0;
  }

  int fd_;
  int error_ = 0;
  std::array<char, 1 << 16> buffer_;
};

// The temporary file next to the target; removed on destruction unless renamed over the target.
class TempFile {
 public:
  explicit TempFile(const fs::path& target) : target_(target) {
    // pid + counter names are unique among live writers; O_EXCL turns a leftover from a crashed
    // process into a retry instead of a clobber. The leading dot keeps it out of globs.
    static std::atomic<uint64_t> counter{0};
    for (int attempt = 0; attempt < 100; ++attempt) {
      std::string name = ".";
      name += target.filename().string();
      name += ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
      path_ = target.parent_path() / name;
      fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd_ >= 0) return;
      if (errno != EEXIST) break;
    }
    fail(target_, "cannot create a temporary file in its directory", errno);
  }

  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!renamed_) ::unlink(path_.c_str());
  }

  int fd() const { return fd_; }

  // Data reaches the disk before the rename makes it visible, so a crash leaves either the old
  // file or the complete new one; the directory sync makes the rename itself durable.
  void commit() {
    if (::fsync(fd_) != 0) fail(target_, "fsync of the temporary file failed", errno);
    if (::close(std::exchange(fd_, -1)) != 0) {
      fail(target_, "closing the temporary file failed", errno);
    }
    if (::rename(path_.c_str(), target_.c_str()) != 0) fail(target_, "rename failed", errno);
    renamed_ = true;
    sync_directory();
  }

 private:
  void sync_directory() const {
    const fs::path dir = target_.parent_path();
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) fail(target_, "written, but its directory could not be opened to sync", errno);
    // Some file systems cannot fsync a directory (EINVAL); the rename is then as durable as
    // they make it.
    const int error = ::fsync(fd) == 0 || errno == EINVAL ? 0 : errno;
    ::close(fd);
    if (error != 0) fail(target_, "written, but syncing its directory failed", error);
  }

  fs::path target_;
  fs::path path_;
  int fd_ = -1;
  bool renamed_ = false;
};

}  // namespace

void write_file_atomically(const fs::path& path, const std::function<void(std::ostream&)>& write) {
  TORCH_CHECK(path.has_filename(), "cannot write ", path, ": it does not name a file");
  const fs::path target = path.has_parent_path() ? path : fs::path(".") / path;
  // stat(2) rather than std::filesystem's operations: LibTorch exports its own copies of those,
  // built against a different libstdc++, and a program linking both may call either.
  struct stat status {};
  TORCH_CHECK(::stat(target.parent_path().c_str(), &status) == 0 && S_ISDIR(status.st_mode),
              "cannot write ", path, ": ", target.parent_path(), " is not an existing directory");

  TempFile temp(target);
  FdBuffer buffer(temp.fd());
  std::ostream out(&buffer);
  write(out);
  out.flush();
  if (buffer.error() != 0) fail(path, "writing the temporary file failed", buffer.error());
  TORCH_CHECK(out.good(), "cannot write ", path, ": the writer left the stream in a failed state");
  temp.commit();
}

void write_file_atomically(const fs::path& path, std::string_view bytes) {
  write_file_atomically(path, [bytes](std::ostream& out) {
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  });
}

// With POSIX calls: std::filesystem's operations clash with LibTorch's own copies.
void create_directories(const std::filesystem::path& dir, std::string_view caller) {
  const std::string path = dir.string();
  for (size_t end = path.find('/', 1);; end = path.find('/', end + 1)) {
    const std::string prefix = path.substr(0, end);
    if (!prefix.empty() && ::mkdir(prefix.c_str(), 0777) != 0 && errno != EEXIST) {
      const int error = errno;
      TORCH_CHECK(false, caller, ": cannot create the directory \"", prefix, "\": ", std::system_category().message(error));
    }
    if (end == std::string::npos) break;
  }
  struct stat status {};
  TORCH_CHECK(::stat(path.c_str(), &status) == 0 && S_ISDIR(status.st_mode), caller, ": ", dir, " is not a directory");
}

}  // namespace tlora
