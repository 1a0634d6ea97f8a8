// A small JSON value, parser and writer: enough for safetensors headers, model configs and the
// tool's --json output. Objects keep insertion order (a vector of pairs) so that what we write reads
// back in the same order and headers stay diffable; lookup is linear, which is fine at these sizes.
#pragma once
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace ams::json {

class Value {
public:
    enum class Type { Null, Bool, Number, String, Array, Object };
    using Array = std::vector<Value>;
    using Object = std::vector<std::pair<std::string, Value>>;

    Value() = default;  // null
    Value(std::nullptr_t) {}
    Value(bool b) : type_(Type::Bool), bool_(b) {}
    // Any integer or floating type (int, int64_t, size_t, double, ...); bool has its own overload.
    template <class T>
        requires(std::is_arithmetic_v<T> && !std::is_same_v<T, bool>)
    Value(T x) : type_(Type::Number), num_(static_cast<double>(x)) {}
    Value(const char* s) : type_(Type::String), str_(s) {}
    Value(std::string s) : type_(Type::String), str_(std::move(s)) {}
    static Value object();
    static Value array();

    Type type() const { return type_; }
    const char* type_name() const;  // "null", "bool", "number", ... for error messages
    bool is_null() const { return type_ == Type::Null; }
    bool is_bool() const { return type_ == Type::Bool; }
    bool is_number() const { return type_ == Type::Number; }
    bool is_string() const { return type_ == Type::String; }
    bool is_array() const { return type_ == Type::Array; }
    bool is_object() const { return type_ == Type::Object; }

    // Typed access; each throws ams::Error naming the expected and the actual type.
    bool as_bool() const;
    double as_number() const;
    int64_t as_int() const;  // also checks the number is integral and fits in int64
    const std::string& as_string() const;
    const Array& as_array() const;
    Array& as_array();
    const Object& as_object() const;
    Object& as_object();

    // Objects: find returns nullptr when absent; at throws naming the key; operator[] inserts a
    // null member when absent (and turns a null value into an empty object first).
    const Value* find(const std::string& key) const;
    const Value& at(const std::string& key) const;
    Value& operator[](const std::string& key);
    // Arrays: at(i) checks the index; push_back turns a null value into an empty array first.
    const Value& at(size_t i) const;
    void push_back(Value v);
    size_t size() const;  // elements of an array or members of an object; 0 otherwise

    bool operator==(const Value& o) const;

private:
    Type type_ = Type::Null;
    bool bool_ = false;
    double num_ = 0;
    std::string str_;
    Array arr_;
    Object obj_;
};

// Parses one complete JSON text (RFC 8259). Errors throw ams::Error naming `what` (e.g. the file)
// and the byte offset.
Value parse(const std::string& text, const std::string& what = "JSON");

// indent < 0: compact on one line; otherwise pretty-printed with that many spaces per level.
// Integral numbers below 2^53 print without a decimal point, others with 17 significant digits;
// NaN and infinities (which JSON cannot express) print as null.
std::string dump(const Value& v, int indent = -1);

}  // namespace ams::json
