// Deterministic parallel reduction: static partition, per-thread partials added in thread order,
// so a sum is bit-identical between runs with the same thread count (resume determinism needs it).
#pragma once
#include <cstdint>
#include <vector>

#include <omp.h>

namespace ams::cpu {

template <class F>
double deterministic_sum(int64_t n, F term) {
    std::vector<double> part(omp_get_max_threads(), 0.0);
#pragma omp parallel
    {
        double acc = 0;
#pragma omp for schedule(static)
        for (int64_t i = 0; i < n; ++i) acc += term(i);
        part[omp_get_thread_num()] = acc;
    }
    double s = 0;
    for (double p : part) s += p;
    return s;
}

}  // namespace ams::cpu
