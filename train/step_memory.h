// The memory of a training step, checked before the first one. Probe steps at batch 1 and 2 (the
// run's own crop, PD and loss) measure what one image adds and what a step needs besides
// (transient buffers such as cuDNN workspaces); a step of B images needs fixed + B x per image on
// top of what is already held (weights, gradients, AdamW moments, the data). Where the user left
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

struct StepCost {
    double fixed = 0, per_image = 0;  // bytes
    double at(int batch) const { return fixed + batch * per_image; }
};

// What a step may add (bytes): the device's free memory less `reserve` (memory the run will still
// take, e.g. the image cache) and 5% spare; with a budget (max_memory > 0) at most the budget less
// what is held.
struct StepMemoryRoom {
    double held = 0, available = 0, max_memory = 0, reserve = 0;
    std::string device;  // for messages
    double room() const;
    std::string describe() const;  // "22.7 GiB free on cpu (2.0 GiB kept for ..., 5% spare)"
    // The room on `device` now: what the engine holds there and the memory still free.
    static StepMemoryRoom on(Device device, double max_memory, double reserve);
};

// The cost of a step with net's current settings: probes at batch 1 and 2 (loss(b) returns the
// loss of a batch-b step), only batch 1 when two images would not fit `room` (then all of it
// counts per image).
StepCost probe_step_cost(Restormer& net, const std::function<Tensor(int)>& loss, double room);

struct StepMemoryChoice {
    bool recompute = false;
    double need = 0;   // bytes a step adds with that setting
    std::string note;  // why recomputation was turned on, when the tool did it
};

// recompute: -1 (auto: off, unless only recomputation fits), 0 (off) or 1 (on). cost(r): the step's
// cost with recomputation r (asked at most twice). Throws when the chosen setting does not fit,
// naming the batch, the crop, the budget and what would fit.
StepMemoryChoice choose_step_memory(int recompute, int batch, int crop, const StepMemoryRoom& room,
                                    const std::function<StepCost(bool)>& cost);

// The check for net's steps of `batch` crop x crop images: probes them with each setting of
// recomputation it asks about (loss(images): the step's loss on a batch on net's device), chooses
// as choose_step_memory and leaves net set to the choice.
StepMemoryChoice fit_step_memory(Restormer& net, int recompute, int batch, int crop, const StepMemoryRoom& room,
                                 const std::function<Tensor(const Tensor&)>& loss);

}  // namespace ams
