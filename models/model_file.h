// Model weights files: safetensors with the Restormer configuration (JSON) under
// __metadata__["config"] and free-form training metadata beside it. Files without metadata (a
// converted reference checkpoint) still load: the configuration is inferred from the tensors, and a
// common key prefix such as "net.dn.branches.0." is stripped.
#pragma once
#include <map>
#include <memory>
#include <string>

#include "models/restormer.h"

namespace ams {

struct ModelFile {
    RestormerConfig config;
    std::unique_ptr<Restormer> net;
    std::map<std::string, std::string> metadata;  // everything in __metadata__
    bool config_inferred = false;
};

// Weights with a NaN or infinity are an error naming the parameter. A training checkpoint
// (checkpoint.safetensors) loads its weights only with allow_checkpoint (amsnet info); elsewhere
// the error points to the run's model.safetensors, which holds the inference scheme and the
// --ema average.
ModelFile load_model(const std::string& path, Device device, bool allow_checkpoint = false);

// Writes weights + config + `extra` metadata (temporary file, then rename).
void save_model(const std::string& path, const Restormer& net, std::map<std::string, std::string> extra = {});

}  // namespace ams
