#include "engine/json.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "engine/check.h"

namespace ams::json {

// ---- Value

Value Value::object() {
    Value v;
    v.type_ = Type::Object;
    return v;
}

Value Value::array() {
    Value v;
    v.type_ = Type::Array;
    return v;
}

const char* Value::type_name() const {
    switch (type_) {
        case Type::Null: return "null";
        case Type::Bool: return "bool";
        case Type::Number: return "number";
        case Type::String: return "string";
        case Type::Array: return "array";
        case Type::Object: return "object";
    }
    return "?";
}

namespace {
void expect(const Value& v, Value::Type t, const char* name) {
    if (v.type() != t) AMS_FAIL("JSON: expected ", name, ", got ", v.type_name());
}
}  // namespace

bool Value::as_bool() const {
    expect(*this, Type::Bool, "a bool");
    return bool_;
}

double Value::as_number() const {
    expect(*this, Type::Number, "a number");
    return num_;
}

int64_t Value::as_int() const {
    expect(*this, Type::Number, "an integer");
    // 2^63 is exactly representable; anything at or above it does not fit.
    if (!(std::floor(num_) == num_ && num_ >= -9223372036854775808.0 && num_ < 9223372036854775808.0))
        AMS_FAIL("JSON: expected an integer, got ", dump(*this));
    return static_cast<int64_t>(num_);
}

const std::string& Value::as_string() const {
    expect(*this, Type::String, "a string");
    return str_;
}

const Value::Array& Value::as_array() const {
    expect(*this, Type::Array, "an array");
    return arr_;
}

Value::Array& Value::as_array() {
    expect(*this, Type::Array, "an array");
    return arr_;
}

const Value::Object& Value::as_object() const {
    expect(*this, Type::Object, "an object");
    return obj_;
}

Value::Object& Value::as_object() {
    expect(*this, Type::Object, "an object");
    return obj_;
}

const Value* Value::find(const std::string& key) const {
    if (type_ != Type::Object) return nullptr;
    for (const auto& [k, v] : obj_)
        if (k == key) return &v;
    return nullptr;
}

const Value& Value::at(const std::string& key) const {
    expect(*this, Type::Object, "an object");
    const Value* v = find(key);
    if (!v) AMS_FAIL("JSON: missing key '", key, "'");
    return *v;
}

Value& Value::operator[](const std::string& key) {
    if (type_ == Type::Null) type_ = Type::Object;
    expect(*this, Type::Object, "an object");
    for (auto& [k, v] : obj_)
        if (k == key) return v;
    obj_.emplace_back(key, Value());
    return obj_.back().second;
}

const Value& Value::at(size_t i) const {
    expect(*this, Type::Array, "an array");
    if (i >= arr_.size()) AMS_FAIL("JSON: index ", i, " out of range for an array of ", arr_.size());
    return arr_[i];
}

void Value::push_back(Value v) {
    if (type_ == Type::Null) type_ = Type::Array;
    expect(*this, Type::Array, "an array");
    arr_.push_back(std::move(v));
}

size_t Value::size() const {
    return type_ == Type::Array ? arr_.size() : type_ == Type::Object ? obj_.size() : 0;
}

bool Value::operator==(const Value& o) const {
    if (type_ != o.type_) return false;
    switch (type_) {
        case Type::Null: return true;
        case Type::Bool: return bool_ == o.bool_;
        case Type::Number: return num_ == o.num_;
        case Type::String: return str_ == o.str_;
        case Type::Array: return arr_ == o.arr_;
        case Type::Object: return obj_ == o.obj_;
    }
    return false;
}

// ---- parser: recursive descent over the bytes; depth is bounded so hostile input cannot overflow
// the stack.

namespace {

class Parser {
public:
    Parser(const std::string& text, const std::string& what) : s_(text), what_(what) {}

    Value document() {
        Value v = value(0);
        skip_ws();
        if (i_ != s_.size()) fail("unexpected data after the JSON value");
        return v;
    }

private:
    const std::string& s_;
    const std::string& what_;
    size_t i_ = 0;
    static constexpr int kMaxDepth = 256;

    [[noreturn]] void fail(const std::string& msg) const {
        AMS_FAIL(what_, ": invalid JSON: ", msg, " at byte ", i_);
    }

    void skip_ws() {
        while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r'))
            ++i_;
    }

    char peek() {
        if (i_ >= s_.size()) fail("unexpected end of input");
        return s_[i_];
    }

    void literal(const char* word) {
        for (const char* p = word; *p; ++p, ++i_)
            if (i_ >= s_.size() || s_[i_] != *p) fail(std::string("expected '") + word + "'");
    }

