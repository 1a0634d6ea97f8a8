#include "engine/autograd.h"

#include <memory>

#include "engine/device.h"
#include "engine/precision.h"

namespace ams::autograd {

namespace {

struct Node {
    // The output's gradient slot only: the output's memory is not the tape's to keep.
    std::shared_ptr<GradSlot> out;
    BackwardFn fn;
};

thread_local bool g_enabled = true;
thread_local std::vector<Node> g_tape;

}  // namespace

bool grad_enabled() { return g_enabled; }

NoGradGuard::NoGradGuard() : prev_(g_enabled) { g_enabled = false; }
NoGradGuard::~NoGradGuard() { g_enabled = prev_; }

bool needs_grad(std::initializer_list<Tensor> inputs) {
    if (!g_enabled) return false;
    for (const Tensor& t : inputs)
        if (t.defined() && t.requires_grad()) return true;
    return false;
}

void record(Tensor& out, BackwardFn fn) {
    out.impl().requires_grad = true;
    out.impl().is_leaf = false;
    out.impl().grad_slot();
    g_tape.push_back(Node{out.impl().slot, std::move(fn)});
}

Tensor grad_buffer(const Tensor& t) {
    GradSlot& slot = t.impl().grad_slot();
    if (!slot.grad) slot.grad = Tensor::zeros(t.shape(), t.dtype(), t.device()).impl_ptr();
    return Tensor(slot.grad);
}

Tensor handle(const Tensor& t) {
    if (!t.defined()) return Tensor();
    t.impl().grad_slot();  // before the copy, so that both share it
    auto h = std::make_shared<TensorImpl>(t.impl());
    h->storage = std::make_shared<Storage>(t.device());
    h->offset = 0;
    return Tensor(h);
}

Saved::Saved(const Tensor& t) : tensor_(t) {
    const bool activation = t.defined() && !(t.is_leaf_tensor() && t.requires_grad());
    if (activation && precision() == Precision::BF16 && t.dtype() == DType::F32 &&
        t.numel() >= kPackMinElements && t.is_contiguous()) {
        packed_ = t.to(DType::BF16);
        tensor_ = handle(t);
    }
}

Tensor Saved::get() const {
    if (!packed_.defined()) return tensor_;
    auto impl = std::make_shared<TensorImpl>(tensor_.impl());  // shape, flags, gradient slot
    impl->storage = packed_.to(DType::F32).impl().storage;
    return Tensor(impl);
}

void backward(const Tensor& loss) {
    AMS_CHECK(loss.numel() == 1, "backward: loss must hold one element, got shape ",
              shape_str(loss.shape()));
    AMS_CHECK(loss.requires_grad(), "backward: loss does not require grad (nothing was recorded)");
    grad_buffer(loss).fill_(1.0);
    // Take the tape first: nodes that run must not see ops they record themselves.
    std::vector<Node> tape = std::move(g_tape);
    g_tape.clear();
    {
        NoGradGuard no_grad;
        for (auto it = tape.rbegin(); it != tape.rend(); ++it) {
            std::shared_ptr<GradSlot> out = std::move(it->out);
            BackwardFn fn = std::move(it->fn);  // freed (with its saved tensors) after this step
            if (!out->grad) continue;           // nothing flowed into this op's output
            fn(Tensor(out->grad));
            out->grad.reset();  // an op's output: every consumer ran already, free it now
        }
    }
}

void clear_tape() { g_tape.clear(); }
size_t tape_size() { return g_tape.size(); }

}  // namespace ams::autograd
