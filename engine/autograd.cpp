#include "engine/autograd.h"

#include <memory>

#include "engine/device.h"

namespace ams::autograd {

namespace {

struct Node {
    // Strong: consumers free their saved inputs as soon as they ran, which may be this output
    // (holding its accumulated gradient). No cycle: a tensor never points back at its node.
    std::shared_ptr<TensorImpl> out;
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
    g_tape.push_back(Node{out.impl_ptr(), std::move(fn)});
}

Tensor grad_buffer(const Tensor& t) {
    TensorImpl& impl = t.impl();
    if (!impl.grad) {
        Tensor g = Tensor::zeros(t.shape(), t.dtype(), t.device());
        impl.grad = g.impl_ptr();
    }
    return Tensor(impl.grad);
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
            std::shared_ptr<TensorImpl> out = std::move(it->out);
            BackwardFn fn = std::move(it->fn);  // freed (with its saved tensors) after this step
            if (!out->grad) continue;           // nothing flowed into this op's output
            fn(Tensor(out->grad));
            if (!out->is_leaf) out->grad.reset();  // every consumer ran already: free it now
        }
    }
}

void clear_tape() { g_tape.clear(); }
size_t tape_size() { return g_tape.size(); }

}  // namespace ams::autograd
