// Helpers shared by the subcommands: folders and writing outputs (image lists: engine/image_io.h;
// timing: engine/timer.h).
#pragma once
#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/image_io.h"
#include "engine/tensor.h"
#include "engine/timer.h"

namespace ams::cli {

bool is_directory(const std::string& path);
// Creates a folder (and parents); errors name it (and say when it is a file).
void make_directory(const std::string& path);
// Whether files can be created in an existing folder ("" = the current one), tried with a file
// that is removed at once; the error names the folder and the reason. So a run that could not
// save its result fails before the work, not after.
void check_writable_folder(const std::string& path);

// --recompute: "auto" -> -1 (chosen by memory: train/step_memory.h), "off" -> 0, "on" -> 1; anything
// else is an error.
int parse_recompute(const std::string& value);

class Args;
// --precision fp32|tf32|bf16 (engine/precision.h): add_precision_option declares it; after parsing,
// apply_precision sets the policy when it was given (else the environment's AMS_TF32 / AMS_BF16
// stand) and says on stderr what a non-fp32 policy means on `dev`.
void add_precision_option(Args& a);
void apply_precision(const Args& a, Device dev);

// --max-memory (bytes, 0 = not given) is the budget tiling and training plan with and, on the GPU,
// a hard cap on what the engine allocates there (engine/device.h set_memory_limit). On the CPU it
// stays a plan: host memory also holds what the planners budget apart (the decoded-image cache
// grows during training), and overshooting it by a little beats failing.
void apply_memory_limit(double max_memory, Device dev);

}  // namespace ams::cli
