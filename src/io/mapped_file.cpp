#include "io/mapped_file.h"

#include <c10/util/Exception.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace tlora::detail {

MappedFile map_file(const std::filesystem::path& path, std::string_view kind) {
  const auto fail = [&](std::string_view what, int error) {
    TORCH_CHECK(false, kind, " ", path, ": ", what, error ? ": " + std::system_category().message(error) : "");
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot open", errno);
  struct stat status {};
  const int stat_error = ::fstat(fd, &status) == 0 ? 0 : errno;
  if (stat_error != 0 || !S_ISREG(status.st_mode)) {
    ::close(fd);
    fail(stat_error != 0 ? "cannot stat" : "not a regular file", stat_error);
  }
  const auto size = static_cast<uint64_t>(status.st_size);
  if (size == 0) {  // mmap refuses 0 bytes; the format's reader says why the file is too short
    ::close(fd);
    return {};
  }
  void* address = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_error = errno;
  ::close(fd);  // the mapping keeps the file alive
  if (address == MAP_FAILED) fail("cannot map", map_error);
  return {std::shared_ptr<const void>(address, [size](const void* p) { ::munmap(const_cast<void*>(p), size); }),
          static_cast<const std::byte*>(address), size};
}

MappedFile own_bytes(std::string bytes) {
  auto owner = std::make_shared<const std::string>(std::move(bytes));
  const auto* start = reinterpret_cast<const std::byte*>(owner->data());
  const uint64_t size = owner->size();
  return {std::move(owner), start, size};
}

}  // namespace tlora::detail
