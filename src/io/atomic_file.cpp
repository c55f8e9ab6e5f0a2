#include "io/atomic_file.hpp"

#include <fcntl.h>
#include <sys/file.h>  // flock
#include <signal.h>
#include <stdio.h>  // renameat2, RENAME_NOREPLACE
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <mutex>
#include <optional>
#include <string_view>
#include <utility>

#include "io/process.hpp"

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

// While a SignalHold lives, a cleanup signal is recorded here instead of ending the process;
// the last hold to end delivers it.
std::atomic<int> g_holds{0};
std::atomic<int> g_held_signal{0};

extern "C" void remove_temp_files_and_reraise(int signal_number) {
  if (g_holds.load() > 0) {
    g_held_signal.store(signal_number);
    return;
  }
  // A helper (the plot script) gets the interrupt too, when it was sent to iclbench alone.
  if (const int child = running_child_pid(); child > 0) ::kill(child, signal_number);
  for (auto& slot : g_pending_temp_files) {
    if (const char* path = slot.load()) unlink(path);
  }
  ::signal(signal_number, SIG_DFL);
  ::raise(signal_number);
}

}  // namespace

SignalHold::SignalHold() { g_holds.fetch_add(1); }

SignalHold::~SignalHold() {
  // A signal that lands between the decrement and the exchange is handled at once (no hold is
  // left), and the exchange then finds nothing or the same signal: either way it ends the process.
  if (g_holds.fetch_sub(1) == 1) {
    if (const int held = g_held_signal.exchange(0); held != 0) remove_temp_files_and_reraise(held);
  }
}

AtomicFile::AtomicFile(std::filesystem::path final_path, Overwrite overwrite)
    : final_path_(std::move(final_path)), overwrite_(overwrite) {
  if (final_path_.empty()) throw IoError("output path is empty");
  struct stat existing {};
  // The rename at commit() would replace a symbolic link itself, not its target (e.g. turning
  // /dev/stdout into a regular file), dangling or not: like any non-regular file it is never
  // replaced, --force or not.
  if (::lstat(final_path_.c_str(), &existing) == 0 && S_ISLNK(existing.st_mode)) {
    throw IoError("cannot replace " + final_path_.string() + ": it is a symbolic link (only regular files are replaced)");
  }
  if (::stat(final_path_.c_str(), &existing) == 0) {
    if (S_ISDIR(existing.st_mode)) {
      throw IoError("cannot write " + final_path_.string() + ": it is a directory");
    }
    if (!S_ISREG(existing.st_mode)) {
      throw IoError("cannot replace " + final_path_.string() + ": not a regular file");
    }
    if (overwrite_ == Overwrite::kRefuse) {
      throw OutputExistsError("refusing to overwrite existing file " + final_path_.string());
    }
  }
  const std::filesystem::path dir =
      final_path_.has_parent_path() ? final_path_.parent_path() : std::filesystem::path(".");
  remove_stale_temp_files(dir);
  // ".NAME.iclbench-tmp.PID.XXXXXX": the pid lets a later run tell a killed writer's file from a
  // live one; the marker, that no user's ".notes.tmp.123.backup" is taken for one (temp_file_owner).
  std::string temp_name = ".";
  temp_name += final_path_.filename().string();
  temp_name += std::string(kTempMarker) + std::to_string(::getpid()) + ".XXXXXX";
  std::string pattern = (dir / temp_name).string();
  fd_ = ::mkstemp(pattern.data());
  if (fd_ < 0) throw IoError(os_error("cannot create a file in", dir, errno));
  temp_path_ = pattern;
  // Held while the temporary file exists: a run in another pid namespace (a container, another host
  // over NFS) cannot see this pid, but it can see the lock (remove_stale_temp_files).
  ::flock(fd_, LOCK_EX | LOCK_NB);
  signal_slot_ = register_temp_file(temp_path_);
  ::fchmod(fd_, 0644);  // mkstemp makes 0600; outputs are ordinary files
}

