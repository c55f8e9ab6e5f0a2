// iclbench model: build a constructed model and save it, or describe a model file.

#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "model/constructions.hpp"
#include "model/weights.hpp"
#include "util/text.hpp"

namespace iclbench::cli {
namespace {

struct ModelOptions {
  std::string construct;
  int d = 16;
  std::string out;
  std::string info;
  bool force = false;
  bool json = false;
};

void describe(const model::ModelConfig& config, bool as_json) {
  if (as_json) {
    nlohmann::ordered_json summary = model::to_json(config);
    summary["parameters"] = config.parameter_count();
    std::fprintf(output(), "%s\n", summary.dump(2).c_str());
    return;
  }
  std::fprintf(output(), "model      %s\n", config.name.empty() ? "(unnamed)" : util::escape_control(config.name).c_str());
  std::fprintf(output(), "width D    %d", config.width);
  if (config.read_in) {
    std::fprintf(output(), "  (read-in from d = %d, %d learned positions%s)", config.input_dim,
                config.positions, config.read_out ? ", read-out LayerNorm + linear" : "");
  } else if (config.input_dim > 0) {
    std::fprintf(output(), "  (input d = %d, readout slot %d)", config.input_dim, config.readout);
  }
  std::fprintf(output(), "\nparameters %lld\nmask       %s\n", static_cast<long long>(config.parameter_count()),
              std::string(model::to_string(config.mask())).c_str());
  std::fprintf(output(), "layers     %zu\n", config.layers.size());
  for (std::size_t i = 0; i < config.layers.size(); ++i) {
    const model::LayerConfig& layer = config.layers[i];
    std::fprintf(output(), "  %2zu: ", i);
    if (layer.has_attention()) {
      std::fprintf(output(), "%s%s attention, %d head(s), dk %d, dv %d, scale %g%s", layer.attention_norm ? "LN, " : "",
                  std::string(model::to_string(layer.attention)).c_str(), layer.heads, layer.qk_dim,
                  layer.v_dim, static_cast<double>(layer.scale), layer.mean_over_keys ? " / keys" : "");
    } else {
      std::fprintf(output(), "no attention");
    }
    if (layer.has_mlp()) {
      std::fprintf(output(), "; %sMLP %d %s", layer.mlp_norm ? "LN, " : "", layer.mlp_hidden,
                  std::string(model::to_string(layer.activation)).c_str());
    }
    if (layer.loop > 1) std::fprintf(output(), "; looped x%d", layer.loop);
    std::fprintf(output(), "\n");
  }
}

}  // namespace

Command add_model_command(CLI::App& parent, const GlobalOptions& globals) {
  CLI::App* app = parent.add_subcommand(
      "model", "build a constructed in-context learner and save it (--construct), or describe a "
               "model file (--info)");
  auto options = std::make_shared<ModelOptions>();
  CLI::Option* construct = app->add_option(
      "--construct", options->construct,
      "recipe: " + model::construction_names() + " (e.g. gd-hinge:L=500,eta=1,tau=0.5)");
  app->add_option("--d", options->d, "input dimension d of the constructed model")->capture_default_str();
  CLI::Option* out = app->add_option("--out", options->out, "model file to write (.safetensors)")->type_name(kPathType);
  CLI::Option* info = app->add_option("--info", options->info, "model file to describe")->type_name(kPathType);
  app->add_flag("--force", options->force, "replace an existing output file");
  app->add_flag("--json", options->json, "describe as JSON");
  construct->excludes(info);
  out->needs(construct);

  auto run = [options, &globals, construct, info] {
    if (info->count() > 0) {
      describe(model::load_model(options->info).config, options->json);
      return;
    }
    if (construct->count() == 0 || options->out.empty()) {
      throw UsageError("give --construct SPEC --out FILE, or --info FILE");
    }
    const model::Model built =
        model::construct(model::parse_construction(options->construct), options->d, globals.seed);
    model::save_model(options->out, built.config, built.weights,
                      options->force ? io::Overwrite::kAllow : io::Overwrite::kRefuse);
    if (options->json) {
      describe(built.config, true);
    } else {
      std::fprintf(output(), "wrote %s\n", util::escape_control(options->out).c_str());
      describe(built.config, false);
    }
    flush_output("; " + util::escape_control(options->out) + " was written");
  };
  return {app, run};
}

}  // namespace iclbench::cli
