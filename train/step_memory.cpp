#include "train/step_memory.h"

#include <cstdio>

#include "engine/check.h"
#include "engine/device.h"

namespace ams {

namespace {
// "16.2 GiB", or "94 MiB" below a GiB.
std::string size_text(double bytes) {
    char b[32];
    if (bytes >= (double)(1ull << 30)) std::snprintf(b, sizeof b, "%.1f GiB", bytes / (double)(1ull << 30));
    else std::snprintf(b, sizeof b, "%.0f MiB", bytes / (double)(1ull << 20));
    return b;
}
}  // namespace

double probe_step_bytes(Restormer& net, const std::function<Tensor()>& loss) {
    const Device d = net.params().device();
    net.params().zero_grad();
    reset_memory_peak(d);
    const size_t before = memory_in_use(d);
    loss().backward();
    const double used = (double)(memory_peak(d) - before);
    net.params().zero_grad();
    return used;
}

StepMemoryChoice choose_step_memory(int recompute, int batch, int crop, const StepMemoryRoom& r,
                                    const std::function<double(bool)>& per_image) {
    const double room = r.max_memory > 0 ? r.max_memory - r.held : r.available;
    const std::string budget = r.max_memory > 0 ? str(size_text(r.max_memory), " allowed (--max-memory), ",
                                                      size_text(r.held), " of it held by the model, optimizer and data")
                                                : str(size_text(r.available), " free on ", r.device);
    StepMemoryChoice c;
    c.recompute = recompute == 1;
    c.need = batch * per_image(c.recompute);
    if (c.need > room && recompute < 0 && !c.recompute) {
        const double on = batch * per_image(true);
        if (on <= room)
            c.note = str("a step of batch ", batch, " at crop ", crop, " needs about ", size_text(c.need), ", ", budget,
                         ": recomputing intermediates in backward (--recompute on), about ", size_text(on));
        c.recompute = true;
        c.need = on;
    }
    AMS_CHECK(c.need <= room, "a training step of batch ", batch, " at crop ", crop, " needs about ", size_text(c.need),
              " (", size_text(c.need / batch), " an image", c.recompute ? ", recomputing intermediates" : "", "), ",
              budget, ": lower --batch or --crop", c.recompute ? "" : ", or add --recompute on");
    return c;
}

}  // namespace ams