AtomicFile::~AtomicFile() { discard(); }

void AtomicFile::discard() noexcept {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  if (lock_fd_ >= 0) {
    ::close(lock_fd_);
    lock_fd_ = -1;
  }
  if (!published_ && !temp_path_.empty()) ::unlink(temp_path_.c_str());
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

void AtomicFile::finish() {
  if (::fsync(fd_) != 0) throw IoError(os_error("cannot flush", final_path_, errno));
  // The lock belongs to the open file, not to fd_: a duplicate keeps it until publish() has renamed
  // the file, while the close below still reports a write error (NFS reports some only there).
  lock_fd_ = ::dup(fd_);
  if (::close(fd_) != 0) {
    fd_ = -1;
    ::unlink(temp_path_.c_str());
    throw IoError(os_error("cannot close", final_path_, errno));
  }
  fd_ = -1;
}

void AtomicFile::publish() {
  published_ = true;  // from here on the temporary file is renamed or removed below
  // The check in the constructor can race with another writer; RENAME_NOREPLACE cannot. Tried
  // first with overwriting allowed too, so that unpublish() knows whether the file is new.
  int renamed = ::renameat2(AT_FDCWD, temp_path_.c_str(), AT_FDCWD, final_path_.c_str(),
                            RENAME_NOREPLACE);
  // EINVAL: a file system without RENAME_NOREPLACE; whether the file is new is then unknown, so
  // unpublish() keeps it.
  if (renamed != 0 && (errno == EEXIST || errno == EINVAL) && overwrite_ == Overwrite::kAllow) {
    replaced_ = true;
    renamed = ::rename(temp_path_.c_str(), final_path_.c_str());
  }
  if (renamed != 0) {
    const int err = errno;
    ::unlink(temp_path_.c_str());
    ::close(lock_fd_);
    lock_fd_ = -1;
    release_temp_file(signal_slot_);
    signal_slot_ = -1;
    if (err == EEXIST) {
      throw OutputExistsError("refusing to overwrite existing file " + final_path_.string());
    }
    throw IoError(os_error("cannot rename the finished file to", final_path_, err));
  }
  release_temp_file(signal_slot_);
  signal_slot_ = -1;
  ::close(lock_fd_);
  lock_fd_ = -1;
}

void AtomicFile::unpublish() noexcept {
  if (published_ && !replaced_) ::unlink(final_path_.c_str());
}

void commit_together(std::initializer_list<AtomicFile*> files) {
  for (AtomicFile* file : files)
    if (file != nullptr) file->finish();
  // The renames are separate system calls: hold the cleanup signals until they are all done, and
  // take back the new files already in place when one of them fails.
  const SignalHold hold;
  std::vector<AtomicFile*> published;
  try {
    for (AtomicFile* file : files) {
      if (file == nullptr) continue;
      file->publish();
      published.push_back(file);
    }
  } catch (...) {
    for (AtomicFile* file : published) file->unpublish();
    throw;
  }
}

namespace {

// The file `path` names, if it exists: (device, inode).
std::optional<std::pair<dev_t, ino_t>> file_identity(const std::filesystem::path& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) return std::nullopt;
  return std::pair{info.st_dev, info.st_ino};
}

// Where writing `path` would land: symbolic links followed even when they point at nothing yet
// (weakly_canonical stops at a dangling link), then made absolute and normal.
std::filesystem::path landing_path(std::filesystem::path path) {
  std::error_code error;
  for (int hops = 0; hops < 40 && std::filesystem::is_symlink(path, error); ++hops) {
    const std::filesystem::path target = std::filesystem::read_symlink(path, error);
    if (error) break;
    path = target.is_absolute() ? target : path.parent_path() / target;
  }
  const std::filesystem::path canonical = std::filesystem::weakly_canonical(path, error);
  return error ? std::filesystem::absolute(path, error).lexically_normal() : canonical;
}

bool same_file(const std::filesystem::path& a, const std::filesystem::path& b) {
  const auto id_a = file_identity(a), id_b = file_identity(b);
  if (id_a && id_b) return *id_a == *id_b;
  return landing_path(a) == landing_path(b);  // not (both) there yet
}

}  // namespace