    Value value(int depth) {
        if (depth > kMaxDepth) fail("nesting deeper than 256 levels");
        skip_ws();
        char c = peek();
        switch (c) {
            case '{': return object(depth);
            case '[': return array(depth);
            case '"': return Value(string());
            case 't': literal("true"); return Value(true);
            case 'f': literal("false"); return Value(false);
            case 'n': literal("null"); return Value();
            default:
                if (c == '-' || (c >= '0' && c <= '9')) return number();
                fail(std::string("unexpected character '") + c + "'");
        }
    }

    Value object(int depth) {
        Value obj = Value::object();
        ++i_;  // '{'
        skip_ws();
        if (peek() == '}') {
            ++i_;
            return obj;
        }
        for (;;) {
            skip_ws();
            if (peek() != '"') fail("expected a string key");
            size_t key_at = i_;
            std::string key = string();
            // Duplicate keys are legal JSON but ambiguous (which tensor wins?): reject them.
            if (obj.find(key)) {
                i_ = key_at;
                fail("duplicate key '" + key + "'");
            }
            skip_ws();
            if (peek() != ':') fail("expected ':'");
            ++i_;
            obj.as_object().emplace_back(std::move(key), value(depth + 1));
            skip_ws();
            char c = peek();
            ++i_;
            if (c == '}') return obj;
            if (c != ',') {
                --i_;
                fail("expected ',' or '}'");
            }
        }
    }

    Value array(int depth) {
        Value arr = Value::array();
        ++i_;  // '['
        skip_ws();
        if (peek() == ']') {
            ++i_;
            return arr;
        }
        for (;;) {
            arr.push_back(value(depth + 1));
            skip_ws();
            char c = peek();
            ++i_;
            if (c == ']') return arr;
            if (c != ',') {
                --i_;
                fail("expected ',' or ']'");
            }
        }
    }

    Value number() {
        // Check the strict JSON grammar first: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
        size_t start = i_;
        auto digits = [&] {
            size_t d = i_;
            while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
            if (i_ == d) fail("expected a digit");
        };
        if (s_[i_] == '-') ++i_;
        if (i_ < s_.size() && s_[i_] == '0')
            ++i_;
        else
            digits();
        if (i_ < s_.size() && s_[i_] == '.') {
            ++i_;
            digits();
        }
        if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
            ++i_;
            if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
            digits();
        }
        double x = 0;
        // from_chars is locale-independent. It reports both overflow and underflow as out of
        // range: underflow (1e-400) is fine as 0, overflow (1e999) is an error rather than inf.
        auto [end, ec] = std::from_chars(s_.data() + start, s_.data() + i_, x);
        if (ec == std::errc::result_out_of_range) {
            x = std::strtod(s_.substr(start, i_ - start).c_str(), nullptr);
            if (!std::isfinite(x)) {
                i_ = start;
                fail("number out of range");
            }
        } else if (ec != std::errc() || end != s_.data() + i_) {
            i_ = start;
            fail("bad number");
        }
        return Value(x);
    }

