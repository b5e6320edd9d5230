// The few directory operations the run needs, on POSIX calls: LibTorch's bundled
// std::filesystem symbols make std::filesystem's operations unsafe in binaries that link it.
#pragma once

#include <string>

namespace glue_app {

// Whether something exists at `path`.
bool exists(const std::string& path);
// Whether `path` is a directory.
bool is_directory(const std::string& path);
// mkdir -p; throws naming the path and the system's reason.
void make_directories(const std::string& path);
// Removes a directory of plain files (the checkpoint folders have no subfolders), if present.
void remove_flat_directory(const std::string& path);
// Moves the finished folder `staging` to `target` so that a crash at any point leaves a complete
// `target` or a complete `target`.old, which recover_directory puts back.
void replace_directory(const std::string& staging, const std::string& target);
// Undoes a replace_directory interrupted between its two renames.
void recover_directory(const std::string& target);
// The whole contents of the file at `path`; throws naming it when it cannot be read.
std::string read_text(const std::string& path);
// Appends `line` and a newline to `path` and flushes it to disk.
void append_line(const std::string& path, const std::string& line);

}  // namespace glue_app
