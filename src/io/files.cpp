#include "tlora/io/files.h"

#include <c10/util/Exception.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace tlora {
namespace {

// Closes the descriptor on every path out, including the throwing ones.
struct Descriptor {
  int fd;
  ~Descriptor() { ::close(fd); }
};

std::string reason(int error) { return std::system_category().message(error); }

}  // namespace

std::string read_file(const std::filesystem::path& path, std::string_view what) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int error = errno;
    TORCH_CHECK(false, what, ": cannot open ", path, ": ", reason(error));
  }
  const Descriptor closer{fd};
  struct stat status {};
  TORCH_CHECK(::fstat(fd, &status) == 0 && S_ISREG(status.st_mode), what, ": ", path, " is not a regular file");
  std::string text(static_cast<size_t>(status.st_size), '\0');
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::read(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int error = n < 0 ? errno : 0;
      TORCH_CHECK(false, what, ": cannot read ", path, ": ", error ? reason(error) : "it shrank while read");
    }
    done += static_cast<size_t>(n);
  }
  return text;
}

}  // namespace tlora
