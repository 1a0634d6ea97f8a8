#include "tools/denoise_options.h"

#include <cstdlib>

#include "engine/autograd.h"
#include "engine/rng.h"
#include "models/amsnet.h"

namespace ams::cli {

void add_denoise_options(Args& a) {
    a.option("scheme", "S", "amsnet (k-branch masked inference on PD sub-images) or plain (the denoiser alone)", "amsnet");
    a.option("pd", "S", "pixel-downsampling stride at inference (default: the model's stored scheme, else 2)");
    a.option("branches", "K", "complementary mask branches, >= 2 (default: the model's stored scheme, else 2)");
    a.option("r3", "T", "R^3 refinement copies (0 = off; the paper's -E variants use 8)", "0");
    a.option("r3-p", "P", "fraction of pixels replaced by noisy ones in each R^3 copy", "0.16");
    a.option("seed", "N", "seed of the masks", "0");
}

void stored_int(const std::map<std::string, std::string>& meta, const char* key, int& dst, int min) {
    auto it = meta.find(key);
    if (it == meta.end()) return;
    char* end = nullptr;
    long v = std::strtol(it->second.c_str(), &end, 10);
    AMS_CHECK(end && *end == 0 && v >= min, "weights metadata ", key, " = '", it->second, "' is not valid");
    dst = (int)v;
}

DenoiseOptions read_denoise_options(const Args& a, const std::map<std::string, std::string>& meta) {
    DenoiseOptions o;
    o.scheme = a.get("scheme");
    AMS_CHECK(o.scheme == "amsnet" || o.scheme == "plain", "--scheme must be amsnet or plain, got '", o.scheme, "'");
    o.pd = a.given("pd") ? (int)a.integer("pd", 1) : 2;
    o.branches = a.given("branches") ? (int)a.integer("branches", 2) : 2;
    if (!a.given("pd")) stored_int(meta, "inference_pd", o.pd, 1);
    if (!a.given("branches")) stored_int(meta, "inference_branches", o.branches, 2);
    o.r3 = (int)a.integer("r3", 0);
    o.r3_p = a.number("r3-p", 0.0, 1.0);
    o.seed = (uint64_t)a.integer("seed", 0);
    return o;
}

std::string DenoiseOptions::summary() const {
    if (scheme == "plain") return "scheme plain";
    return str("scheme amsnet (pd ", pd, ", ", branches, " branches", r3 ? str(", R^3 x", r3, " p ", r3_p) : "", ")");
}

Tensor denoise_image(const Restormer& net, const Tensor& noisy, const DenoiseOptions& o) {
    autograd::NoGradGuard ng;
    if (o.scheme == "plain") return net.forward_any_size(noisy);
    Tensor d = amsnet_restore(net, noisy, o.pd, o.branches, o.seed, rng::make_stream(rng::kMask, 0));
    if (o.r3 > 0) d = amsnet_r3(net, noisy, d, o.r3, o.r3_p, o.branches, o.seed);
    return d;
}

}  // namespace ams::cli
