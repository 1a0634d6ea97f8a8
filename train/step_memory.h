// The memory of a training step, checked before the first one. A probe step at batch 1 (the run's
// own crop, PD and loss) measures what one image adds on top of what is already held (weights,
// gradients, AdamW moments, the data); a step of B images needs B times that. Where the user left
// recomputation to the tool (Restormer::set_recompute: less memory, a little more time), it is
// turned on when only then the step fits; a step that cannot fit is a clear error before training
// starts, not the system's out-of-memory kill mid-step.
#pragma once
#include <functional>
#include <string>

#include "engine/tensor.h"
#include "models/restormer.h"

namespace ams {

// Bytes the engine's peak rose by during loss().backward() on net's device; the parameters'
// gradients are zeroed before and after.
double probe_step_bytes(Restormer& net, const std::function<Tensor()>& loss);

struct StepMemoryChoice {
    bool recompute = false;
    double need = 0;   // bytes a step adds with that setting (batch x per image)
    std::string note;  // why recomputation was turned on, when the tool did it
};

// What a step may add: the device's free memory, or with a budget (max_memory > 0, bytes) the
// budget less what is held.
struct StepMemoryRoom {
    double held = 0, available = 0, max_memory = 0;
    std::string device;  // for messages
};

// recompute: -1 (auto: off, unless only recomputation fits), 0 (off) or 1 (on). per_image(r): the
// bytes one image adds with recomputation r (asked at most twice). Throws when the chosen setting
// does not fit, naming the batch, the crop, the budget and what would fit.
StepMemoryChoice choose_step_memory(int recompute, int batch, int crop, const StepMemoryRoom& room,
                                    const std::function<double(bool)>& per_image);

}  // namespace ams
