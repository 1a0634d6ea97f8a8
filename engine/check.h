// Errors throw ams::Error carrying the failed expression, file and line, so tests can CHECK_THROWS
// and the tool can print one clean message. Destructors never throw.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace ams {

// what() is the message followed by " (expression at file:line)" when a check failed;
// message() is the part for users.
class Error : public std::runtime_error {
public:
    explicit Error(const std::string& message, const std::string& where = "")
        : std::runtime_error(where.empty() ? message : message + " " + where), message_(message) {}
    const std::string& message() const { return message_; }

private:
    std::string message_;
};

namespace detail {
[[noreturn]] void throw_error(const char* expr, const char* file, int line, const std::string& msg);
}  // namespace detail

// Builds a message from any streamable parts: ams::str("got ", n, " channels").
template <class... Args>
std::string str(const Args&... args) {
    std::ostringstream os;
    (os << ... << args);
    return os.str();
}

}  // namespace ams

// AMS_CHECK(cond, parts...): throws ams::Error("parts... (cond at file:line)") when cond is false.
#define AMS_CHECK(cond, ...)                                                                  \
    do {                                                                                      \
        if (!(cond)) ::ams::detail::throw_error(#cond, __FILE__, __LINE__, ::ams::str(__VA_ARGS__)); \
    } while (0)

// AMS_FAIL(parts...): a user-facing error with no expression attached.
#define AMS_FAIL(...) throw ::ams::Error(::ams::str(__VA_ARGS__))
