#pragma once
// Output directories that a run owns while it writes them.
//
// A command that writes a directory of files (bounds) creates it with create_output_directory()
// and holds a DirectoryLock on it while it runs: a second run into the same directory is refused
// at once instead of racing the first one file by file.

#include <filesystem>
#include <string>

namespace iclbench::io {

// Creates `dir` and its parents if missing. Throws IoError naming the path if it is empty, exists
// and is not a directory (a file, /dev/null), or cannot be created (a read-only file system, no
// permission).
void create_output_directory(const std::filesystem::path& dir);

// An exclusive advisory lock (flock) on the directory itself, held for the object's lifetime; the
// kernel releases it when the process ends, however it ends, so no stale lock file is possible.
class DirectoryLock {
 public:
  // Throws IoError "DIR is in use by another iclbench run" if another process holds it.
  explicit DirectoryLock(const std::filesystem::path& dir);
  ~DirectoryLock();
  DirectoryLock(const DirectoryLock&) = delete;
  DirectoryLock& operator=(const DirectoryLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace iclbench::io
