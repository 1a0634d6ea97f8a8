#include "models/model_file.h"

#include <iterator>

#include "engine/safetensors.h"

namespace ams {

namespace {
// Strips the prefix in front of "patch_embed.proj.weight" (e.g. "net.dn.branches.0.") from every
// key that has it; keys outside that prefix (other branches, optimizer state) are dropped.
std::vector<std::pair<std::string, Tensor>> strip_prefix(const SafetensorsFile& f) {
    const std::string anchor = "patch_embed.proj.weight";
    std::string prefix;
    bool found = false;
    for (const auto& [name, t] : f.tensors) {
        if (name.size() >= anchor.size() && name.compare(name.size() - anchor.size(), anchor.size(), anchor) == 0) {
            std::string p = name.substr(0, name.size() - anchor.size());
            if (!found || p.size() < prefix.size()) prefix = p;  // the shortest: the first branch
            found = true;
        }
    }
    AMS_CHECK(found, f.path, ": not a Restormer weights file (no tensor named *patch_embed.proj.weight)");
    std::vector<std::pair<std::string, Tensor>> r;
    for (const auto& [name, t] : f.tensors)
        if (name.compare(0, prefix.size(), prefix) == 0) r.emplace_back(name.substr(prefix.size()), t.to(DType::F32));
    return r;
}
}  // namespace

ModelFile load_model(const std::string& path, Device device, bool allow_checkpoint) {
    SafetensorsFile f = load_safetensors(path);
    auto format = f.metadata.find("format");
    if (format != f.metadata.end() && format->second == "amsnet-checkpoint-v1") {
        AMS_CHECK(allow_checkpoint, path, " is a training checkpoint (for --resume); give the model.safetensors "
                  "beside it, which holds the inference scheme the run stores (and the --ema average)");
        for (auto it = f.tensors.begin(); it != f.tensors.end();)  // the optimizer's state
            it = it->first.rfind("optim.", 0) == 0 ? f.tensors.erase(it) : std::next(it);
    }
    auto named = strip_prefix(f);
    for (const auto& [name, t] : named)  // a diverged run's NaN would make every result NaN (black)
        if (const int64_t i = first_nonfinite(t); i >= 0)
            AMS_FAIL(path, ": parameter '", name, "' has a value that is not finite (", t.data<float>()[i], " at index ",
                     i, "): the weights are damaged");
    ModelFile m;
    m.metadata = f.metadata;
    auto it = f.metadata.find("config");
    if (it != f.metadata.end()) {
        m.config = RestormerConfig::from_json(json::parse(it->second, path + " (config metadata)"), path);
    } else {
        m.config = RestormerConfig::infer(named, path);
        m.config_inferred = true;
    }
    m.net = std::make_unique<Restormer>(m.config, device);
    m.net->params().load(named, path);
    return m;
}

void save_model(const std::string& path, const Restormer& net, std::map<std::string, std::string> extra) {
    extra["config"] = json::dump(net.config().to_json());
    extra["format"] = "amsnet-restormer-v1";
    save_safetensors(path, net.params().named_tensors(), extra);
}

}  // namespace ams
