// amsnet info: what a weights file holds.
#include <cstdio>

#include "engine/device.h"
#include "engine/json.h"
#include "models/model_file.h"
#include "tools/args.h"
#include "tools/commands.h"
#include "tools/denoise_options.h"
#ifdef AMS_HAVE_CUDA
#include "kernels/cuda/runtime.h"
#endif

namespace ams::cli {

int cmd_info(int argc, char** argv) {
    Args a("info", "[--weights W]", "Prints a weights file's configuration, parameter count and training metadata,\n"
                                    "and the compute devices this build can use.");
    a.option("weights", "W", "weights file (.safetensors)");
    a.option("device", "D", "device to report: auto, cpu or cuda", "auto");
    if (!a.parse(argc, argv, 2)) return 0;
    Device dev = parse_device(a.get("device"));
    std::printf("device: %s", device_name(dev));
#ifdef AMS_HAVE_CUDA
    if (dev == Device::CUDA) std::printf(" (%s)", cuda::device_description().c_str());
#endif
    std::printf("%s\n", cuda_built() ? (cuda_available() ? "" : "  [CUDA built in; no usable GPU found]")
                                     : "  [built without CUDA]");
    if (!a.given("weights")) return 0;
    std::string path = a.get("weights");
    ModelFile m = load_model(path, Device::CPU, true);
    std::printf("weights: %s\n", path.c_str());
    std::printf("model: %s%s\n", m.config.summary().c_str(), m.config_inferred ? " (inferred from tensor shapes)" : "");
    // The JSON that `amsnet train --config FILE.json` takes, to train this architecture afresh.
    std::printf("config: %s\n", json::dump(m.config.to_json()).c_str());
    int64_t total = m.net->params().total();
    std::string grouped = std::to_string(total);
    for (int i = (int)grouped.size() - 3; i > 0; i -= 3) grouped.insert((size_t)i, ",");
    std::printf("parameters: %s in %zu tensors\n", grouped.c_str(), m.net->params().entries().size());
    for (const auto& [k, v] : m.metadata)
        if (k != "config") std::printf("%s: %s\n", k.c_str(), v.c_str());
    try {  // shown as stored, and flagged: denoise and eval would stop on it
        check_stored_scheme(m.metadata);
    } catch (const Error& e) {
        std::printf("warning: %s: denoise refuses these weights unless the option is given\n", e.message().c_str());
    }
    return 0;
}

}  // namespace ams::cli