    unsigned hex4() {
        unsigned u = 0;
        for (int k = 0; k < 4; ++k, ++i_) {
            char c = peek();
            u <<= 4;
            if (c >= '0' && c <= '9') u |= (unsigned)(c - '0');
            else if (c >= 'a' && c <= 'f') u |= (unsigned)(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F') u |= (unsigned)(c - 'A' + 10);
            else fail("bad \\u escape");
        }
        return u;
    }

    static void put_utf8(std::string& out, unsigned cp) {
        if (cp < 0x80) {
            out += (char)cp;
        } else if (cp < 0x800) {
            out += (char)(0xC0 | (cp >> 6));
            out += (char)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out += (char)(0xE0 | (cp >> 12));
            out += (char)(0x80 | ((cp >> 6) & 0x3F));
            out += (char)(0x80 | (cp & 0x3F));
        } else {
            out += (char)(0xF0 | (cp >> 18));
            out += (char)(0x80 | ((cp >> 12) & 0x3F));
            out += (char)(0x80 | ((cp >> 6) & 0x3F));
            out += (char)(0x80 | (cp & 0x3F));
        }
    }

    std::string string() {
        ++i_;  // opening quote
        std::string out;
        for (;;) {
            char c = peek();
            if (c == '"') {
                ++i_;
                return out;
            }
            if ((unsigned char)c < 0x20) fail("control character in string");
            if (c != '\\') {  // raw bytes (UTF-8 included) pass through
                out += c;
                ++i_;
                continue;
            }
            ++i_;
            char e = peek();
            ++i_;
            switch (e) {
                case '"': out += '"'; break;
                case '\\': out += '\\'; break;
                case '/': out += '/'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'n': out += '\n'; break;
                case 'r': out += '\r'; break;
                case 't': out += '\t'; break;
                case 'u': {
                    unsigned cp = hex4();
                    if (cp >= 0xDC00 && cp <= 0xDFFF) fail("unpaired low surrogate in \\u escape");
                    if (cp >= 0xD800 && cp <= 0xDBFF) {  // UTF-16 pair -> one code point
                        if (i_ + 1 >= s_.size() || s_[i_] != '\\' || s_[i_ + 1] != 'u')
                            fail("unpaired high surrogate in \\u escape");
                        i_ += 2;
                        unsigned lo = hex4();
                        if (lo < 0xDC00 || lo > 0xDFFF) fail("bad low surrogate in \\u escape");
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    }
                    put_utf8(out, cp);
                    break;
                }
                default:
                    --i_;
                    fail(std::string("bad escape '\\") + e + "'");
            }
        }
    }
};

// ---- writer

// At s[i] (a byte >= 0x80): the length of the well-formed UTF-8 sequence there (Unicode Table 3-7),
// or minus the length of the maximal subpart to replace by one U+FFFD (at least 1 byte), the
// W3C / Unicode practice that Python's decode(errors="replace") follows.
int utf8_sequence(const std::string& s, size_t i) {
    const unsigned char c = (unsigned char)s[i];
    int n = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // the second byte's range
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c >= 0xE0 && c <= 0xEF) n = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4) n = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    if (n == 0) return -1;
    for (int k = 1; k < n; ++k) {
        if (i + k >= s.size()) return -k;
        const unsigned char d = (unsigned char)s[i + k];
        if (k == 1 ? d < lo || d > hi : d < 0x80 || d > 0xBF) return -k;
    }
    return n;
}

void dump_string(std::string& out, const std::string& s) {
    out += '"';
    for (size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if ((unsigned char)c >= 0x80) {
            // JSON is UTF-8 (and a safetensors header must be): bytes that are not, e.g. a
            // Latin-1 file name, become U+FFFD, as decoders do.
            const int n = utf8_sequence(s, i);
            if (n > 0) out.append(s, i, (size_t)n);
            else out += "\xEF\xBF\xBD";
            i += (size_t)std::abs(n) - 1;
            continue;
        }
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if ((unsigned char)c < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", (unsigned)(unsigned char)c);
                    out += buf;
                } else {
                    out += c;
                }
        }
    }
    out += '"';
}

void dump_number(std::string& out, double x) {
    char buf[32];
    if (!std::isfinite(x))
        out += "null";
    else if (std::floor(x) == x && std::fabs(x) < 9007199254740992.0)  // 2^53: exact as an integer
        out += std::to_string(static_cast<int64_t>(x));
    else {
        // Shortest form that reads back exactly (0.6, not 0.59999999999999998).
        for (int prec = 15; prec <= 17; ++prec) {
            std::snprintf(buf, sizeof buf, "%.*g", prec, x);
            if (std::strtod(buf, nullptr) == x) break;
        }
        out += buf;
    }
}

void dump_value(std::string& out, const Value& v, int indent, int level) {
    auto newline = [&](int lv) {
        if (indent < 0) return;
        out += '\n';
        out.append((size_t)(indent * lv), ' ');
    };
    switch (v.type()) {
        case Value::Type::Null: out += "null"; break;
        case Value::Type::Bool: out += v.as_bool() ? "true" : "false"; break;
        case Value::Type::Number: dump_number(out, v.as_number()); break;
        case Value::Type::String: dump_string(out, v.as_string()); break;
        case Value::Type::Array: {
            const auto& a = v.as_array();
            out += '[';
            for (size_t k = 0; k < a.size(); ++k) {
                if (k) out += ',';
                newline(level + 1);
                dump_value(out, a[k], indent, level + 1);
            }
            if (!a.empty()) newline(level);
            out += ']';
            break;
        }
        case Value::Type::Object: {
            const auto& o = v.as_object();
            out += '{';
            for (size_t k = 0; k < o.size(); ++k) {
                if (k) out += ',';
                newline(level + 1);
                dump_string(out, o[k].first);
                out += indent < 0 ? ":" : ": ";
                dump_value(out, o[k].second, indent, level + 1);
            }
            if (!o.empty()) newline(level);
            out += '}';
            break;
        }
    }
}

}  // namespace

Value parse(const std::string& text, const std::string& what) { return Parser(text, what).document(); }

std::string dump(const Value& v, int indent) {
    std::string out;
    dump_value(out, v, indent, 0);
    return out;
}

}  // namespace ams::json
