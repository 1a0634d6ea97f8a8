// Shared by the GPU suites: one random seed per run (printed; AMS_TEST_SEED=<n> replays it).
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>

namespace ams::test {

inline uint64_t run_seed(const char* suite) {
    uint64_t s;
    if (const char* v = std::getenv("AMS_TEST_SEED")) {
        s = std::strtoull(v, nullptr, 10);
    } else {
        std::random_device rd;
        s = ((uint64_t)rd() << 32) ^ rd();
    }
    std::printf("%s: seed %llu (AMS_TEST_SEED=%llu replays it)\n", suite, (unsigned long long)s, (unsigned long long)s);
    return s;
}

}  // namespace ams::test
