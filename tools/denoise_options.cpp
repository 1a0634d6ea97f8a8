#include "tools/denoise_options.h"

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <string>

#include "engine/check.h"

namespace ams::cli {

void add_denoise_options(Args& a) {
    a.option("scheme", "S", "amsnet (k-branch masked inference on PD sub-images) or plain (the denoiser alone)", "amsnet");
    a.option("pd", "S", "pixel-downsampling stride at inference (default: the model's stored scheme, else 2)");
    a.option("branches", "K", "complementary mask branches, 2 to 1024 (default: the model's stored scheme, else 2)");
    a.option("passes", "M", "average M restorations, each with fresh masks and the next of the 8 flips/transposes "
                            "(default: the model's stored scheme, else 1)");
    a.option("r3", "T", "R^3 refinement copies (0 = off; the paper's -E variants use 8)", "0");
    a.option("r3-p", "P", "fraction of pixels replaced by noisy ones in each R^3 copy", "0.16");
    a.option("chroma-sigma", "S", "Gaussian sigma (pixels) of the chroma smoothing after restoration, 0 = off; "
                                  "grey photos are never smoothed (default: the model's stored sigma with --scheme "
                                  "amsnet, even when --pd/--branches/--passes/--r3 change the rest of the scheme; else 0)");
    a.option("seed", "N", "seed of the masks", "0");
    a.option("tile", "N", "tile size in pixels: auto (tile only images that do not fit in memory or exceed ~22 MP), 0 (never) or N",
             "auto");
    a.option("tile-overlap", "N", "pixels of context around each tile (only its core is kept)", "32");
    a.option("max-memory", "GiB", "memory budget for auto tiling (default: what the device has free); on the GPU "
             "also a hard limit on what the engine allocates there (a 24 GB card's budget on a larger GPU)");
}

namespace {

void stored_int(const std::map<std::string, std::string>& meta, const char* key, int& dst, int min, int max) {
    auto it = meta.find(key);
    if (it == meta.end()) return;
    char* end = nullptr;
    errno = 0;
    long v = std::strtol(it->second.c_str(), &end, 10);
    AMS_CHECK(end && end != it->second.c_str() && *end == 0 && errno != ERANGE && v >= min && v <= max,
              "weights metadata ", key, " = '", it->second, "' is not valid (", min, " to ", max, ")");
    dst = (int)v;
}

void stored_number(const std::map<std::string, std::string>& meta, const char* key, double& dst, double min,
                   double max) {
    auto it = meta.find(key);
    if (it == meta.end()) return;
    char* end = nullptr;
    double v = std::strtod(it->second.c_str(), &end);
    AMS_CHECK(end && end != it->second.c_str() && *end == 0 && v >= min && v <= max, "weights metadata ", key,
              " = '", it->second, "' is not valid (", min, " to ", max, ")");
    dst = v;
}

}  // namespace

void stored_pd(const std::map<std::string, std::string>& meta, int& dst) {
    stored_int(meta, "inference_pd", dst, 1, (int)kMaxPd);
}
void stored_branches(const std::map<std::string, std::string>& meta, int& dst) {
    stored_int(meta, "inference_branches", dst, 2, (int)kMaxRuns);
}
void stored_passes(const std::map<std::string, std::string>& meta, int& dst) {
    stored_int(meta, "inference_passes", dst, 1, (int)kMaxRuns);
}
void stored_chroma_sigma(const std::map<std::string, std::string>& meta, double& dst) {
    stored_number(meta, "inference_chroma_sigma", dst, 0, kMaxChromaSigma);
}

void check_stored_scheme(const std::map<std::string, std::string>& meta) {
    int i = 0;
    double x = 0;
    stored_pd(meta, i);
    stored_branches(meta, i);
    stored_passes(meta, i);
    stored_chroma_sigma(meta, x);
}

DenoiseOptions read_denoise_options(const Args& a, const std::map<std::string, std::string>& meta) {
    DenoiseOptions o;
    o.scheme = a.get("scheme");
    AMS_CHECK(o.scheme == "amsnet" || o.scheme == "plain", "--scheme must be amsnet or plain, got '", o.scheme, "'");
    o.pd = a.given("pd") ? (int)a.integer("pd", 1, kMaxPd) : 2;
    o.branches = a.given("branches") ? (int)a.integer("branches", 2, kMaxRuns) : 2;
    if (!a.given("pd")) stored_pd(meta, o.pd);
    if (!a.given("branches")) stored_branches(meta, o.branches);
    o.passes = a.given("passes") ? (int)a.integer("passes", 1, kMaxRuns) : 1;
    if (!a.given("passes")) stored_passes(meta, o.passes);
    if (a.given("chroma-sigma"))
        o.chroma_sigma = a.number("chroma-sigma", 0, kMaxChromaSigma);
    else if (o.scheme == "amsnet")  // calibrated for the stored scheme, not the bare network
        stored_chroma_sigma(meta, o.chroma_sigma);
    o.r3 = (int)a.integer("r3", 0, kMaxRuns);
    o.r3_p = a.number("r3-p", 0.0, 1.0);
    o.seed = (uint64_t)a.integer("seed", 0, LLONG_MAX);
    o.tile = a.get("tile") == "auto" ? -1 : a.integer("tile", 0);
    o.overlap = a.integer("tile-overlap", 0);
    if (a.given("max-memory")) o.max_memory = a.number("max-memory", 0.01, 1e6) * (double)(1ull << 30);
    return o;
}

}  // namespace ams::cli
