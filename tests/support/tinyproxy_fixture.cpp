#include "tests/support/tinyproxy_fixture.hpp"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace thingmux::test {
namespace fs = std::filesystem;
namespace {

constexpr int ready_timeout_ms = 15'000;

// Whether a socket listens on `port` (any address), from /proc/net/tcp{,6}: unlike connecting,
// looking leaves no line in the proxy's log.
bool tcp_listening(std::uint16_t port) {
    char local_port[8];
    std::snprintf(local_port, sizeof local_port, ":%04X", static_cast<unsigned>(port));
    for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
        std::ifstream in(table);
        std::string line;
        std::getline(in, line);  // the header
        while (std::getline(in, line)) {
            std::istringstream fields(line);
            std::string slot, local, remote, state;
            fields >> slot >> local >> remote >> state;
            if (state == "0A" && local.ends_with(local_port)) return true;
        }
    }
    return false;
}

std::size_t count_lines(const fs::path& file, const std::string& a, const std::string& b = {}) {
    std::ifstream in(file);
    std::size_t n = 0;
    for (std::string line; std::getline(in, line);) {
        if (line.find(a) != std::string::npos && (b.empty() || line.find(b) != std::string::npos)) ++n;
    }
    return n;
}

}  // namespace

tinyproxy_fixture::tinyproxy_fixture(options opts) : opts_(std::move(opts)) {
    char tmpl[] = "/tmp/thingmux-tinyproxy-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    try {
        start_tinyproxy();
        if (!opts_.tls_cert.empty()) start_tls_front();
    } catch (...) {
        front_.reset();
        tinyproxy_.reset();
        fs::remove_all(dir_);
        throw;
    }
}

tinyproxy_fixture::~tinyproxy_fixture() {
    front_.reset();
    tinyproxy_.reset();
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
}

void tinyproxy_fixture::start_tinyproxy() {
    for (int attempt = 1;; ++attempt) {
        proxy_port_ = free_tcp_port();
        {
            std::ofstream conf(dir_ / "tinyproxy.conf", std::ios::trunc);
            conf << "Port " << proxy_port_ << "\nListen 127.0.0.1\nTimeout 60\nMaxClients 50\nAllow 127.0.0.1\n"
                 << "LogFile \"" << log_file().string() << "\"\nLogLevel Connect\n";
            if (!opts_.user.empty()) conf << "BasicAuth " << opts_.user << " " << opts_.password << "\n";
            for (const auto p : opts_.connect_ports) conf << "ConnectPort " << p << "\n";
            if (!conf.flush()) throw std::runtime_error("cannot write " + (dir_ / "tinyproxy.conf").string());
        }
        tinyproxy_.emplace(std::vector<std::string>{"tinyproxy", "-d", "-c", (dir_ / "tinyproxy.conf").string()},
                           dir_ / "tinyproxy.out", dir_ / "tinyproxy.out");
        const bool up = eventually([&] { return tcp_listening(proxy_port_) || !tinyproxy_->running(); }, ready_timeout_ms);
        if (up && tinyproxy_->running()) return;
        tinyproxy_.reset();
        // The free port may have been taken before tinyproxy bound it: try another.
        if (attempt == 3)
            throw std::runtime_error("tinyproxy did not start:\n" + read_file(dir_ / "tinyproxy.out") +
                                     read_file(log_file()));
    }
}

void tinyproxy_fixture::start_tls_front() {
    for (int attempt = 1;; ++attempt) {
        front_port_ = free_tcp_port();
        front_.emplace(std::vector<std::string>{"socat",
                                                "OPENSSL-LISTEN:" + std::to_string(front_port_) +
                                                    ",bind=127.0.0.1,reuseaddr,fork,verify=0,cert=" +
                                                    opts_.tls_cert.string() + ",key=" + opts_.tls_key.string(),
                                                "TCP:127.0.0.1:" + std::to_string(proxy_port_)},
                       dir_ / "socat.out", dir_ / "socat.out");
        const bool up = eventually([&] { return tcp_listening(front_port_) || !front_->running(); }, ready_timeout_ms);
        if (up && front_->running()) return;
        front_.reset();
        if (attempt == 3) throw std::runtime_error("socat (TLS front) did not start:\n" + read_file(dir_ / "socat.out"));
    }
}

std::uint16_t tinyproxy_fixture::port() const noexcept { return front_port_ != 0 ? front_port_ : proxy_port_; }

std::string tinyproxy_fixture::url(const std::string& userinfo) const {
    const bool tls = front_port_ != 0;
    return std::string(tls ? "https://" : "http://") + (userinfo.empty() ? "" : userinfo + "@") +
           (tls ? "localhost" : "127.0.0.1") + ":" + std::to_string(port());
}

fs::path tinyproxy_fixture::log_file() const { return dir_ / "tinyproxy.log"; }

std::size_t tinyproxy_fixture::connect_requests(const std::string& target) const {
    return count_lines(log_file(), "Request (file descriptor", "CONNECT " + target + (target.empty() ? "" : " "));
}

std::size_t tinyproxy_fixture::connections() const { return count_lines(log_file(), "Connect (file descriptor"); }

}  // namespace thingmux::test
