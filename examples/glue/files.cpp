// POSIX directory helpers.
#include "files.h"

#include "tlora/io/atomic_file.h"
#include "tlora/io/files.h"

#include <c10/util/Exception.h>

#include <cerrno>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <sstream>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace glue_app {
namespace {

std::string reason() { return std::strerror(errno); }

}  // namespace

bool exists(const std::string& path) {
  struct stat s {};
  return ::stat(path.c_str(), &s) == 0;
}

bool is_directory(const std::string& path) {
  struct stat s {};
  return ::stat(path.c_str(), &s) == 0 && S_ISDIR(s.st_mode);
}

void make_directories(const std::string& path) { tlora::create_directories(path, "tlora-glue"); }

void remove_flat_directory(const std::string& path) {
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) {
    TORCH_CHECK(errno == ENOENT, "cannot open the folder ", path, ": ", reason());
    return;
  }
  while (const dirent* entry = ::readdir(dir)) {
    const std::string name = entry->d_name;
    if (name == "." || name == "..") continue;
    const std::string file = path + "/" + name;
    if (::unlink(file.c_str()) != 0) {
      const std::string why = reason();
      ::closedir(dir);
      TORCH_CHECK(false, "cannot remove ", file, ": ", why);
    }
  }
  ::closedir(dir);
  TORCH_CHECK(::rmdir(path.c_str()) == 0, "cannot remove the folder ", path, ": ", reason());
}

void replace_directory(const std::string& staging, const std::string& target) {
  const std::string old = target + ".old";
  remove_flat_directory(old);
  if (exists(target))
    TORCH_CHECK(::rename(target.c_str(), old.c_str()) == 0, "cannot move ", target, " to ", old,
                ": ", reason());
  TORCH_CHECK(::rename(staging.c_str(), target.c_str()) == 0, "cannot move ", staging, " to ",
              target, ": ", reason());
  remove_flat_directory(old);
}

void recover_directory(const std::string& target) {
  const std::string old = target + ".old";
  if (!exists(target) && is_directory(old))
    TORCH_CHECK(::rename(old.c_str(), target.c_str()) == 0, "cannot move ", old, " back to ",
                target, ": ", reason());
}

std::string read_text(const std::string& path) { return tlora::read_file(path, "tlora-glue"); }

void append_line(const std::string& path, const std::string& line) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
  TORCH_CHECK(fd >= 0, "cannot open ", path, ": ", reason());
  const std::string text = line + "\n";
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string why = reason();
      ::close(fd);
      TORCH_CHECK(false, "cannot write ", path, ": ", why);
    }
    done += static_cast<size_t>(n);
  }
  const bool synced = ::fsync(fd) == 0;
  const std::string why = reason();
  TORCH_CHECK(::close(fd) == 0 && synced, "cannot write ", path, ": ", why);
}

}  // namespace glue_app
