#include "model/weight_structure.hpp"

namespace iclbench::model {

ColumnMap ColumnMap::identity(std::int64_t in, std::int64_t out) {
  ColumnMap map;
  for (std::int64_t i = 0; i < in; ++i) map.src_column.push_back(i);
  for (std::int64_t j = 0; j < out; ++j) map.dst_column.push_back(j);
  return map;
}

ops::StructuredLinear::Columns analyse_columns(const ProjectionWeights& weights,
                                               const ColumnMap& map, bool copies,
                                               bool accumulate) {
  ops::StructuredLinear::Columns columns;
  std::vector<std::int64_t> live;  // outputs of the live block, as columns of W
  for (std::int64_t j = 0; j < weights.out; ++j) {
    const std::int64_t target = map.dst_column[static_cast<std::size_t>(j)];
    if (target < 0) continue;
    std::int64_t nonzeros = 0, row = -1;
    for (std::int64_t i = 0; i < weights.in; ++i) {
      if (weights.at(i, j) != 0.0f) {
        ++nonzeros;
        row = i;
      }
    }
    const float bias = weights.bias[static_cast<std::size_t>(j)];
    if (nonzeros == 0 && bias == 0.0f) {
      if (!accumulate) columns.zero_columns.push_back(target);
    } else if (copies && nonzeros == 1 && bias == 0.0f) {
      columns.copies.push_back(
          {map.src_column[static_cast<std::size_t>(row)], target, weights.at(row, j)});
    } else {
      live.push_back(j);
      columns.outputs.push_back(target);
      columns.bias.push_back(bias);
    }
  }
  // The rows some live column reads, in order, and the live block packed [rows, live].
  for (std::int64_t i = 0; i < weights.in; ++i) {
    bool read = false;
    for (std::int64_t j : live) read = read || weights.at(i, j) != 0.0f;
    if (!read) continue;
    columns.inputs.push_back(map.src_column[static_cast<std::size_t>(i)]);
    for (std::int64_t j : live) columns.weights.push_back(weights.at(i, j));
  }
  return columns;
}

double dense_cost(const ProjectionWeights& weights) {
  return static_cast<double>(weights.in) * static_cast<double>(weights.out);
}

double structured_cost(const ops::StructuredLinear::Columns& columns) {
  return kStructuredPenalty * static_cast<double>(columns.inputs.size()) *
             static_cast<double>(columns.outputs.size()) +
         static_cast<double>(columns.outputs.size() + columns.copies.size() +
                             columns.zero_columns.size());
}

std::vector<bool> written_columns(const ProjectionWeights& weights,
                                  const std::vector<bool>& live_rows) {
  std::vector<bool> written(static_cast<std::size_t>(weights.out), false);
  for (std::int64_t j = 0; j < weights.out; ++j) {
    bool any = weights.bias[static_cast<std::size_t>(j)] != 0.0f;
    for (std::int64_t i = 0; i < weights.in && !any; ++i) {
      const bool row_live = live_rows.empty() || live_rows[static_cast<std::size_t>(i)];
      any = row_live && weights.at(i, j) != 0.0f;
    }
    written[static_cast<std::size_t>(j)] = any;
  }
  return written;
}

std::vector<bool> invariant_columns(const ProjectionWeights& weights,
                                    const std::vector<bool>& changing) {
  std::vector<bool> invariant(static_cast<std::size_t>(weights.out), true);
  for (std::int64_t j = 0; j < weights.out; ++j) {
    for (std::int64_t i = 0; i < weights.in; ++i) {
      if (changing[static_cast<std::size_t>(i)] && weights.at(i, j) != 0.0f) {
        invariant[static_cast<std::size_t>(j)] = false;
        break;
      }
    }
  }
  return invariant;
}

Projection Projection::dense(ops::Linear linear, double flops_per_row) {
  Projection projection;
  projection.dense_.emplace(std::move(linear));
  projection.dense_flops_per_row_ = flops_per_row;
  return projection;
}

Projection Projection::structured(std::optional<ops::StructuredLinear> every_pass,
                                  std::optional<ops::StructuredLinear> first_pass) {
  Projection projection;
  if (every_pass && !every_pass->empty()) projection.every_pass_ = std::move(every_pass);
  if (first_pass && !first_pass->empty()) projection.first_pass_ = std::move(first_pass);
  return projection;
}

void Projection::execute(const void* src, void* dst, void* scratchpad, int pass) const {
  if (dense_) {
    dense_->execute(src, dst, scratchpad);
    return;
  }
  const auto* from = static_cast<const float*>(src);
  auto* to = static_cast<float*>(dst);
  if (first_pass_ && pass == 0) first_pass_->execute(from, to);
  if (every_pass_) every_pass_->execute(from, to);
}

const char* Projection::implementation() const {
  return dense_ ? dense_->implementation() : "structured:columns";
}

double Projection::flops_per_row(int pass) const {
  if (dense_) return dense_flops_per_row_;
  double flops = every_pass_ ? every_pass_->flops_per_row() : 0.0;
  if (first_pass_ && pass == 0) flops += first_pass_->flops_per_row();
  return flops;
}

}  // namespace iclbench::model
