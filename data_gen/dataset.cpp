#include "data_gen/dataset.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <fcntl.h>
#include <sys/file.h>  // flock
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <vector>

#include "iclbench/version.hpp"
#include "util/text.hpp"

namespace iclbench::data {
namespace {

// Per-task sizes of each tensor, in floats.
struct TaskExtents {
  std::size_t x, y, w_star, x_query, y_query, y_query_noisy;
  explicit TaskExtents(const TaskSpec& spec)
      : x(static_cast<std::size_t>(spec.n_examples * spec.dim)),
        y(static_cast<std::size_t>(spec.n_examples)),
        w_star(static_cast<std::size_t>(spec.dim)),
        x_query(static_cast<std::size_t>(spec.n_queries * spec.dim)),
        y_query(static_cast<std::size_t>(spec.n_queries)),
        y_query_noisy(spec.noise > 0.0 ? static_cast<std::size_t>(spec.n_queries) : 0) {}
};

TaskSpec spec_from_json(const nlohmann::json& params) {
  TaskSpec spec;
  const std::string name = params.at("family").get<std::string>();
  const auto family = parse_family(name);
  if (!family) throw SpecError("family", "'" + name + "' is unknown");
  spec.family = *family;
  spec.dim = params.at("d").get<std::int64_t>();
  spec.n_examples = params.at("n").get<std::int64_t>();
  spec.n_queries = params.at("queries").get<std::int64_t>();
  spec.n_tasks = params.at("tasks").get<std::int64_t>();
  spec.noise = params.at("noise").get<double>();
  spec.margin = params.at("margin").get<double>();
  spec.kappa = params.at("kappa").get<double>();
  spec.bias = params.at("bias").get<double>();
  spec.scale = params.at("scale").get<double>();
  return spec;
}

}  // namespace

std::string spec_to_json(const TaskSpec& spec) {
  nlohmann::ordered_json params = {
      {"family", family_name(spec.family)},
      {"d", spec.dim},
      {"n", spec.n_examples},
      {"queries", spec.n_queries},
      {"tasks", spec.n_tasks},
      {"noise", spec.noise},
      {"margin", spec.margin},
      {"kappa", spec.kappa},
      {"bias", spec.bias},
      {"scale", spec.scale},
  };
  return params.dump();
}

std::map<std::string, std::string> dataset_metadata(const TaskSpec& spec) {
  return {
      {"format", std::string(kDatasetFormat)},
      {"format_version", std::to_string(kDatasetFormatVersion)},
      {"generator", std::string(family_name(spec.family))},
      {"params", spec_to_json(spec)},
      {"seed", std::to_string(spec.seed)},
      {"iclbench_version", kVersion},
  };
}

namespace {
void check_free_space(const TaskSpec& spec, const std::filesystem::path& dir, const std::string& where);
std::string no_space_message(std::uint64_t needed, std::uint64_t available,
                             const std::filesystem::path& directory, std::string_view remedy) {
  return "the data set needs " + util::human_bytes(static_cast<double>(needed)) + " but " +
         directory.string() + " has " + util::human_bytes(static_cast<double>(available)) +
         " free; " + std::string(remedy);
}
}  // namespace

NoSpaceError::NoSpaceError(std::uint64_t needed, std::uint64_t available, std::filesystem::path directory)
    : std::invalid_argument(no_space_message(needed, available, directory, "lower tasks, n or queries")),
      needed_(needed),
      available_(available),
      directory_(std::move(directory)) {}

std::string NoSpaceError::message(std::string_view remedy) const {
  return no_space_message(needed_, available_, directory_, remedy);
}

void write_dataset(const TaskSpec& spec, const std::filesystem::path& path,
                   const WriteOptions& options) {
  validate(spec);
  {
    const std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : ".";
    check_free_space(spec, dir, options.directory_label.empty() ? dir.string() : options.directory_label);
  }
  const TaskExtents per_task(spec);
  const auto n_tasks = spec.n_tasks;
  auto shape = [&](std::initializer_list<std::int64_t> tail) {
    std::vector<std::int64_t> dims{n_tasks};
    dims.insert(dims.end(), tail);
    return dims;
  };
  std::vector<io::TensorToWrite> tensors = {
      {"x", io::DType::kF32, shape({spec.n_examples, spec.dim})},
      {"y", io::DType::kF32, shape({spec.n_examples})},
      {"w_star", io::DType::kF32, shape({spec.dim})},
      {"x_query", io::DType::kF32, shape({spec.n_queries, spec.dim})},
      {"y_query", io::DType::kF32, shape({spec.n_queries})},
  };
  if (per_task.y_query_noisy > 0) {
    tensors.push_back({"y_query_noisy", io::DType::kF32, shape({spec.n_queries})});
  }
  io::SafetensorsWriter writer(path, dataset_metadata(spec), tensors, options.overwrite);

  const std::uint64_t task_bytes = spec.floats_per_task() * sizeof(float);
  const auto chunk_tasks = static_cast<std::int64_t>(
      std::clamp<std::uint64_t>(options.chunk_bytes / task_bytes, 1, static_cast<std::uint64_t>(n_tasks)));
  std::vector<float> x(chunk_tasks * per_task.x), y(chunk_tasks * per_task.y),
      w_star(chunk_tasks * per_task.w_star), x_query(chunk_tasks * per_task.x_query),
      y_query(chunk_tasks * per_task.y_query), y_query_noisy(chunk_tasks * per_task.y_query_noisy);

  for (std::int64_t first = 0; first < n_tasks; first += chunk_tasks) {
    const std::int64_t count = std::min(chunk_tasks, n_tasks - first);
    tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, count, 1),
                      [&](const tbb::blocked_range<std::int64_t>& range) {
                        for (std::int64_t local = range.begin(); local < range.end(); ++local) {
                          const auto at = static_cast<std::size_t>(local);
                          auto slice = [at](std::vector<float>& buffer, std::size_t extent) {
                            return std::span<float>(buffer).subspan(at * extent, extent);
                          };
                          generate_task(spec, static_cast<std::uint32_t>(first + local),
                                        {slice(x, per_task.x), slice(y, per_task.y),
                                         slice(w_star, per_task.w_star),
                                         slice(x_query, per_task.x_query),
                                         slice(y_query, per_task.y_query),
                                         slice(y_query_noisy, per_task.y_query_noisy)});
                        }
                      });
    // The reader refuses non-finite inputs; so does the writer, before the chunk is written (the
    // uncommitted file is then removed). validate() keeps this from happening; this is the net.
    for (const std::vector<float>* inputs : {&x, &x_query}) {
      if (!std::all_of(inputs->begin(), inputs->end(), [](float v) { return std::isfinite(v); })) {
        throw SpecError("scale", "gives non-finite f32 inputs (tasks from " + std::to_string(first) + ")");
      }
    }
    auto write = [&](const char* name, const std::vector<float>& buffer, std::size_t extent) {
      if (extent == 0) return;
      writer.write_f32(name, static_cast<std::uint64_t>(first) * extent,
                       std::span<const float>(buffer).first(static_cast<std::size_t>(count) * extent));
    };
    write("x", x, per_task.x);
    write("y", y, per_task.y);
    write("w_star", w_star, per_task.w_star);
    write("x_query", x_query, per_task.x_query);
    write("y_query", y_query, per_task.y_query);
    write("y_query_noisy", y_query_noisy, per_task.y_query_noisy);
    if (options.progress) options.progress(first + count, n_tasks);
  }
  writer.commit();
}

