// The emulator's execution engine (include/cuda_emu/exec.h): blocks in order, a block's threads as
// fibers switched at barriers and warp exchanges, errors reported through cudaGetLastError.
// _FORTIFY_SOURCE (on by default in some distributions' compilers) makes _longjmp refuse to jump
// to another stack, which is exactly what switching fibers does.
#undef _FORTIFY_SOURCE
#include <setjmp.h>
#include <ucontext.h>

#include <algorithm>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "cuda_emu/state.h"
#include "cuda_runtime.h"

namespace cuda_emu {

ThreadCtx* g_thread = nullptr;

namespace {

constexpr size_t kStackBytes = 256 << 10;
constexpr int kMaxThreadsPerBlock = 1024;
constexpr size_t kMaxSharedBytes = 48 << 10;

enum class State { Ready, AtBarrier, AtWarp, Done };

// A fiber is made once (makecontext) and then runs the body of every block it is given in a loop;
// all switches after that are _setjmp/_longjmp, which make no system call (swapcontext saves the
// signal mask with one each time).
struct Fiber {
    jmp_buf jb;
    ThreadCtx tc;
    State state = State::Done;
    bool started = false;  // has a stack frame in fiber_main
    int exchange = 0;      // warp exchanges done: selects the slot buffer
    std::unique_ptr<char[]> stack;
};

struct Block {
    jmp_buf sched;
    ucontext_t boot_return, boot;
    std::vector<Fiber> fibers;
    int n = 0;  // threads of the block now running
    int current = -1;
    const std::function<void()>* body = nullptr;
    std::vector<uint64_t> slots;  // [2][warps][32]: double-buffered exchange values
    std::string error;
};

Block& block() {
    static Block* b = new Block;  // never destroyed: stacks are reused by every launch
    return *b;
}

// Back to the scheduler; returns when the scheduler resumes this fiber.
void yield(State s) {
    Block& b = block();
    Fiber& f = b.fibers[b.current];
    f.state = s;
    if (!_setjmp(f.jb)) _longjmp(b.sched, 1);
}

void fiber_main() {
    Block& b = block();
    Fiber& f = b.fibers[b.current];
    // First entry (from swapcontext): record this frame, go back to the booting scheduler.
    if (!_setjmp(f.jb)) swapcontext(&b.boot, &b.boot_return);
    for (;;) {
        (*b.body)();
        yield(State::Done);
    }
}

void start_fiber(Block& b, int t) {
    Fiber& f = b.fibers[t];
    if (!f.stack) f.stack.reset(new char[kStackBytes]);
    getcontext(&b.boot);
    b.boot.uc_stack.ss_sp = f.stack.get();
    b.boot.uc_stack.ss_size = kStackBytes;
    b.boot.uc_link = nullptr;  // fiber_main never returns
    makecontext(&b.boot, fiber_main, 0);
    b.current = t;
    swapcontext(&b.boot_return, &b.boot);
    f.started = true;
}

bool reverse_order() {
    static const bool rev = [] {
        const char* v = std::getenv("CUDA_EMU_ORDER");
        return v && std::string(v) == "reverse";
    }();
    return rev;
}

// Runs one block to completion; false (with b.error set) on a barrier error. After an error the
// fibers are left mid-body: they are restarted from scratch for the next launch.
bool run_block(Block& b, int n) {
    const int warps = (n + 31) / 32;
    for (int t = 0; t < n; ++t) {
        Fiber& f = b.fibers[t];
        if (!f.started) start_fiber(b, t);
        f.state = State::Ready;
        f.exchange = 0;
    }
    for (;;) {
        bool ran = false;
        for (int i = 0; i < n; ++i) {
            const int t = reverse_order() ? n - 1 - i : i;
            Fiber& f = b.fibers[t];
            if (f.state != State::Ready) continue;
            b.current = t;
            g_thread = &f.tc;
            if (!_setjmp(b.sched)) _longjmp(f.jb, 1);
            ran = true;
        }
        int done = 0, at_barrier = 0;
        for (int t = 0; t < n; ++t) {
            done += b.fibers[t].state == State::Done;
            at_barrier += b.fibers[t].state == State::AtBarrier;
        }
        if (done == n) return true;
        std::string err;
        bool released = false;
        if (at_barrier > 0 && at_barrier + done == n) {
            if (done > 0)
                err = std::to_string(at_barrier) + " threads wait at __syncthreads() that " + std::to_string(done) +
                      " threads of the block never reach";
            else
                for (int t = 0; t < n; ++t) b.fibers[t].state = State::Ready;
            released = true;
        }
        for (int w = 0; w < warps && err.empty(); ++w) {
            const int lo = w * 32, hi = std::min(n, lo + 32);
            int waiting = 0, finished = 0;
            for (int t = lo; t < hi; ++t) {
                waiting += b.fibers[t].state == State::AtWarp;
                finished += b.fibers[t].state == State::Done;
            }
            if (waiting == 0) continue;
            if (waiting == hi - lo) {
                for (int t = lo; t < hi; ++t) b.fibers[t].state = State::Ready;
                released = true;
            } else if (waiting + finished == hi - lo) {
                err = "a warp shuffle that " + std::to_string(finished) + " lanes of warp " + std::to_string(w) +
                      " never reach";
            }
        }
        if (err.empty() && !released && !ran)
            err = "deadlock: threads wait at different barriers (__syncthreads and a warp shuffle)";
        if (!err.empty()) {
            b.error = err;
            for (int t = 0; t < n; ++t) b.fibers[t].started = b.fibers[t].state == State::Done;
            return false;
        }
    }
}

}  // namespace

void syncthreads() { yield(State::AtBarrier); }

int lane_id() { return block().current & 31; }

uint64_t warp_exchange(unsigned mask, uint64_t bits, int src) {
    Block& b = block();
    Fiber& f = b.fibers[b.current];
    const int t = b.current, lane = t & 31, warp = t >> 5;
    const int buf = f.exchange++ & 1;
    const size_t warps = b.slots.size() / 64;
    uint64_t* slot = &b.slots[(buf * warps + warp) * 32];
    if (mask != 0xffffffffu) b.error = "warp shuffle with a partial mask (not emulated)";
    if (std::min(b.n - warp * 32, 32) < 32 || src < 0 || src >= 32)
        b.error = "full-warp shuffle in a warp of " + std::to_string(std::min(b.n - warp * 32, 32)) + " threads";
    slot[lane] = bits;
    yield(State::AtWarp);
    return slot[src];
}

void launch_impl(dim3 grid, dim3 block_dim, size_t smem, std::function<void()> body) {
    std::lock_guard<std::recursive_mutex> lock(big_lock());
    const uint64_t nt = (uint64_t)block_dim.x * block_dim.y * block_dim.z;
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || nt == 0 || nt > kMaxThreadsPerBlock || block_dim.z > 64 ||
        grid.y > 65535 || grid.z > 65535 || grid.x > 0x7fffffffu || smem > kMaxSharedBytes) {
        set_error(cudaErrorInvalidConfiguration,
                  "launch grid (" + std::to_string(grid.x) + ", " + std::to_string(grid.y) + ", " +
                      std::to_string(grid.z) + "), block (" + std::to_string(block_dim.x) + ", " +
                      std::to_string(block_dim.y) + ", " + std::to_string(block_dim.z) + "), " +
                      std::to_string(smem) + " bytes of shared memory");
        return;
    }
    if (block_dim.x % 32 != 0 && nt > 32) {
        // Legal in CUDA, but warps then mix rows; the engine never does it, so it is not emulated.
        set_error(cudaErrorInvalidConfiguration, "block x-size not a multiple of 32 (not emulated)");
        return;
    }
    Block& b = block();
    const int n = (int)nt;
    if (b.fibers.empty()) b.fibers = std::vector<Fiber>(kMaxThreadsPerBlock);  // never reallocated
    b.n = n;
    b.slots.assign((size_t)2 * ((n + 31) / 32) * 32, 0);
    b.body = &body;
    b.error.clear();
    // Blocks run one after another; in reverse order too under CUDA_EMU_ORDER=reverse, so a kernel
    // whose result depends on the order of its blocks (two blocks writing one element, a block
    // reading another's output) gives different results in the two runs.
    const uint64_t blocks = (uint64_t)grid.x * grid.y * grid.z;
    for (uint64_t i = 0; i < blocks; ++i) {
        const uint64_t k = reverse_order() ? blocks - 1 - i : i;
        const unsigned x = (unsigned)(k % grid.x), y = (unsigned)(k / grid.x % grid.y),
                       z = (unsigned)(k / ((uint64_t)grid.x * grid.y));
        for (int t = 0; t < n; ++t) {
            ThreadCtx& tc = b.fibers[t].tc;
            tc.thread_idx = uint3{(unsigned)t % block_dim.x, (unsigned)t / block_dim.x % block_dim.y,
                                  (unsigned)t / (block_dim.x * block_dim.y)};
            tc.block_idx = uint3{x, y, z};
            tc.block_dim = block_dim;
            tc.grid_dim = grid;
        }
        if (!run_block(b, n) || !b.error.empty()) {
            set_error(cudaErrorLaunchFailure, "block (" + std::to_string(x) + ", " + std::to_string(y) + ", " +
                                                  std::to_string(z) + "): " + b.error);
            g_thread = nullptr;
            return;
        }
    }
    g_thread = nullptr;
}

}  // namespace cuda_emu
