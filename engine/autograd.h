// Reverse-mode autograd on a tape. Each op that sees an input requiring grad appends one node:
// a closure that receives d(out) and ADDS its contribution into the gradient buffers of its inputs
// (grad_buffer). The convention is uniform: every backward kernel accumulates (+=), for parameters
// and activations alike; buffers start at zero when first touched. backward() walks the tape in
// reverse, frees each intermediate gradient once its producer has consumed it, then clears the
// tape (freeing every saved tensor). Leaf gradients persist and accumulate until zeroed.
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

// Drops every recorded node (and the tensors they saved) without running them.
void clear_tape();
size_t tape_size();

}  // namespace ams::autograd