std::filesystem::path unnamed_directory() {
  const char* tmp = std::getenv("TMPDIR");
  return tmp && *tmp ? tmp : "/tmp";
}

std::string unnamed_directory_label() {
  const char* tmp = std::getenv("TMPDIR");
  return tmp && *tmp ? "TMPDIR=" + std::string(tmp) : "/tmp (TMPDIR is unset)";
}

namespace {

// Space on the file system of `dir` for `spec`'s file, named `where` in the error.
void check_free_space(const TaskSpec& spec, const std::filesystem::path& dir, const std::string& where) {
  struct statvfs fs {};
  if (::statvfs(dir.c_str(), &fs) == 0) {  // a missing directory is reported by the writer
    const std::uint64_t available = static_cast<std::uint64_t>(fs.f_bavail) * fs.f_frsize;
    if (spec.dataset_bytes() > available) throw NoSpaceError(spec.dataset_bytes(), available, where);
  }
}

// An IoError about the generation directory, saying that it is TMPDIR's.
io::IoError about_tmpdir(const io::IoError& error) {
  return io::IoError(std::string(error.what()) + " (" + unnamed_directory_label() +
                     ": where the task set is generated; set TMPDIR to a writable directory)");
}

}  // namespace

void check_can_generate_unnamed(const TaskSpec& spec) {
  check_free_space(spec, unnamed_directory(), unnamed_directory_label());
  try {
    io::check_can_write(unnamed_directory() / "iclbench-probe.safetensors", io::Overwrite::kRefuse);
  } catch (const io::IoError& error) {
    throw about_tmpdir(error);
  }
}

