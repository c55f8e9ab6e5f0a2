#pragma once
// Task sets on disk: safetensors files with tensors
//   x [T, N, d]  y [T, N]  w_star [T, d]  x_query [T, M, d]  y_query [T, M]
//   y_query_noisy [T, M]   (only when noise > 0)
// all F32, and __metadata__ {format, format_version, generator, params (JSON), seed,
// iclbench_version}. T tasks, N context examples, M queries, d input dimension.

#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <string_view>

#include "data_gen/task_generator.hpp"
#include "io/safetensors.hpp"
#include "util/progress_callback.hpp"

namespace iclbench::data {

inline constexpr std::string_view kDatasetFormat = "iclbench-dataset";
inline constexpr int kDatasetFormatVersion = 1;

struct WriteOptions {
  io::Overwrite overwrite = io::Overwrite::kRefuse;
  // Called from the writing thread after each chunk of tasks, with tasks done and in all.
  util::ProgressCallback progress;
  // Tasks are generated in chunks of about this many bytes, in parallel within a chunk.
  std::uint64_t chunk_bytes = 64u << 20;
  // How errors name the file's directory, if not by its path ("TMPDIR=/scratch").
  std::string directory_label;
};

// The file system of a data set's file has too little free space for it. A bad size rather than an
// I/O failure: nothing has been written yet.
class NoSpaceError : public std::invalid_argument {
 public:
  NoSpaceError(std::uint64_t needed, std::uint64_t available, std::filesystem::path directory);
  // The message with a remedy in the caller's terms (the command line names its flags).
  std::string message(std::string_view remedy) const;

 private:
  std::uint64_t needed_, available_;
  std::filesystem::path directory_;
};

// The metadata written into a data set file, and the parameters as JSON text.
std::map<std::string, std::string> dataset_metadata(const TaskSpec& spec);
std::string spec_to_json(const TaskSpec& spec);

// Generates every task of `spec` (tbb::parallel_for over tasks; the bytes do not depend on the
// thread count) and writes them atomically to `path`. Validates `spec` first (SpecError), and
// refuses a data set larger than the free space of the target file system (NoSpaceError).
void write_dataset(const TaskSpec& spec, const std::filesystem::path& path,
                   const WriteOptions& options = {});

// Where Dataset::generate_unnamed() writes: $TMPDIR, else /tmp; and how messages name it
// ("TMPDIR=/scratch", "/tmp (TMPDIR is unset)").
std::filesystem::path unnamed_directory();
std::string unnamed_directory_label();
// The file generate_unnamed() writes its `serial`-th task set to, between writing and unlinking
// it: ".tasks.iclbench-tmp.PID.NNNNNN" under unnamed_directory(), a temporary name of io's
// naming (io::temp_file_owner), so that a file left by a SIGKILL in that window is removed by the
// next run that writes there (io::remove_stale_temp_files).
std::filesystem::path unnamed_path(std::uint64_t serial);
// Throws now what generate_unnamed(spec) would throw for lack of space (NoSpaceError) or an
// unwritable directory (io::IoError), both naming TMPDIR: lets a command refuse before it prints
// anything or starts work.
void check_can_generate_unnamed(const TaskSpec& spec);

// A validated task set, read into memory (io::SafetensorsReader).
class Dataset {
 public:
  // Throws io::FormatError naming the file and byte offset of the first problem.
  static Dataset open(const std::filesystem::path& path);
  // Validates an already parsed file (also an in-memory one: the fuzzer's entry point).
  static Dataset from_reader(io::SafetensorsReader file);
  // Generates `spec` into a file under $TMPDIR (or /tmp), unnamed_path(), that is unlinked as
  // soon as it is read: the data lives in this process's memory, and nothing is left behind on a
  // crash after this returns (a kill before it leaves a temporary that the next run removes).
  static Dataset generate_unnamed(const TaskSpec& spec, const WriteOptions& options = {});

  const TaskSpec& spec() const { return spec_; }
  const std::map<std::string, std::string>& metadata() const { return file_.metadata(); }
  std::int64_t n_tasks() const { return spec_.n_tasks; }
  std::int64_t dim() const { return spec_.dim; }
  std::int64_t n_examples() const { return spec_.n_examples; }
  std::int64_t n_queries() const { return spec_.n_queries; }

  std::span<const float> x(std::int64_t task) const;        // [N, d]
  std::span<const float> y(std::int64_t task) const;        // [N]
  std::span<const float> w_star(std::int64_t task) const;   // [d]
  std::span<const float> x_query(std::int64_t task) const;  // [M, d]
  std::span<const float> y_query(std::int64_t task) const;  // [M]
  std::span<const float> y_query_noisy(std::int64_t task) const;  // [M]; empty if noise == 0

 private:
  explicit Dataset(io::SafetensorsReader file) : file_(std::move(file)) {}

  io::SafetensorsReader file_;
  TaskSpec spec_;
  std::span<const float> x_, y_, w_star_, x_query_, y_query_, y_query_noisy_;
};

}  // namespace iclbench::data
