#include "io/output_directory.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

#include "io/atomic_file.hpp"

namespace iclbench::io {

void create_output_directory(const std::filesystem::path& dir) {
  if (dir.empty()) throw IoError("output directory path is empty");
  struct stat info {};
  if (::stat(dir.c_str(), &info) == 0) {
    if (!S_ISDIR(info.st_mode)) throw IoError("cannot write into " + dir.string() + ": not a directory");
    return;
  }
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) throw IoError("cannot create directory " + dir.string() + ": " + error.message());
}

DirectoryLock::DirectoryLock(const std::filesystem::path& dir) {
  fd_ = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd_ < 0) throw IoError("cannot open directory " + dir.string() + ": " + std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    if (err == EWOULDBLOCK) throw IoError(dir.string() + " is in use by another iclbench run");
    throw IoError("cannot lock directory " + dir.string() + ": " + std::strerror(err));
  }
}

DirectoryLock::~DirectoryLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the lock
}

}  // namespace iclbench::io
