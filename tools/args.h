// A small declarative command-line parser for the amsnet subcommands: every option is declared
// with its help text and default, so `--help` is generated and every bad value is reported with
// the option's name.
#pragma once
#include <climits>
#include <map>
#include <string>
#include <vector>

namespace ams::cli {

class Args {
public:
    Args(std::string command, std::string usage, std::string summary);

    // --name VALUE (repeatable when `repeat`); default "" means "not given".
    Args& option(const std::string& name, const std::string& metavar, const std::string& help,
                 const std::string& default_value = "", bool repeat = false);
    Args& flag(const std::string& name, const std::string& help);

    // Returns false when --help was asked for (help already printed). Throws ams::Error on bad usage.
    bool parse(int argc, char** argv, int first);

    bool given(const std::string& name) const;
    std::string get(const std::string& name) const;
    std::vector<std::string> all(const std::string& name) const;
    bool on(const std::string& name) const;
    // Numbers, checked: `min` and `max` are inclusive (an int's range unless a wider max is given,
    // so a cast to int never wraps).
    long long integer(const std::string& name, long long min, long long max = INT_MAX) const;
    double number(const std::string& name, double min, double max) const;
    std::string require(const std::string& name) const;  // error when missing

    std::string help() const;
    const std::string& command() const { return command_; }  // "train", "finetune", ...

private:
    struct Opt {
        std::string name, metavar, help, def;
        bool is_flag = false, repeat = false;
    };
    const Opt& find(const std::string& name) const;
    std::string command_, usage_, summary_;
    std::vector<Opt> opts_;
    std::map<std::string, std::vector<std::string>> values_;
};

}  // namespace ams::cli
