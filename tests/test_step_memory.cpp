// The training-step memory check (train/step_memory.h): the probe's bytes grow with the batch as
// the check assumes, recomputation lowers them, and the choice between fitting, recomputing and a
// clear error.
#include <algorithm>
#include <functional>

#include "engine/device.h"
#include "helpers.h"
#include "models/amsnet.h"
#include "train/step_memory.h"

using namespace ams;

namespace {

RestormerConfig tiny_config() {
    RestormerConfig cfg;
    cfg.dim = 8;
    cfg.num_blocks = {1, 1, 1, 2};
    cfg.num_refinement_blocks = 1;
    return cfg;
}

// cost stand-in: 2 bytes a step plus 10 an image without recomputation, 1 plus 6 with; counts its calls.
struct FakeProbe {
    int calls = 0;
    StepCost operator()(bool recompute) {
        ++calls;
        return recompute ? StepCost{1, 6} : StepCost{2, 10};
    }
};

// Free memory whose room (less the 5% spare) is `room`, give or take rounding.
StepMemoryRoom room_of(double room) { return {0, room / 0.95, 0, 0, "cpu"}; }

}  // namespace

TEST_CASE("the probe step: linear in the batch, lower with recomputation") {
    Restormer net(tiny_config(), Device::CPU);
    net.init(3);
    auto probe = [&](int batch, bool recompute) {
        net.set_recompute(recompute);
        Tensor x = Tensor::full({batch, 3, 40, 40}, 0.5);
        return probe_step_bytes(net, [&] { return amsnet_train_loss(net, x, 5, 42, 0); });
    };
    const double one = probe(1, false), three = probe(3, false), one_rc = probe(1, true);
    MESSAGE("bytes a step adds: batch 1 ", one, ", batch 3 ", three, ", batch 1 recomputing ", one_rc);
    CHECK(one > 0);
    CHECK(three / one == doctest::Approx(3).epsilon(0.1));
    CHECK(one_rc < 0.8 * one);
    // The two-point cost (batch 1 and 2) predicts batch 3.
    net.set_recompute(false);
    const StepCost cost = probe_step_cost(net, [&](int b) {
        return amsnet_train_loss(net, Tensor::full({b, 3, 40, 40}, 0.5), 5, 42, 0);
    }, 1e12);
    CHECK(cost.at(3) == doctest::Approx(three).epsilon(0.05));
    CHECK(cost.at(1) == doctest::Approx(one).epsilon(0.01));
    // The parameters' gradients are left zeroed.
    std::vector<double> g = net.params().flat_grads().to_double();
    CHECK(std::all_of(g.begin(), g.end(), [](double v) { return v == 0; }));
}

TEST_CASE("choose_step_memory: fit as asked, recompute when only that fits, else a clear error") {
    SUBCASE("auto, the device keeps intermediates, it fits: nothing changes") {
        FakeProbe p;
        StepMemoryChoice c = choose_step_memory(-1, 4, 160, room_of(42.5), std::ref(p));
        CHECK(!c.recompute);
        CHECK(c.need == 42);
        CHECK(c.note.empty());
        CHECK(p.calls == 1);
    }
    SUBCASE("auto, only recomputation fits: it is turned on, with a note") {
        FakeProbe p;
        StepMemoryChoice c = choose_step_memory(-1, 4, 160, room_of(30), std::ref(p));
        CHECK(c.recompute);
        CHECK(c.need == 25);
        CHECK(c.note.find("--recompute on") != std::string::npos);
        CHECK(p.calls == 2);
    }
    SUBCASE("auto, nothing fits: an error naming batch, crop and the way out") {
        FakeProbe p;
        std::string message;
        try {
            choose_step_memory(-1, 4, 160, room_of(20), std::ref(p));
        } catch (const Error& e) {
            message = e.message();
        }
        INFO(message);
        CHECK(message.find("batch 4 at crop 160") != std::string::npos);
        CHECK(message.find("lower --batch or --crop") != std::string::npos);
        CHECK(message.find("add --recompute on") == std::string::npos);  // it already is
    }
    SUBCASE("recomputation turned off by the user is respected: the error suggests it") {
        FakeProbe p;
        CHECK_THROWS_WITH(choose_step_memory(0, 4, 160, room_of(30), std::ref(p)), doctest::Contains("add --recompute on"));
        CHECK(p.calls == 1);
    }
    SUBCASE("recomputation asked for is tried alone") {
        FakeProbe p;
        CHECK(choose_step_memory(1, 4, 160, room_of(25.5), std::ref(p)).recompute);
        CHECK_THROWS(choose_step_memory(1, 4, 160, room_of(24.5), std::ref(p)));
        CHECK(p.calls == 2);
    }
    SUBCASE("under --max-memory, what is held counts against it, and the budget never exceeds the free memory") {
        FakeProbe p;
        const StepMemoryRoom budget{20, 1000, 52, 0, "cpu"};  // 32 left
        CHECK(!choose_step_memory(0, 3, 160, budget, std::ref(p)).recompute);
        CHECK_THROWS_WITH(choose_step_memory(0, 4, 160, budget, std::ref(p)), doctest::Contains("--max-memory"));
        const StepMemoryRoom generous{20, 40, 1000, 0, "cpu"};  // a budget above what is free: 38 free
        CHECK(generous.room() == doctest::Approx(38));
        CHECK_THROWS(choose_step_memory(0, 4, 160, generous, std::ref(p)));
    }
    SUBCASE("memory the run will still take (the image cache) is kept free") {
        FakeProbe p;
        const StepMemoryRoom cache{0, 100, 0, 60, "cpu"};  // 95 - 60 = 35
        CHECK(cache.room() == doctest::Approx(35));
        CHECK_THROWS_WITH(choose_step_memory(0, 4, 160, cache, std::ref(p)), doctest::Contains("image cache"));
    }
}
