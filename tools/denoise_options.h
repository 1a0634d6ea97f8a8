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

void add_denoise_options(Args& a);
// Options not given on the command line fall back to the model's stored inference scheme
// (metadata inference_pd / inference_branches / inference_passes, written by amsnet train, and
// inference_chroma_sigma, written by finetune --chroma-weight or --calibrate-only), else SPEC's 2 / 2.
// Sets dst from an integer entry of the weights metadata (e.g. "inference_pd") when present; a
// malformed or too-small value is an error naming the key.
void stored_int(const std::map<std::string, std::string>& meta, const char* key, int& dst, int min,
                int max = INT_MAX);
// The same for a number (e.g. "inference_chroma_sigma") in [min, max].
void stored_number(const std::map<std::string, std::string>& meta, const char* key, double& dst, double min,
                   double max);

// Throws, naming the key, when a stored inference entry is one denoise would refuse.
void check_stored_scheme(const std::map<std::string, std::string>& meta);

DenoiseOptions read_denoise_options(const Args& a, const std::map<std::string, std::string>& model_metadata);

}  // namespace ams::cli
