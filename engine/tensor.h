// Tensor: an NCHW-ordered (PyTorch dimension order), strided view of a shared storage on one device.
// Tensors are cheap handles (shared_ptr); copying a Tensor aliases the same data. Autograd state
// (requires_grad, the accumulated gradient) lives in the shared impl, the gradient in a slot that
// autograd's data-less handles of the tensor share, see engine/autograd.h.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "engine/check.h"
#include "engine/dtype.h"

namespace ams {

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);  // "(2, 3, 4)"
int64_t shape_numel(const Shape& s);

// Owns one allocation on a device; freed when the last view goes.
struct Storage {
    void* ptr = nullptr;
    size_t bytes = 0;
    Device device = Device::CPU;
    Storage(size_t bytes, Device device);
    explicit Storage(Device device) : device(device) {}  // no memory: an autograd handle's
    ~Storage();
    Storage(const Storage&) = delete;
    Storage& operator=(const Storage&) = delete;
};

struct TensorImpl;

// Where backward accumulates a tensor's gradient. The tape and the backward functions keep the slot
// (or a handle holding it), not the tensor, so they do not keep the tensor's memory alive.
struct GradSlot {
    std::shared_ptr<TensorImpl> grad;  // same shape, contiguous; accumulated by backward
};

struct TensorImpl {
    std::shared_ptr<Storage> storage;
    int64_t offset = 0;  // in elements
    Shape shape, strides;
    DType dtype = DType::F32;
    bool requires_grad = false;
    bool is_leaf = true;              // false when an op made it (its gradient is freed after use)
    std::shared_ptr<GradSlot> slot;   // made on first use (grad_slot()); a view gets its own

    GradSlot& grad_slot() {
        if (!slot) slot = std::make_shared<GradSlot>();
        return *slot;
    }
};

class Tensor {
public:
    Tensor() = default;
    explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

    // Factories. Contents of empty() are unspecified.
    static Tensor empty(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
    static Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
    static Tensor full(const Shape& shape, double value, DType dtype = DType::F32,
                       Device device = Device::CPU);
    static Tensor from_vector(const std::vector<float>& v, const Shape& shape,
                              Device device = Device::CPU);
    static Tensor from_vector(const std::vector<double>& v, const Shape& shape,
                              Device device = Device::CPU);
    // A view into existing storage (used for parameters inside one flat buffer).
    static Tensor view_of(std::shared_ptr<Storage> storage, int64_t offset, const Shape& shape,
                          DType dtype);

    bool defined() const { return impl_ != nullptr; }
    const Shape& shape() const { return impl().shape; }
    const Shape& strides() const { return impl().strides; }
    int64_t dim(int i) const;  // negative i counts from the end
    int ndim() const { return (int)impl().shape.size(); }
    int64_t numel() const { return shape_numel(impl().shape); }
    DType dtype() const { return impl().dtype; }
    Device device() const { return impl().storage->device; }
    bool is_cuda() const { return device() == Device::CUDA; }
    bool is_contiguous() const;
    size_t nbytes() const { return (size_t)numel() * dtype_size(dtype()); }

    // Raw pointer to the first element (checks the element type matches T).
    template <class T>
    T* data() const;
    void* raw_data() const;

    // Views (no copy, no autograd): reshape needs a contiguous tensor; narrow slices one dim.
    Tensor reshape(const Shape& shape) const;
    Tensor narrow(int dim, int64_t start, int64_t length) const;

    // Copies (no autograd).
    Tensor contiguous() const;  // itself when already contiguous
    Tensor clone() const;
    Tensor to(Device device) const;  // itself when already there
    Tensor to(DType dtype) const;    // itself when already that type
    void copy_(const Tensor& src);   // same shape; any device/dtype pair
    void fill_(double value);
    void zero_() { fill_(0.0); }

    std::vector<float> to_vector() const;    // host copy as float
    std::vector<double> to_double() const;   // host copy as double
    double item() const;                     // single element

    // Autograd (engine/autograd.h has the tape).
    bool requires_grad() const { return impl().requires_grad; }
    bool is_leaf_tensor() const { return impl().is_leaf; }  // not made by a recorded op
    Tensor& requires_grad_(bool on = true);
    Tensor grad() const;  // undefined when no gradient has reached it
    void set_grad(const Tensor& g);  // a parameter's gradient lives in the flat gradient buffer
    void backward() const;           // from a scalar: seeds d(self)=1 and runs the tape

    TensorImpl& impl() const {
        AMS_CHECK(impl_, "use of an undefined tensor");
        return *impl_;
    }
    const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
    bool same(const Tensor& o) const { return impl_ == o.impl_; }

private:
    std::shared_ptr<TensorImpl> impl_;
};

template <class T>
struct dtype_of;
template <>
struct dtype_of<float> { static constexpr DType value = DType::F32; };
template <>
struct dtype_of<double> { static constexpr DType value = DType::F64; };
template <>
struct dtype_of<uint16_t> { static constexpr DType value = DType::BF16; };  // or F16: raw bits

template <class T>
T* Tensor::data() const {
    if constexpr (std::is_same_v<T, uint16_t>)
        AMS_CHECK(dtype() == DType::F16 || dtype() == DType::BF16, "tensor is ", dtype_name(dtype()));
    else
        AMS_CHECK(dtype() == dtype_of<T>::value, "tensor is ", dtype_name(dtype()), ", asked for ",
                  dtype_name(dtype_of<T>::value));
    return static_cast<T*>(raw_data());
}

// Contiguous row-major strides for a shape.
Shape contiguous_strides(const Shape& s);

// The flat index of t's first value that is NaN or infinite, as float32 (so a float64 value beyond
// float32's range counts), any device; -1 when every value is finite.
int64_t first_nonfinite(const Tensor& t);

}  // namespace ams
