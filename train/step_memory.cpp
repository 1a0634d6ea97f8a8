#include "train/step_memory.h"

#include <algorithm>
#include <cstdio>

#include "engine/autograd.h"
#include "engine/check.h"
#include "engine/device.h"

namespace ams {

namespace {
constexpr double kSpare = 0.05;  // of the free memory, for what no probe sees (allocator slack, the OS)
}  // namespace

double StepMemoryRoom::room() const {
    const double free_room = available * (1 - kSpare) - reserve;
    return max_memory > 0 ? std::min(free_room, max_memory - held) : free_room;
}

StepMemoryRoom StepMemoryRoom::on(Device device, double max_memory, double reserve) {
    // The device's own free memory: the reserve (the image cache, budgeted apart) comes off it, and
    // max_memory (on the GPU also the engine's limit) bounds the room separately.
    return {(double)memory_in_use(device), (double)memory_available(device, false), max_memory, reserve,
            device_name(device)};
}

std::string StepMemoryRoom::describe() const {
    std::string s = str(size_text(available), " free on ", device, " (",
                        reserve > 0 ? str(size_text(reserve), " kept for the image cache, ") : "", "5% spare)");
    if (max_memory > 0)
        s = str(size_text(max_memory), " allowed (--max-memory), ", size_text(held),
                " of it held by the model, optimizer and data; ", s);
    return s;
}

double probe_step_bytes(Restormer& net, const std::function<Tensor()>& loss) {
    const Device d = net.params().device();
    const ScopedMemoryLimit unlimited(d, 0);
    net.params().zero_grad();
    reset_memory_peak(d);
    const size_t before = memory_in_use(d);
    try {
        loss().backward();
    } catch (...) {
        autograd::clear_tape();  // a failed forward leaves its nodes and saved tensors behind
        net.params().zero_grad();
        throw;
    }
    const double used = (double)(memory_peak(d) - before);
    net.params().zero_grad();
    return used;
}

StepCost probe_step_cost(Restormer& net, const std::function<Tensor(int)>& loss, double room) {
    const double one = probe_step_bytes(net, [&] { return loss(1); });
    if (2 * one > room) return {0, one};  // a second image may not fit: count it all per image
    const double two = probe_step_bytes(net, [&] { return loss(2); });
    // At least half the batch-1 step: were a shape-dependent workspace smaller at batch 2, the
    // difference alone would understate an image.
    const double per_image = std::max(two - one, 0.5 * one);
    return {std::max(0.0, one - per_image), per_image};
}

StepMemoryChoice choose_step_memory(int recompute, int batch, int crop, const StepMemoryRoom& r,
                                    const std::function<StepCost(bool)>& cost) {
    const double room = r.room();
    StepMemoryChoice c;
    c.recompute = recompute == 1;
    StepCost k = cost(c.recompute);
    c.need = k.at(batch);
    if (c.need > room && recompute < 0 && !c.recompute) {
        const StepCost on = cost(true);
        if (on.at(batch) <= room)
            c.note = str("a step of batch ", batch, " at crop ", crop, " needs about ", size_text(c.need), "; ",
                         r.describe(), ": recomputing intermediates in backward (--recompute on), about ",
                         size_text(on.at(batch)));
        c.recompute = true;
        c.need = on.at(batch);
        k = on;
    }
    AMS_CHECK(c.need <= room, "a training step of batch ", batch, " at crop ", crop, " needs about ", size_text(c.need),
              " (", size_text(k.per_image), " an image", c.recompute ? ", recomputing intermediates" : "", "); ",
              r.describe(), ": lower --batch or --crop", c.recompute ? "" : ", or add --recompute on");
    return c;
}

StepMemoryChoice fit_step_memory(Restormer& net, int recompute, int batch, int crop, const StepMemoryRoom& room,
                                 const std::function<Tensor(const Tensor&)>& loss) {
    const Device d = net.params().device();
    const StepMemoryChoice c = choose_step_memory(recompute, batch, crop, room, [&](bool r) {
        net.set_recompute(r);
        return probe_step_cost(net, [&](int b) { return loss(Tensor::full({b, 3, crop, crop}, 0.5, DType::F32, d)); },
                               room.room());
    });
    net.set_recompute(c.recompute);
    return c;
}

}  // namespace ams
