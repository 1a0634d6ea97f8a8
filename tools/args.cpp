#include "tools/args.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "engine/check.h"

namespace ams::cli {

Args::Args(std::string command, std::string usage, std::string summary)
    : command_(std::move(command)), usage_(std::move(usage)), summary_(std::move(summary)) {
    flag("help", "show this help and exit");
}

Args& Args::option(const std::string& name, const std::string& metavar, const std::string& help,
                   const std::string& def, bool repeat) {
    opts_.push_back(Opt{name, metavar, help, def, false, repeat});
    return *this;
}

Args& Args::flag(const std::string& name, const std::string& help) {
    opts_.push_back(Opt{name, "", help, "", true, false});
    return *this;
}

const Args::Opt& Args::find(const std::string& name) const {
    for (const Opt& o : opts_)
        if (o.name == name) return o;
    AMS_FAIL("internal: option --", name, " was never declared");
}

bool Args::parse(int argc, char** argv, int first) {
    for (int i = first; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "-h" || a == "--help") {
            std::fputs(help().c_str(), stdout);
            return false;
        }
        AMS_CHECK(a.rfind("--", 0) == 0, "unexpected argument '", a, "' (see amsnet ", command_, " --help)");
        std::string name = a.substr(2), value;
        bool inline_value = false;
        if (size_t eq = name.find('='); eq != std::string::npos) {
            value = name.substr(eq + 1);
            name = name.substr(0, eq);
            inline_value = true;
        }
        const Opt* opt = nullptr;
        for (const Opt& o : opts_)
            if (o.name == name) opt = &o;
        AMS_CHECK(opt, "unknown option --", name, " (see amsnet ", command_, " --help)");
        if (opt->is_flag) {
            AMS_CHECK(!inline_value, "--", name, " takes no value");
            values_[name] = {"1"};
            continue;
        }
        if (!inline_value) {
            AMS_CHECK(i + 1 < argc, "--", name, " needs a value (", opt->metavar, ")");
            value = argv[++i];
        }
        AMS_CHECK(opt->repeat || !values_.count(name), "--", name, " given more than once");
        values_[name].push_back(value);
    }
    return true;
}

bool Args::given(const std::string& name) const {
    find(name);
    return values_.count(name) > 0;
}

std::string Args::get(const std::string& name) const {
    const Opt& o = find(name);
    auto it = values_.find(name);
    return it == values_.end() ? o.def : it->second.back();
}

std::vector<std::string> Args::all(const std::string& name) const {
    find(name);
    auto it = values_.find(name);
    return it == values_.end() ? std::vector<std::string>{} : it->second;
}

bool Args::on(const std::string& name) const { return given(name); }

std::string Args::require(const std::string& name) const {
    std::string v = get(name);
    AMS_CHECK(!v.empty(), "--", name, " is required (see amsnet ", command_, " --help)");
    return v;
}

long long Args::integer(const std::string& name, long long min, long long max) const {
    std::string v = get(name);
    char* end = nullptr;
    errno = 0;
    long long x = std::strtoll(v.c_str(), &end, 10);
    AMS_CHECK(!v.empty() && end && *end == 0, "--", name, " expects an integer, got '", v, "'");
    AMS_CHECK(x >= min, "--", name, " must be at least ", min, ", got ", v);
    AMS_CHECK(x <= max && errno != ERANGE, "--", name, " must be at most ", max, ", got ", v);
    return x;
}

double Args::number(const std::string& name, double min, double max) const {
    std::string v = get(name);
    char* end = nullptr;
    double x = std::strtod(v.c_str(), &end);
    AMS_CHECK(!v.empty() && end && *end == 0, "--", name, " expects a number, got '", v, "'");
    AMS_CHECK(x >= min && x <= max, "--", name, " must be in [", min, ", ", max, "], got ", x);
    return x;
}

std::string Args::help() const {
    std::string s = "usage: amsnet " + command_ + " " + usage_ + "\n\n" + summary_ + "\n\noptions:\n";
    for (const Opt& o : opts_) {
        std::string left = "  --" + o.name + (o.is_flag ? "" : " " + o.metavar);
        if (left.size() < 26) left.resize(26, ' ');
        else left += "\n" + std::string(26, ' ');
        s += left + o.help;
        if (!o.def.empty()) s += " (default " + o.def + ")";
        if (o.repeat) s += " (repeatable)";
        s += "\n";
    }
    return s;
}

}  // namespace ams::cli
