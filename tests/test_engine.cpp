// Engine pieces: AdamW against torch.optim.AdamW, the Philox generator against its published
// known-answer vectors, the tape releasing everything after backward, host memory accounting.
#include "engine/device.h"
#include "engine/params.h"
#include "helpers.h"

using namespace ams;
using test::rel_l2;

TEST_CASE("AdamW matches torch.optim.AdamW over 4 steps (decoupled weight decay, bias correction)") {
    SafetensorsFile f = test::fixture("adamw");
    ParamStore ps;
    ps.add("p", {37});
    ps.finalize(Device::CPU);
    ps.load({{"p", f.get("p0")}}, "adamw fixture");
    AdamW opt(ps, AdamWConfig{std::stod(f.metadata.at("lr")), std::stod(f.metadata.at("beta1")),
                              std::stod(f.metadata.at("beta2")), std::stod(f.metadata.at("eps")),
                              std::stod(f.metadata.at("weight_decay"))});
    for (int k = 0; k < 4; ++k) {
        ps.flat_grads().copy_(f.get("g" + std::to_string(k)));
        opt.step();
        INFO("step ", k + 1);
        CHECK(rel_l2(ps.flat_values(), f.get("p" + std::to_string(k + 1))) < 1e-6);
    }
}

TEST_CASE("Philox4x32-10 reproduces the Random123 known-answer vectors") {
    // Salmon et al. (SC'11), Random123 kat_vectors: philox4x32 10 rounds.
    rng::U32x4 a = rng::philox4x32(0, 0, 0, 0, 0, 0);
    CHECK(a.v[0] == 0x6627e8d5u);
    CHECK(a.v[1] == 0xe169c58du);
    CHECK(a.v[2] == 0xbc57ac4cu);
    CHECK(a.v[3] == 0x9b00dbd8u);
    rng::U32x4 b = rng::philox4x32(0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu);
    CHECK(b.v[0] == 0x408f276du);
    CHECK(b.v[1] == 0x41c83b0eu);
    CHECK(b.v[2] == 0xa20bc7c6u);
    CHECK(b.v[3] == 0x6d5451fdu);
    rng::U32x4 c = rng::philox4x32(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u);
    CHECK(c.v[0] == 0xd16cfe09u);
    CHECK(c.v[1] == 0x94fdccebu);
    CHECK(c.v[2] == 0x5001e420u);
    CHECK(c.v[3] == 0x24126ea1u);
}

TEST_CASE("backward clears the tape and frees intermediate gradients; no-grad records nothing") {
    Tensor x = test::random_tensor({1, 4, 5, 5}, 1, DType::F64);
    x.requires_grad_(true);
    Tensor h = ops::gelu_gate(x);
    Tensor y = ops::dot(h, h);
    CHECK(autograd::tape_size() == 2);
    y.backward();
    CHECK(autograd::tape_size() == 0);
    CHECK(x.grad().defined());       // leaf gradient kept
    CHECK_FALSE(h.grad().defined());  // intermediate gradient freed once consumed
    {
        autograd::NoGradGuard ng;
        Tensor z = ops::gelu_gate(x);
        CHECK_FALSE(z.requires_grad());
        CHECK(autograd::tape_size() == 0);
    }
}

TEST_CASE("host memory accounting: live bytes, their high-water mark, and what is available") {
    // Tiled inference sizes its tiles from these figures and bench reports the peak.
    const size_t before = memory_in_use(Device::CPU);
    reset_memory_peak(Device::CPU);
    {
        Tensor a = Tensor::zeros({1 << 20});  // 4 MiB
        CHECK(memory_in_use(Device::CPU) >= before + (4u << 20));
        {
            Tensor b = Tensor::zeros({1 << 21});  // 8 MiB more at once
            CHECK(memory_peak(Device::CPU) >= before + (12u << 20));
        }
        CHECK(memory_in_use(Device::CPU) < before + (8u << 20));
    }
    CHECK(memory_in_use(Device::CPU) == before);
    CHECK(memory_peak(Device::CPU) >= before + (12u << 20));
    reset_memory_peak(Device::CPU);
    CHECK(memory_peak(Device::CPU) == before);
    CHECK(memory_available(Device::CPU) > (64u << 20));
}