void check_outputs(const std::vector<std::filesystem::path>& outputs,
                   const std::vector<std::filesystem::path>& inputs) {
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    if (outputs[i].empty()) continue;
    for (std::size_t j = 0; j < i; ++j) {
      if (!outputs[j].empty() && same_file(outputs[i], outputs[j])) {
        throw IoError("two outputs are one file: " + outputs[j].string() + " and " + outputs[i].string());
      }
    }
    for (const std::filesystem::path& input : inputs) {
      if (!input.empty() && same_file(outputs[i], input)) {
        throw IoError("output " + outputs[i].string() + " is an input of the same command (" + input.string() +
                      "); it is never replaced");
      }
    }
  }
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

std::optional<long> temp_file_owner(std::string_view name) {
  // The whole name must be one iclbench makes: "." NAME kTempMarker PID "." SUFFIX, NAME not
  // empty, PID decimal digits, SUFFIX mkstemp's six letters or digits, or "py" (the plot script).
  const std::size_t marker = name.rfind(kTempMarker);
  if (name.size() < 2 || name.front() != '.' || marker == std::string_view::npos || marker < 2) {
    return std::nullopt;
  }
  const std::string_view rest = name.substr(marker + kTempMarker.size());  // PID.SUFFIX
  const std::size_t dot = rest.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  const std::string_view pid_text = rest.substr(0, dot), suffix = rest.substr(dot + 1);
  const bool mkstemp_suffix = suffix.size() == 6 && std::all_of(suffix.begin(), suffix.end(), [](char c) {
                                return std::isalnum(static_cast<unsigned char>(c)) != 0;
                              });
  if (!mkstemp_suffix && suffix != "py") return std::nullopt;
  // Canonical decimal, as std::to_string writes it: "099995" is no name iclbench makes.
  if (pid_text.empty() || pid_text.front() == '0' || !std::all_of(pid_text.begin(), pid_text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  long pid = 0;
  const auto [end, error] = std::from_chars(pid_text.data(), pid_text.data() + pid_text.size(), pid);
  if (error != std::errc() || end != pid_text.data() + pid_text.size() || pid <= 0) return std::nullopt;
  return pid;
}

void remove_stale_temp_files(const std::filesystem::path& dir) noexcept {
  std::error_code error;
  for (std::filesystem::directory_iterator it(dir, error), end; !error && it != end; it.increment(error)) {
    const std::optional<long> owner = temp_file_owner(it->path().filename().string());
    if (!owner) continue;
    // Gone (ESRCH), not merely another user's (EPERM): only then may nobody be writing the file.
    if (::kill(static_cast<pid_t>(*owner), 0) == 0 || errno != ESRCH) continue;
    // A pid unknown here may still live in another pid namespace (a container, another host
    // sharing the directory over NFS): the writer holds an flock on its temporary file for as long
    // as it exists, so a file whose lock can be taken is truly abandoned.
    const int fd = ::open(it->path().c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) continue;
    struct stat opened {}, named {};
    if (::fstat(fd, &opened) == 0 && S_ISREG(opened.st_mode) && opened.st_uid == ::getuid() &&
        ::flock(fd, LOCK_EX | LOCK_NB) == 0 && ::lstat(it->path().c_str(), &named) == 0 &&
        named.st_dev == opened.st_dev && named.st_ino == opened.st_ino) {
      ::unlink(it->path().c_str());  // under the lock, and still the file that was checked
    }
    ::close(fd);
  }
}

void install_signal_cleanup() {
  struct sigaction action {};
  action.sa_handler = remove_temp_files_and_reraise;
  sigemptyset(&action.sa_mask);
  for (int signal_number : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(signal_number, &action, nullptr);
}

}  // namespace iclbench::io
