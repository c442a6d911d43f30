#include "tests/support/credentials_provider_fixture.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>

namespace thingmux::test {
namespace fs = std::filesystem;
namespace {

constexpr int ready_timeout_ms = 15'000;

const char* mode_name(credentials_provider_fixture::mode m) {
    using mode = credentials_provider_fixture::mode;
    switch (m) {
        case mode::credentials:
            return "credentials";
        case mode::refuse:
            return "refuse";
        case mode::garbage:
            return "garbage";
        case mode::huge:
            return "huge";
        case mode::silent:
            return "silent";
        case mode::expired:
            return "expired";
    }
    return "credentials";
}

}  // namespace

credentials_provider_fixture::credentials_provider_fixture(options opts) : opts_(std::move(opts)) {
    std::string tmpl = (fs::temp_directory_path() / "thingmux-credentials-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::system_error(errno, std::generic_category(), "mkdtemp " + tmpl);
    dir_ = tmpl;
    try {
        run_or_throw({THINGMUX_BROKER_SCRIPT, "pki", dir_.string(), "gateway-01", "gateway-02"});
        const auto pki = dir_ / "pki";
        server_.emplace(
            std::vector<std::string>{THINGMUX_CREDENTIALS_PROVIDER_SCRIPT, "--ca", (pki / "ca.crt").string(), "--cert",
                                     (pki / "server.crt").string(), "--key", (pki / "server.key").string(),
                                     "--role-alias", opts_.role_alias, "--lifetime",
                                     std::to_string(opts_.lifetime.count()), "--mode", mode_name(opts_.answer),
                                     "--mode-file", (dir_ / "mode").string(), "--port-file", (dir_ / "port").string(),
                                     "--log", (dir_ / "requests.log").string()},
            dir_ / "server.out", dir_ / "server.out");
        const bool up = eventually([&] { return fs::exists(dir_ / "port") || !server_->running(); }, ready_timeout_ms);
        if (!up || !fs::exists(dir_ / "port"))
            throw std::runtime_error("the credentials provider fixture did not start:\n" +
                                     read_file(dir_ / "server.out"));
        port_ = static_cast<std::uint16_t>(std::stoi(read_file(dir_ / "port")));
    } catch (...) {
        server_.reset();
        fs::remove_all(dir_);
        throw;
    }
}

credentials_provider_fixture::~credentials_provider_fixture() {
    server_.reset();
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
}

fs::path credentials_provider_fixture::ca_file() const {
    return dir_ / "pki" / "ca.crt";
}
fs::path credentials_provider_fixture::other_ca_file() const {
    return dir_ / "pki" / "rogue-ca.crt";
}

identity credentials_provider_fixture::thing(const std::string& name) const {
    return {name, dir_ / "pki" / (name + ".crt"), dir_ / "pki" / (name + ".key")};
}

identity credentials_provider_fixture::wrong_ca() const {
    return thing("gateway-rogue");
}

void credentials_provider_fixture::set_mode(mode m) const {
    // Written aside and renamed: the server never reads half a mode.
    const auto next = dir_ / "mode.next";
    {
        std::ofstream out(next, std::ios::trunc);
        out << mode_name(m);
        if (!out.flush()) throw std::runtime_error("cannot write " + next.string());
    }
    fs::rename(next, dir_ / "mode");
}

std::vector<credentials_provider_fixture::record> credentials_provider_fixture::records() const {
    std::vector<record> out;
    std::istringstream lines(read_file(dir_ / "requests.log"));
    for (std::string line; std::getline(lines, line);) {
        std::vector<std::string> f;
        std::istringstream fields(line);
        for (std::string field; std::getline(fields, field, '\t');) f.push_back(field);
        f.resize(8);
        out.push_back({std::strtod(f[0].c_str(), nullptr), std::atoi(f[1].c_str()), f[2], f[3], f[4], f[5],
                       std::strtod(f[6].c_str(), nullptr), f[7]});
    }
    return out;
}

std::size_t credentials_provider_fixture::answered(int status) const {
    const auto all = records();
    return static_cast<std::size_t>(
        std::count_if(all.begin(), all.end(), [&](const record& r) { return r.status == status; }));
}

}  // namespace thingmux::test
