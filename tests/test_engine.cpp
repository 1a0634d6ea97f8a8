// Engine pieces: AdamW against torch.optim.AdamW, the Philox generator against its published
// known-answer vectors, the tape releasing everything after backward, host memory accounting and
// a container's memory limit.
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>

#include "engine/device.h"
#include "engine/params.h"
#include "helpers.h"

using namespace ams;
namespace fs = std::filesystem;
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

TEST_CASE("the tape keeps gradient slots, not outputs: an activation no backward reads is freed when dropped") {
    Tensor x = test::random_tensor({1, 3, 4, 5}, 2, DType::F64);
    x.requires_grad_(true);
    Tensor h = ops::scale(x, 2.0);  // scale's backward routes a gradient: it keeps a handle of x
    const std::weak_ptr<Storage> h_memory = h.impl().storage;
    Tensor y = ops::scale(h, 3.0);
    Tensor loss = ops::dot(y, Tensor::full(y.shape(), 1.0, DType::F64));  // dot reads y: keeps it
    h = Tensor();
    CHECK(h_memory.expired());
    // A handle has the tensor's shape and gradient, and no data.
    Tensor xh = autograd::handle(x);
    CHECK(xh.shape() == x.shape());
    CHECK(xh.requires_grad());
    CHECK_THROWS_WITH_AS(xh.data<double>(), doctest::Contains("has no data"), Error);
    loss.backward();
    REQUIRE(x.grad().defined());
    CHECK(xh.grad().same(x.grad()));
    for (double g : x.grad().to_double()) CHECK(g == 6.0);
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

TEST_CASE("a host memory limit (set_memory_limit) caps the engine's live memory") {
    const size_t before = memory_in_use(Device::CPU);
    {
        const ScopedMemoryLimit limit(Device::CPU, before + (3u << 20));
        CHECK(memory_limit(Device::CPU) == before + (3u << 20));
        CHECK(memory_available(Device::CPU) <= (3u << 20));
        CHECK(memory_available(Device::CPU, false) > (3u << 20));
        {
            Tensor a = Tensor::zeros({1 << 19});  // 2 MiB fits
            CHECK_THROWS_WITH_AS(Tensor::zeros({1 << 19}), doctest::Contains("memory limit"), std::exception);
            CHECK(memory_in_use(Device::CPU) == before + (2u << 20));  // the failed one holds nothing
            CHECK(memory_available(Device::CPU) <= (1u << 20));
        }
        // Freed room serves another size (the cache gives back what it keeps when a miss needs it).
        Tensor b = Tensor::zeros({5 << 17});
        CHECK(memory_in_use(Device::CPU) == before + (5u << 19));
    }
    CHECK(memory_limit(Device::CPU) == 0);  // the scope's end put back "none"
    Tensor c = Tensor::zeros({1 << 20});  // no limit: 4 MiB fits again
}

TEST_CASE("a container's memory limit bounds the available memory (cgroup v2 and v1)") {
    const fs::path root = fs::temp_directory_path() / ("ams_cgroup_" + std::to_string(::getpid()));
    fs::remove_all(root);
    fs::create_directories(root / "memory");
    auto write = [&](const fs::path& p, const std::string& text) { std::ofstream(p) << text; };
    CHECK(cgroup_memory_room(root.string()) == SIZE_MAX);  // no files: no limit
    // v1 without a limit (2^63 rounded down to a page), then with 8 GiB of which 3 are used, 1 of
    // them droppable file cache.
    write(root / "memory/memory.limit_in_bytes", "9223372036854771712\n");
    write(root / "memory/memory.usage_in_bytes", "3221225472\n");
    CHECK(cgroup_memory_room(root.string()) == SIZE_MAX);
    write(root / "memory/memory.limit_in_bytes", "8589934592\n");
    write(root / "memory/memory.stat", "cache 2000\ntotal_cache 3000\ntotal_inactive_file 1073741824\n");
    CHECK(cgroup_memory_room(root.string()) == (size_t)6 << 30);
    // v2 wins where it is: "max" means no limit there, so v1's files answer; then a 4 GiB limit.
    write(root / "memory.max", "max\n");
    write(root / "memory.current", "1073741824\n");
    CHECK(cgroup_memory_room(root.string()) == (size_t)6 << 30);
    write(root / "memory.max", "4294967296\n");
    write(root / "memory.stat", "anon 100\ninactive_file 536870912\nactive_file 7\n");
    CHECK(cgroup_memory_room(root.string()) == ((size_t)7 << 29));  // 4 GiB - (1 GiB - 0.5 GiB)
    write(root / "memory.current", "5368709120\n");                 // over the limit: no room
    CHECK(cgroup_memory_room(root.string()) == 0);
    // Without a cgroup namespace: the process's own cgroup (from its cgroup list) and each parent;
    // the strictest counts. Here /jobs/42 allows 2 GiB (1 used), its parent /jobs 1.5 GiB (1 used).
    fs::remove_all(root);
    fs::create_directories(root / "jobs/42");
    write(root / "self", "0::/jobs/42\n");
    write(root / "jobs/42/memory.max", "2147483648\n");
    write(root / "jobs/42/memory.current", "1073741824\n");
    CHECK(cgroup_memory_room(root.string(), (root / "self").string()) == (size_t)1 << 30);
    write(root / "jobs/memory.max", "1610612736\n");
    write(root / "jobs/memory.current", "1073741824\n");
    CHECK(cgroup_memory_room(root.string(), (root / "self").string()) == (size_t)1 << 29);
    // v1's list names the memory controller among others.
    fs::create_directories(root / "memory/slurm/job7");
    write(root / "self", "12:cpu,cpuacct:/other\n4:memory:/slurm/job7\n0::/\n");
    write(root / "memory/slurm/job7/memory.limit_in_bytes", "1073741824\n");
    write(root / "memory/slurm/job7/memory.usage_in_bytes", "268435456\n");
    fs::remove(root / "jobs/memory.max");
    fs::remove(root / "jobs/42/memory.max");
    CHECK(cgroup_memory_room(root.string(), (root / "self").string()) == (size_t)3 << 28);
    fs::remove_all(root);
}
