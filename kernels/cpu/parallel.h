// Per-thread helpers for the CPU kernels. Deterministic parallel reduction: static partition,
// per-thread partials added in thread order, so a sum is bit-identical between runs with the same
// thread count (resume determinism needs it). Per-thread scratch buffers.
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

// The calling thread's buffer `slot` of at least n elements, grown as needed and never shrunk or
// cleared (fresh zeroed pages on every call cost more than the kernels using them; those write
// every element they read). Each Owner tag (one per kernel file) has its own buffers.
template <class Owner, class T>
T* thread_scratch(size_t slot, int64_t n) {
    thread_local std::vector<std::vector<T>> bufs;
    if (bufs.size() <= slot) bufs.resize(slot + 1);
    if ((int64_t)bufs[slot].size() < n) bufs[slot].resize((size_t)n);
    return bufs[slot].data();
}

}  // namespace ams::cpu
