#pragma once
// Files that appear whole or not at all.
//
// Every file the suite writes goes through AtomicFile: the bytes go to a temporary file in the
// destination directory (hidden, named after the final file and the writer's pid), which is
// fsync'ed and renamed over the final path only on commit(). An
// exception, an early return or SIGINT/SIGTERM before commit() leaves no file behind, and a file
// that already sits at the final path is never touched unless overwriting was asked for.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "util/text.hpp"

namespace iclbench::io {

// A file could not be created, written or renamed; the message names the path and the OS error.
class IoError : public std::runtime_error {
 public:
  // Escaped as util::ParameterError's: a NUL in user input must not cut what() short.
  explicit IoError(const std::string& message) : std::runtime_error(util::escape_control(message)) {}
};

// The final path exists and overwriting was not allowed (Overwrite::kRefuse).
class OutputExistsError : public IoError {
 public:
  using IoError::IoError;
};

enum class Overwrite { kRefuse, kAllow };

class AtomicFile {
 public:
  // Creates the temporary file at once, so that an unwritable directory or an existing final
  // file (with Overwrite::kRefuse) is reported before any expensive work starts. An existing
  // final path that is not a regular file (a directory, a device such as /dev/null, a FIFO) is
  // refused even with Overwrite::kAllow: renaming over it would replace it.
  AtomicFile(std::filesystem::path final_path, Overwrite overwrite);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // Positional write (pwrite): safe to call from several threads for disjoint ranges.
  void write_at(std::uint64_t offset, std::span<const std::byte> bytes);
  void write_at(std::uint64_t offset, std::string_view text);
  // Sets the size up front so that a full disk is found now rather than half-way through.
  void reserve(std::uint64_t size);

  // fsync, then rename to the final path. After commit() the object owns nothing.
  void commit() {
    finish();
    publish();
  }
  // The two halves of commit(), for commit_together(): finish() flushes and closes the
  // temporary file (a full disk or an I/O error shows here), publish() renames it into place.
  void finish();
  void publish();
  // After publish(): removes the final file again if publish() created it (it replaced nothing).
  // A file that replaced an older one stays: the older contents are gone.
  void unpublish() noexcept;

  const std::filesystem::path& final_path() const { return final_path_; }
  const std::filesystem::path& temp_path() const { return temp_path_; }

 private:
  void discard() noexcept;

  std::filesystem::path final_path_;
  std::filesystem::path temp_path_;
  Overwrite overwrite_;
  int fd_ = -1;
  int lock_fd_ = -1;  // after finish(): keeps the temporary file's flock until publish()
  int signal_slot_ = -1;
  bool published_ = false;
  bool replaced_ = false;  // publish() renamed over an existing file
};

// Commits the outputs of one command together: every file is finished (flushed) before any is
// renamed, so a failure while writing any of them (a full disk) leaves none of them behind.
// Null entries (an output not asked for) are skipped.
//
// The renames that follow are one system call per file, not one atomic step, so the set is
// all-or-nothing only against what this process can see: a rename that fails (another writer
// took a name first under Overwrite::kRefuse) removes the files this call had already renamed
// into place when they were new (one that replaced an older file with --force stays), and
// SIGINT/SIGTERM/SIGHUP during the renames are held until they are done (SignalHold). A SIGKILL
// or a power loss between two renames (microseconds) leaves the first outputs, each whole, and
// not the rest; the next run sees complete files or none, never a half-written one.
void commit_together(std::initializer_list<AtomicFile*> files);

// While one lives, SIGINT/SIGTERM/SIGHUP (with install_signal_cleanup's handlers) are recorded
// rather than acted on; when the last one ends, a recorded signal runs its cleanup and ends the
// process as it would have. For steps that must not be cut in two, such as commit_together().
class SignalHold {
 public:
  SignalHold();
  ~SignalHold();
  SignalHold(const SignalHold&) = delete;
  SignalHold& operator=(const SignalHold&) = delete;
};

// Throws IoError before any work unless `outputs` (empty paths skipped) can be the outputs of one
// command with `inputs` (its input files): no two outputs are the same file (also through a
// symbolic link or a "./" prefix), and no output is one of the inputs, whatever `overwrite` says
// (--force must not let `eval --data f --out f` destroy the data set).
void check_outputs(const std::vector<std::filesystem::path>& outputs,
                   const std::vector<std::filesystem::path>& inputs);

// Writes a whole small file (JSON, CSV, Markdown) atomically.
void write_file_atomically(const std::filesystem::path& path, std::string_view contents,
                           Overwrite overwrite);

// Throws IoError now if `path` could not be written later: its directory is missing or not
// writable, it is a directory, or it exists and overwriting was not allowed. Lets long runs fail
// before their work rather than after it.
void check_can_write(const std::filesystem::path& path, Overwrite overwrite);

// Temporary files are named ".NAME.iclbench-tmp.PID.XXXXXX" (XXXXXX: mkstemp's six letters or
// digits), ".NAME.iclbench-tmp.PID.py" by the plot script; PID in canonical decimal (no leading
// zero). The pid of a name of exactly that form,
// or nothing for any other name: the marker keeps a user's ".notes.tmp.123.backup" out.
inline constexpr std::string_view kTempMarker = ".iclbench-tmp.";
std::optional<long> temp_file_owner(std::string_view name);

// Deletes the temporary files in `dir` of iclbench's naming whose process is gone (a SIGKILL
// leaves them: no handler runs): the pid is not found here AND the file's flock, which its writer
// holds while it lives, can be taken (a pid of another pid namespace is not found either). Only
// regular files of this user; errors are ignored. Every
// AtomicFile calls it on its directory first, so a killed run's temporary file is removed by
// the next run that writes there.
void remove_stale_temp_files(const std::filesystem::path& dir) noexcept;

// Installs SIGINT/SIGTERM/SIGHUP handlers that delete every uncommitted temporary file and then
// let the signal terminate the process as it would have. Call once at program start.
void install_signal_cleanup();

}  // namespace iclbench::io
