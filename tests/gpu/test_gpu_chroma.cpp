// The chroma smoothing (the last stage of denoising) on the GPU against the CPU reference, on fresh
// random odd-sized images: a GPU image is smoothed on the GPU and stays there; one too small for
// the blur's radius comes back from the CPU path.
#include "gpu/gpu_helpers.h"
#include "helpers.h"
#include "train/chroma.h"

using namespace ams;
using test::rel_l2;

TEST_CASE("GPU chroma smoothing matches the CPU's") {
    const uint64_t seed = test::run_seed("GPU chroma test");
    for (double sigma : {0.5, 1.5, 4.0}) {  // radius 2, 5, 12
        INFO("sigma ", sigma);
        Tensor x = test::random_tensor({2, 3, 37, 53}, seed + (uint64_t)(sigma * 10), DType::F32, 0.5, 0.2);
        Tensor want = chroma_smooth(x, sigma), got = chroma_smooth(x.to(Device::CUDA), sigma);
        CHECK(got.is_cuda());
        REQUIRE(got.shape() == want.shape());
        const double e = rel_l2(got, want);
        INFO("relative L2 error ", e);
        CHECK(e < 1e-6);
    }
    // Radius 12 does not fit 9 x 11: the CPU path, the CPU's result exactly.
    Tensor small = test::random_tensor({1, 3, 9, 11}, seed + 99, DType::F32, 0.5, 0.2);
    Tensor got = chroma_smooth(small.to(Device::CUDA), 4.0);
    CHECK(!got.is_cuda());
    CHECK(got.to_double() == chroma_smooth(small, 4.0).to_double());
    // sigma 0 is the identity on the GPU too.
    CHECK(rel_l2(chroma_smooth(small.to(Device::CUDA), 0), small) == 0);
}