std::filesystem::path unnamed_path(std::uint64_t serial) {
  // Six characters, as io's temporary names end: a serial past 10^6 wraps onto a name whose file
  // was removed long ago (and Overwrite::kRefuse would refuse a clash).
  char suffix[8];
  std::snprintf(suffix, sizeof suffix, "%06llu", static_cast<unsigned long long>(serial % 1000000));
  return unnamed_directory() / (".tasks" + std::string(io::kTempMarker) + std::to_string(::getpid()) + "." + suffix);
}

Dataset Dataset::generate_unnamed(const TaskSpec& spec, const WriteOptions& options) {
  static std::atomic<std::uint64_t> counter{0};  // unique within the process
  const std::filesystem::path path = unnamed_path(counter++);
  WriteOptions unique = options;
  unique.overwrite = io::Overwrite::kRefuse;
  unique.directory_label = unnamed_directory_label();
  try {
    write_dataset(spec, path, unique);
  } catch (const io::IoError& error) {
    throw about_tmpdir(error);
  }
  // The committed file keeps a temporary's name until it is removed below: hold its flock while it
  // is read, as AtomicFile holds its own, so that a run in another pid namespace (which cannot see
  // this pid) takes it for a live file, not a stale one (io::remove_stale_temp_files).
  struct LockHolder {
    int fd;
    ~LockHolder() {
      if (fd >= 0) ::close(fd);
    }
  } lock{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (lock.fd >= 0) ::flock(lock.fd, LOCK_EX | LOCK_NB);
  Dataset dataset = open(path);
  std::filesystem::remove(path);
  return dataset;
}

Dataset Dataset::open(const std::filesystem::path& path) {
  return from_reader(io::SafetensorsReader{path});
}

Dataset Dataset::from_reader(io::SafetensorsReader reader) {
  Dataset dataset(std::move(reader));
  const io::SafetensorsReader& file = dataset.file_;
  constexpr std::uint64_t kHeaderStart = 8;
  auto meta = [&](const std::string& key) -> const std::string& {
    return file.required_metadata(key, "iclbench data set", "write data sets with `iclbench gen`");
  };
  if (meta("format") != kDatasetFormat) {
    throw file.error_at(kHeaderStart, "not an iclbench data set: __metadata__ format is '" +
                                          meta("format") + "', expected '" +
                                          std::string(kDatasetFormat) + "'");
  }
  if (meta("format_version") != std::to_string(kDatasetFormatVersion)) {
    throw file.error_at(kHeaderStart,
                        "data set format version '" + meta("format_version") +
                            "' is not supported (this build reads version " +
                            std::to_string(kDatasetFormatVersion) +
                            "); regenerate it with `iclbench gen` using the parameters in its "
                            "__metadata__ 'params'");
  }
  try {
    dataset.spec_ = spec_from_json(nlohmann::json::parse(meta("params")));
    const std::string& seed_text = meta("seed");
    std::size_t used = 0;
    dataset.spec_.seed = std::stoull(seed_text, &used);
    if (used != seed_text.size()) throw std::invalid_argument("trailing characters");
    validate(dataset.spec_);
  } catch (const SpecError& error) {
    throw file.error_at(kHeaderStart, std::string("__metadata__ params are invalid: ") +
                                          error.what());
  } catch (const std::exception& error) {
    throw file.error_at(kHeaderStart,
                        std::string("__metadata__ params or seed unreadable: ") + error.what());
  }

  const TaskSpec& spec = dataset.spec_;
  const std::size_t expected_tensors = spec.noise > 0.0 ? 6 : 5;
  auto tensor = [&](const char* name, std::initializer_list<std::int64_t> tail,
                    bool finite_only, bool labels) -> std::span<const float> {
    const io::TensorInfo* info = file.find(name);
    if (info == nullptr) {
      throw file.error_at(kHeaderStart, std::string("data set has no tensor '") + name + "'");
    }
    std::vector<std::int64_t> expected{spec.n_tasks};
    expected.insert(expected.end(), tail);
    if (info->shape != expected) {
      io::TensorInfo wanted = *info;
      wanted.shape = expected;
      throw file.error_at(*info, "shape " + info->shape_string() + " does not match the " +
                                     "metadata params, which imply " + wanted.shape_string());
    }
    const std::span<const float> values = file.f32(*info);
    for (std::size_t i = 0; i < values.size(); ++i) {
      const float value = values[i];
      const bool bad = labels ? (value != 1.0f && value != -1.0f) : (finite_only && !std::isfinite(value));
      if (bad) {
        throw file.error_at(info->begin + i * sizeof(float),
                            std::string("tensor '") + name + "' element " + std::to_string(i) +
                                " is " + std::to_string(value) +
                                (labels ? ", not a label +-1" : ", not finite"));
      }
    }
    return values;
  };
  if (file.tensors().size() != expected_tensors) {
    std::string names;
    for (const auto& info : file.tensors()) names += " " + info.name;
    throw file.error_at(kHeaderStart, "data set holds tensors" + names + "; expected " +
                                          std::to_string(expected_tensors) +
                                          " (x, y, w_star, x_query, y_query" +
                                          (spec.noise > 0.0 ? ", y_query_noisy)" : ")"));
  }
  dataset.x_ = tensor("x", {spec.n_examples, spec.dim}, true, false);
  dataset.y_ = tensor("y", {spec.n_examples}, true, true);
  dataset.w_star_ = tensor("w_star", {spec.dim}, true, false);
  dataset.x_query_ = tensor("x_query", {spec.n_queries, spec.dim}, true, false);
  dataset.y_query_ = tensor("y_query", {spec.n_queries}, true, true);
  if (spec.noise > 0.0) {
    dataset.y_query_noisy_ = tensor("y_query_noisy", {spec.n_queries}, true, true);
  }
  for (std::int64_t task = 0; task < spec.n_tasks; ++task) {
    double norm_squared = 0.0;
    for (float w : dataset.w_star(task)) norm_squared += static_cast<double>(w) * w;
    // Stored as float: |w|^2 is 1 within d half-ulps of rounding, far inside 1e-5.
    if (std::abs(norm_squared - 1.0) > 1e-5) {
      throw file.error_at(*file.find("w_star"), "row " + std::to_string(task) +
                                                    " is not a unit vector (|w|^2 = " +
                                                    std::to_string(norm_squared) + ")");
    }
  }
  return dataset;
}

namespace {
std::span<const float> task_slice(std::span<const float> all, std::int64_t task,
                                  std::int64_t extent) {
  return all.subspan(static_cast<std::size_t>(task * extent), static_cast<std::size_t>(extent));
}
}  // namespace

std::span<const float> Dataset::x(std::int64_t task) const {
  return task_slice(x_, task, spec_.n_examples * spec_.dim);
}
std::span<const float> Dataset::y(std::int64_t task) const {
  return task_slice(y_, task, spec_.n_examples);
}
std::span<const float> Dataset::w_star(std::int64_t task) const {
  return task_slice(w_star_, task, spec_.dim);
}
std::span<const float> Dataset::x_query(std::int64_t task) const {
  return task_slice(x_query_, task, spec_.n_queries * spec_.dim);
}
std::span<const float> Dataset::y_query(std::int64_t task) const {
  return task_slice(y_query_, task, spec_.n_queries);
}
std::span<const float> Dataset::y_query_noisy(std::int64_t task) const {
  if (y_query_noisy_.empty()) return {};
  return task_slice(y_query_noisy_, task, spec_.n_queries);
}

}  // namespace iclbench::data
