// Reverse-mode autograd on a tape. Each op that sees an input requiring grad appends one node:
// a closure that receives d(out) and ADDS its contribution into the gradient buffers of its inputs
// (grad_buffer). The convention is uniform: every backward kernel accumulates (+=), for parameters
// and activations alike; buffers start at zero when first touched. backward() walks the tape in
// reverse, frees each intermediate gradient once its producer has consumed it, then clears the
// tape (freeing every saved tensor). Leaf gradients persist and accumulate until zeroed.
// The tape keeps each output's gradient slot, not the output: a tensor's memory lives as long as a
// backward function reads it (Saved) or the caller holds it. A backward that only routes gradients
// to an input keeps a data-less handle of it.
#pragma once
#include <functional>
#include <vector>

#include "engine/tensor.h"

namespace ams::autograd {

bool grad_enabled();

// Inside this guard nothing is recorded and outputs never require grad (inference).
class NoGradGuard {
public:
    NoGradGuard();
    ~NoGradGuard();
    NoGradGuard(const NoGradGuard&) = delete;
    NoGradGuard& operator=(const NoGradGuard&) = delete;

private:
    bool prev_;
};

using BackwardFn = std::function<void(const Tensor& grad_out)>;

// True when grad mode is on and any input requires grad: the op must then call record().
bool needs_grad(std::initializer_list<Tensor> inputs);

// Marks out as produced by an op (requires_grad, non-leaf) and appends fn to the tape.
void record(Tensor& out, BackwardFn fn);

// The gradient buffer of t (same shape, contiguous, same device), zero-filled on first use.
Tensor grad_buffer(const Tensor& t);

// Seeds d(loss) = 1 (loss must hold one element), runs the tape backwards and clears it.
void backward(const Tensor& loss);

// A data-less handle of t, for a backward function that only routes a gradient to t: the same
// shape, dtype, device, requires_grad and gradient slot, and no data (reading it is an error).
// Undefined for an undefined t.
Tensor handle(const Tensor& t);

// What a backward function keeps of an input it reads. Under the bf16 precision policy an
// activation (a float32 tensor of at least kPackMinElements that is not a leaf needing a gradient,
// i.e. not a parameter) is kept as a bfloat16 copy, round to nearest even: half the memory, as
// PyTorch's autocast keeps its saved activations. The forward's result is unchanged; the backward
// reads the rounded values. Every other tensor is kept as it is.
class Saved {
public:
    static constexpr int64_t kPackMinElements = 1 << 14;

    Saved() = default;
    Saved(const Tensor& t);  // NOLINT: implicit, so a closure's capture list reads as before
    // The tensor: itself, or unpacked into fresh float32 memory that shares its gradient slot.
    Tensor get() const;
    bool packed() const { return packed_.defined(); }

private:
    Tensor tensor_;  // the tensor, or its handle when packed
    Tensor packed_;  // the bfloat16 copy
};

// Drops every recorded node (and the tensors they saved) without running them.
void clear_tape();
size_t tape_size();

}  // namespace ams::autograd
