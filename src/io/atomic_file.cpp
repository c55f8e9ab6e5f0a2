#include "io/atomic_file.hpp"

#include "io/process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>  // renameat2, RENAME_NOREPLACE
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>

namespace iclbench::io {
namespace {

std::string os_error(const std::string& what, const std::filesystem::path& path, int err) {
  return what + " " + path.string() + ": " + std::strerror(err);
}

// Temporary files still to delete if a signal arrives. The handler may only read these slots, so
// each holds a heap copy of the path that stays alive until the slot is released.
constexpr int kSignalSlots = 64;
std::array<std::atomic<const char*>, kSignalSlots> g_pending_temp_files{};
std::mutex g_slot_mutex;

int register_temp_file(const std::filesystem::path& path) {
  std::lock_guard lock(g_slot_mutex);
  for (int i = 0; i < kSignalSlots; ++i) {
    if (g_pending_temp_files[i].load() == nullptr) {
      g_pending_temp_files[i].store(strdup(path.c_str()));
      return i;
    }
  }
  return -1;  // more than 64 open outputs: still correct, only not cleaned on a signal
}

void release_temp_file(int slot) {
  if (slot < 0) return;
  std::lock_guard lock(g_slot_mutex);
  const char* path = g_pending_temp_files[slot].exchange(nullptr);
  free(const_cast<char*>(path));
}

extern "C" void remove_temp_files_and_reraise(int signal_number) {
  // A helper (the plot script) gets the interrupt too, when it was sent to iclbench alone.
  if (const int child = running_child_pid(); child > 0) ::kill(child, signal_number);
  for (auto& slot : g_pending_temp_files) {
    if (const char* path = slot.load()) unlink(path);
  }
  ::signal(signal_number, SIG_DFL);
  ::raise(signal_number);
}

}  // namespace

AtomicFile::AtomicFile(std::filesystem::path final_path, Overwrite overwrite)
    : final_path_(std::move(final_path)), overwrite_(overwrite) {
  if (final_path_.empty()) throw IoError("output path is empty");
  struct stat existing {};
  if (::stat(final_path_.c_str(), &existing) == 0) {
    if (S_ISDIR(existing.st_mode)) {
      throw IoError("cannot write " + final_path_.string() + ": it is a directory");
    }
    if (overwrite_ == Overwrite::kRefuse) {
      throw OutputExistsError("refusing to overwrite existing file " + final_path_.string());
    }
  }
  const std::filesystem::path dir =
      final_path_.has_parent_path() ? final_path_.parent_path() : std::filesystem::path(".");
  std::string temp_name = ".";
  temp_name += final_path_.filename().string();
  temp_name += ".tmp.XXXXXX";
  std::string pattern = (dir / temp_name).string();
  fd_ = ::mkstemp(pattern.data());
  if (fd_ < 0) throw IoError(os_error("cannot create a file in", dir, errno));
  temp_path_ = pattern;
  signal_slot_ = register_temp_file(temp_path_);
  ::fchmod(fd_, 0644);  // mkstemp makes 0600; outputs are ordinary files
}

AtomicFile::~AtomicFile() { discard(); }

void AtomicFile::discard() noexcept {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
    ::unlink(temp_path_.c_str());
  }
  release_temp_file(signal_slot_);
  signal_slot_ = -1;
}

void AtomicFile::write_at(std::uint64_t offset, std::span<const std::byte> bytes) {
  const std::byte* src = bytes.data();
  std::size_t left = bytes.size();
  while (left > 0) {
    const ssize_t written = ::pwrite(fd_, src, left, static_cast<off_t>(offset));
    if (written < 0) {
      if (errno == EINTR) continue;
      throw IoError(os_error("cannot write", final_path_, errno));
    }
    src += written;
    left -= static_cast<std::size_t>(written);
    offset += static_cast<std::uint64_t>(written);
  }
}

void AtomicFile::write_at(std::uint64_t offset, std::string_view text) {
  write_at(offset, std::as_bytes(std::span(text.data(), text.size())));
}

void AtomicFile::reserve(std::uint64_t size) {
  const int err = ::posix_fallocate(fd_, 0, static_cast<off_t>(size));
  if (err != 0 && err != EOPNOTSUPP && err != EINVAL) {
    throw IoError(os_error("cannot reserve " + std::to_string(size) + " bytes for", final_path_,
                           err));
  }
}

void AtomicFile::commit() {
  if (::fsync(fd_) != 0) throw IoError(os_error("cannot flush", final_path_, errno));
  if (::close(fd_) != 0) {
    fd_ = -1;
    ::unlink(temp_path_.c_str());
    throw IoError(os_error("cannot close", final_path_, errno));
  }
  fd_ = -1;
  int renamed;
  if (overwrite_ == Overwrite::kRefuse) {
    // The check in the constructor can race with another writer; this one cannot.
    renamed = ::renameat2(AT_FDCWD, temp_path_.c_str(), AT_FDCWD, final_path_.c_str(),
                          RENAME_NOREPLACE);
  } else {
    renamed = ::rename(temp_path_.c_str(), final_path_.c_str());
  }
  if (renamed != 0) {
    const int err = errno;
    ::unlink(temp_path_.c_str());
    release_temp_file(signal_slot_);
    signal_slot_ = -1;
    if (err == EEXIST) {
      throw OutputExistsError("refusing to overwrite existing file " + final_path_.string());
    }
    throw IoError(os_error("cannot rename the finished file to", final_path_, err));
  }
  release_temp_file(signal_slot_);
  signal_slot_ = -1;
}

void write_file_atomically(const std::filesystem::path& path, std::string_view contents,
                           Overwrite overwrite) {
  AtomicFile file(path, overwrite);
  file.write_at(0, contents);
  file.commit();
}

void check_can_write(const std::filesystem::path& path, Overwrite overwrite) {
  AtomicFile probe(path, overwrite);  // creates (and, destroyed uncommitted, removes) a temp file
}

void install_signal_cleanup() {
  struct sigaction action {};
  action.sa_handler = remove_temp_files_and_reraise;
  sigemptyset(&action.sa_mask);
  for (int signal_number : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(signal_number, &action, nullptr);
}

}  // namespace iclbench::io
