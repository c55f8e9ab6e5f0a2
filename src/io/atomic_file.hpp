#pragma once
// Files that appear whole or not at all.
//
// Every file the suite writes goes through AtomicFile: the bytes go to a temporary file in the
// destination directory, which is fsync'ed and renamed over the final path only on commit(). An
// exception, an early return or SIGINT/SIGTERM before commit() leaves no file behind, and a file
// that already sits at the final path is never touched unless overwriting was asked for.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

namespace iclbench::io {

// A file could not be created, written or renamed; the message names the path and the OS error.
class IoError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
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
  // file (with Overwrite::kRefuse) is reported before any expensive work starts.
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
  void commit();

  const std::filesystem::path& final_path() const { return final_path_; }
  const std::filesystem::path& temp_path() const { return temp_path_; }

 private:
  void discard() noexcept;

  std::filesystem::path final_path_;
  std::filesystem::path temp_path_;
  Overwrite overwrite_;
  int fd_ = -1;
  int signal_slot_ = -1;
};

// Writes a whole small file (JSON, CSV, Markdown) atomically.
void write_file_atomically(const std::filesystem::path& path, std::string_view contents,
                           Overwrite overwrite);

// Throws IoError now if `path` could not be written later: its directory is missing or not
// writable, it is a directory, or it exists and overwriting was not allowed. Lets long runs fail
// before their work rather than after it.
void check_can_write(const std::filesystem::path& path, Overwrite overwrite);

// Installs SIGINT/SIGTERM/SIGHUP handlers that delete every uncommitted temporary file and then
// let the signal terminate the process as it would have. Call once at program start.
void install_signal_cleanup();

}  // namespace iclbench::io
