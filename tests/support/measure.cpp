#include "tests/support/measure.hpp"

#include "tests/support/process.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <string_view>
#include <sstream>

namespace thingmux::test {

std::size_t resident_bytes(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(in, line);) {
        if (line.starts_with("VmRSS:")) return std::stoul(line.substr(6)) * 1024;  // "VmRSS:   14080 kB"
    }
    return 0;
}

long cpu_ticks(pid_t pid) {
    const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
    const auto paren = stat.rfind(')');
    if (paren == std::string::npos) return -1;
    std::istringstream fields(stat.substr(paren + 2));
    std::string field;
    long utime = 0, stime = 0;
    // After the command name: state is field 3, utime 14, stime 15.
    for (int i = 3; i <= 15 && fields >> field; ++i) {
        if (i == 14) utime = std::stol(field);
        if (i == 15) stime = std::stol(field);
    }
    return utime + stime;
}

bool raise_open_file_limit(std::size_t needed) {
    rlimit files{};
    if (::getrlimit(RLIMIT_NOFILE, &files) != 0 || files.rlim_max < needed) return false;
    files.rlim_cur = files.rlim_max;
    return ::setrlimit(RLIMIT_NOFILE, &files) == 0;
}

std::size_t open_descriptors(pid_t pid) {
    std::error_code ec;
    std::size_t n = 0;
    for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
        ++n;
    return n;
}

std::vector<std::string> lines_of(const std::filesystem::path& file) {
    std::ifstream in(file);
    std::vector<std::string> out;
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
}

std::vector<std::string> complete_lines(const std::string& text) {
    std::vector<std::string> out;
    for (std::size_t begin = 0, end = 0; (end = text.find('\n', begin)) != std::string::npos; begin = end + 1)
        out.push_back(text.substr(begin, end - begin));
    return out;
}

std::size_t missing_from(const std::vector<std::string>& got, const std::vector<std::string>& expected) {
    const std::set<std::string_view> seen(got.begin(), got.end());
    return static_cast<std::size_t>(
        std::count_if(expected.begin(), expected.end(), [&](const std::string& line) { return !seen.contains(line); }));
}

std::size_t lines_containing(const std::filesystem::path& file, const std::string& text) {
    std::size_t n = 0;
    for (const auto& line : lines_of(file))
        if (line.find(text) != std::string::npos) ++n;
    return n;
}

std::size_t count_of(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
    return n;
}

std::string lines_with(const std::string& text, const std::string& what) {
    std::string out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        if (line.find(what) != std::string::npos) out += line + "\n";
    return out;
}

}  // namespace thingmux::test
