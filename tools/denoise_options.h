// The command-line inference options shared by `denoise` and `eval --weights` (models/denoise.h).
#pragma once
#include <climits>
#include <cstdint>
#include <map>
#include <string>

#include "models/denoise.h"
#include "tools/args.h"

namespace ams::cli {

// The largest PD stride an option takes: images are padded to multiples of 8 x pd, which must
// stay far inside an int (no photo needs more than a few).
constexpr long long kMaxPd = 256;
// The most mask branches, passes and R^3 copies an option takes: each is a whole network run
// (fine-tuning keeps the activations of all of them), so a few tens is already a lot; the cap
// turns a typo into an error instead of a run of days, and keeps the counts' products in range.
constexpr long long kMaxRuns = 1024;
// The largest chroma smoothing sigma, in pixels.
constexpr double kMaxChromaSigma = 100;

void add_denoise_options(Args& a);
// The options add_denoise_options adds: eval and bench refuse them where they would do nothing.
inline constexpr const char* kDenoiseOptions[] = {"scheme", "pd",   "branches", "passes",       "r3",        "r3-p",
                                                  "chroma-sigma", "seed", "tile", "tile-overlap", "max-memory"};
// Options not given on the command line fall back to the model's stored inference scheme
// (metadata inference_pd / inference_branches / inference_passes, written by amsnet train, and
// inference_chroma_sigma, written by finetune --chroma-weight or --calibrate-only), else SPEC's 2 / 2.
// Each sets dst from the weights metadata's entry (inference_pd, _branches, _passes,
// _chroma_sigma) when there is one, within the bounds of the matching option; a malformed or
// out-of-range value is an error naming the key.
void stored_pd(const std::map<std::string, std::string>& meta, int& dst);
void stored_branches(const std::map<std::string, std::string>& meta, int& dst);
void stored_passes(const std::map<std::string, std::string>& meta, int& dst);
void stored_chroma_sigma(const std::map<std::string, std::string>& meta, double& dst);

// Throws, naming the key, when a stored inference entry is one denoise would refuse.
void check_stored_scheme(const std::map<std::string, std::string>& meta);

DenoiseOptions read_denoise_options(const Args& a, const std::map<std::string, std::string>& model_metadata);

}  // namespace ams::cli
