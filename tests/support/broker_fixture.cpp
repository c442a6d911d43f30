#include "tests/support/broker_fixture.hpp"

#include "tests/support/measure.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <utility>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace thingmux::test {
namespace fs = std::filesystem;
namespace {

constexpr int ready_timeout_ms = 15'000;  // generous: two cores are shared with other builds

std::string tail(const fs::path& p, std::size_t max_lines = 30) {
    const std::string text = read_file(p);
    std::size_t pos = text.size();
    for (std::size_t n = 0; n <= max_lines && pos > 0; ++n) pos = text.rfind('\n', pos - 1);
    return pos == std::string::npos ? text : text.substr(pos + 1);
}

// Debian installs mosquitto in /usr/sbin, which is not in a normal user's PATH.
std::string mosquitto_program() {
    return access("/usr/sbin/mosquitto", X_OK) == 0 ? "/usr/sbin/mosquitto" : "mosquitto";
}

bool keep_dirs() {
    const char* v = std::getenv("THINGMUX_KEEP_TEST_DIRS");
    return v != nullptr && std::string_view(v) == "1";
}

}  // namespace

// ---- broker_fixture ----------------------------------------------------------------------

broker_fixture::broker_fixture() : broker_fixture(options{}) {}

broker_fixture::broker_fixture(options opts) : opts_(std::move(opts)) {
    std::string tmpl = (fs::temp_directory_path() / "thingmux-broker-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) throw std::system_error(errno, std::generic_category(), "mkdtemp " + tmpl);
    dir_ = tmpl;
    try {
        // mkdtemp makes it 0700; a daemon under test may run as another user and read the certs.
        fs::permissions(dir_, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                  fs::perms::others_read | fs::perms::others_exec);
        std::vector<std::string> pki{THINGMUX_BROKER_SCRIPT, "pki", dir_.string()};
        pki.insert(pki.end(), opts_.things.begin(), opts_.things.end());
        run_or_throw(pki);
        std::vector<std::pair<std::string, std::string>> passwords;
        if (opts_.plain_listener) {
            for (const auto& thing : opts_.things) passwords.emplace_back(thing, plain_password());
        }
        for (const auto& l : opts_.logins) passwords.emplace_back(l.username, l.password);
        const auto passwd = (dir_ / "passwd").string();
        for (std::size_t i = 0; i < passwords.size(); ++i) {
            std::vector<std::string> add{"mosquitto_passwd", "-b", passwd, passwords[i].first, passwords[i].second};
            if (i == 0) add.insert(add.begin() + 1, "-c");  // creates the file
            run_or_throw(add);
        }
        start();
    } catch (...) {
        mosquitto_.reset();
        std::error_code ec;
        if (!keep_dirs()) fs::remove_all(dir_, ec);
        throw;
    }
}

broker_fixture::~broker_fixture() {
    stop();
    if (keep_dirs()) {
        std::fprintf(stderr, "broker_fixture: keeping %s (THINGMUX_KEEP_TEST_DIRS=1)\n", dir_.c_str());
    } else {
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }
}

void broker_fixture::start() {
    if (running()) return;
    const bool port_fixed = port_ != 0;  // restarts keep the port clients know
    for (int attempt = 1;; ++attempt) {
        if (!port_fixed) port_ = free_tcp_port();
        if (!port_fixed && opts_.plain_listener) plain_port_ = free_tcp_port();
        if (!port_fixed && !opts_.logins.empty()) login_port_ = free_tcp_port();
        run_or_throw({THINGMUX_BROKER_SCRIPT, "config", dir_.string(), std::to_string(port_),
                      std::to_string(opts_.max_packet_size)});
        // The main listener's CRL (revoke()): right after its settings, before other listeners.
        if (fs::exists(dir_ / "revoked.crl"))
            std::ofstream(dir_ / "mosquitto.conf", std::ios::app) << "crlfile " << (dir_ / "revoked.crl").string() << "\n";
        add_password_listeners();
        // std::size_t: on 32-bit targets a file size (64 bits) does not fit a string offset.
        const std::size_t log_size =
            fs::exists(log_file()) ? static_cast<std::size_t>(std::min<std::uintmax_t>(
                                         fs::file_size(log_file()), std::numeric_limits<std::size_t>::max()))
                                   : 0;
        mosquitto_.emplace(std::vector<std::string>{mosquitto_program(), "-c", (dir_ / "mosquitto.conf").string()},
                           dir_ / "mosquitto.stderr", dir_ / "mosquitto.stderr");
        try {
            wait_until_ready();
            return;
        } catch (const std::runtime_error&) {
            mosquitto_.reset();
            // The free port was taken between free_tcp_port() and mosquitto's bind(): pick another.
            const bool lost_port = read_file(log_file()).find("Address already in use", log_size) != std::string::npos;
            if (port_fixed || !lost_port || attempt == 3) throw;
        }
    }
}

void broker_fixture::add_password_listeners() const {
    if (!opts_.plain_listener && opts_.logins.empty()) return;
    // With per_listener_settings false, allow_anonymous false, the password file and the ACL hold
    // on every listener; the mTLS listener's clients keep logging in by certificate
    // (use_identity_as_username skips the password file).
    std::ofstream conf(dir_ / "mosquitto.conf", std::ios::app);
    conf << "\npassword_file " << (dir_ / "passwd").string() << "\n";
    if (opts_.plain_listener) {
        conf << "\n# Plain TCP and a Unix socket, for the uplink's plain transports in tests.\n"
             << "listener " << plain_port_ << " 127.0.0.1\n"
             << "listener 0 " << plain_socket().string() << "\n";
    }
    if (!opts_.logins.empty()) {
        const auto pki = dir_ / "pki";
        conf << "\n# TLS with a user name and password (a custom authorizer's way): the CONNECT's user name\n"
             << "# is checked against the password file, not taken from a certificate.\n"
             << "listener " << login_port_ << " 127.0.0.1\n"
             << "cafile " << (pki / "ca.crt").string() << "\ncertfile " << (pki / "server.crt").string()
             << "\nkeyfile " << (pki / "server.key").string() << "\nrequire_certificate "
             << (opts_.login_requires_certificate ? "true" : "false") << "\ntls_version tlsv1.2\n";
        // The Thing-scoped ACL patterns use %u, the user name: each login gets its Thing's topics.
        std::ofstream acl(dir_ / "acl", std::ios::app);
        for (const auto& l : opts_.logins) {
            acl << "\nuser " << l.username << "\ntopic readwrite dt/" << l.thing << "/#\ntopic readwrite cmd/"
                << l.thing << "/#\n";
        }
        if (!acl.flush()) throw std::runtime_error("cannot append to " + (dir_ / "acl").string());
    }
    if (!conf.flush()) throw std::runtime_error("cannot append to " + (dir_ / "mosquitto.conf").string());
}

void broker_fixture::wait_until_ready() {
    std::string last_error = "no TCP listener";
    const auto probe = client_args(observer(), "ready-probe-" + std::to_string(getpid()));
    const bool ready = eventually(
        [&] {
            if (!mosquitto_->running()) return true;  // reported below
            if (!tcp_accepts(port_)) return false;
            // A real mTLS MQTT round trip, not just a listening socket.
            std::vector<std::string> pub{"mosquitto_pub"};
            pub.insert(pub.end(), probe.begin(), probe.end());
            pub.insert(pub.end(), {"-t", "probe/ready", "-m", "1", "-q", "1"});
            return run_command(pub, &last_error, 5000) == 0;
        },
        ready_timeout_ms);
    if (ready && mosquitto_->running()) return;
    const std::string why = mosquitto_->running() ? "does not accept connections (" + last_error + ")"
                                                  : "exited";
    throw std::runtime_error("mosquitto on port " + std::to_string(port_) + " " + why + "; " + log_file().string() +
                             ":\n" + tail(log_file()) + tail(dir_ / "mosquitto.stderr", 5));
}

void broker_fixture::stop() {
    if (mosquitto_) mosquitto_->stop(10'000);
    mosquitto_.reset();
}

void broker_fixture::restart() {
    stop();
    start();
}

void broker_fixture::kill() {
    if (!mosquitto_) return;
    mosquitto_->signal(SIGKILL);
    mosquitto_->wait(-1);
    mosquitto_.reset();
}

bool broker_fixture::running() const { return mosquitto_ && mosquitto_->running(); }

std::uint16_t broker_fixture::port() const noexcept { return port_; }
std::uint16_t broker_fixture::plain_port() const noexcept { return plain_port_; }
std::uint16_t broker_fixture::login_port() const noexcept { return login_port_; }
fs::path broker_fixture::plain_socket() const { return dir_ / "plain.sock"; }
const fs::path& broker_fixture::dir() const noexcept { return dir_; }
fs::path broker_fixture::ca_file() const { return dir_ / "pki" / "ca.crt"; }
fs::path broker_fixture::other_ca_file() const { return dir_ / "pki" / "rogue-ca.crt"; }
fs::path broker_fixture::log_file() const { return dir_ / "mosquitto.log"; }

void broker_fixture::revoke(const fs::path& cert) const {
    // The script's PKI keeps an `openssl ca` database (its openssl.cnf reads TMX_PKI).
    const auto pki = dir_ / "pki";
    const std::string env = "TMX_PKI=" + pki.string();
    const auto cnf = (pki / "openssl.cnf").string();
    run_or_throw({"env", env, "openssl", "ca", "-config", cnf, "-revoke", cert.string()});
    run_or_throw({"env", env, "openssl", "ca", "-config", cnf, "-gencrl", "-crldays", "1", "-out",
                  (dir_ / "revoked.crl.tmp").string()});
    fs::rename(dir_ / "revoked.crl.tmp", dir_ / "revoked.crl");
}

identity broker_fixture::thing(const std::string& name) const {
    if (std::find(opts_.things.begin(), opts_.things.end(), name) == opts_.things.end())
        throw std::invalid_argument("broker_fixture: no certificate for Thing '" + name +
                                    "'; add it to broker_fixture::options::things");
    return {name, dir_ / "pki" / (name + ".crt"), dir_ / "pki" / (name + ".key")};
}

identity broker_fixture::observer() const {
    return {"observer", dir_ / "pki" / "observer.crt", dir_ / "pki" / "observer.key"};
}
identity broker_fixture::claim() const {
    return {"claim-fleet", dir_ / "pki" / "claim-fleet.crt", dir_ / "pki" / "claim-fleet.key"};
}
void broker_fixture::sign_csr(const fs::path& csr, const fs::path& out_cert, int days) const {
    run_or_throw({THINGMUX_BROKER_SCRIPT, "sign", dir_.string(), csr.string(), out_cert.string(), std::to_string(days)});
}
identity broker_fixture::expired() const {
    return {"gateway-expired", dir_ / "pki" / "gateway-expired.crt", dir_ / "pki" / "gateway-expired.key"};
}
identity broker_fixture::wrong_ca() const {
    return {"gateway-rogue", dir_ / "pki" / "gateway-rogue.crt", dir_ / "pki" / "gateway-rogue.key"};
}

std::vector<std::string> broker_fixture::client_args(const identity& who, const std::string& client_id) const {
    return {"-h", host(), "-p", std::to_string(port_), "--cafile", ca_file().string(), "--cert", who.cert.string(),
            "--key", who.key.string(), "-i", client_id};
}

// ---- observer_subscription -----------------------------------------------------------------

observer_subscription::observer_subscription(const broker_fixture& broker, std::string filter, std::string client_id)
    : broker_(broker), filter_(std::move(filter)), client_id_(std::move(client_id)) {
    static std::atomic<int> counter{0};
    const std::string tag = client_id_ + "-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
    out_ = broker_.dir() / ("observer-" + tag + ".out");
    probe_topic_ = "probe/" + tag;
    const auto args = broker_.client_args(broker_.observer(), client_id_);
    // Start from an empty session: a persistent one left by an earlier observer with this client
    // ID would replay its queued messages and keep its old filters. A clean-session connect
    // (-E: exit once subscribed) discards it.
    if (broker_.running()) {
        std::vector<std::string> wipe{"mosquitto_sub"};
        wipe.insert(wipe.end(), args.begin(), args.end());
        wipe.insert(wipe.end(), {"-t", probe_topic_, "-E"});
        run_command(wipe, nullptr, 5000);
    }
    sub_.push_back("mosquitto_sub");
    sub_.insert(sub_.end(), args.begin(), args.end());
    sub_.insert(sub_.end(), {"-c", "-q", "1", "-v", "-t", filter_, "-t", probe_topic_});
    err_ = broker_.dir() / ("observer-" + tag + ".err");
    proc_.emplace(sub_, out_, err_);
}

// mosquitto_sub gives up (exits) when a reconnect hits a broker that is shutting down mid-TLS
// handshake. Its session is persistent, so the broker queues what arrives meanwhile: starting it
// again, like a reconnect, loses nothing.
void observer_subscription::revive() const {
    if (proc_ && !proc_->running()) proc_.emplace(sub_, out_, err_);
}

observer_subscription::~observer_subscription() = default;

bool observer_subscription::probe_seen() const {
    const auto all = complete_lines(read_file(out_));
    return std::any_of(all.begin(), all.end(), [&](const std::string& l) { return l.starts_with(probe_topic_ + " "); });
}

bool observer_subscription::wait_ready(int timeout_ms) {
    std::vector<std::string> pub{"mosquitto_pub"};
    const auto args = broker_.client_args(broker_.observer(), client_id_ + "-probe");
    pub.insert(pub.end(), args.begin(), args.end());
    pub.insert(pub.end(), {"-t", probe_topic_, "-m", "ready", "-q", "1"});
    // Publish again and again: a probe sent before the SUBSCRIBE took effect is simply lost.
    return eventually(
        [&] {
            if (probe_seen()) return true;
            if (!proc_->running()) return false;
            run_command(pub, nullptr, 5000);
            return eventually([&] { return probe_seen(); }, 300);
        },
        timeout_ms);
}

std::vector<std::string> observer_subscription::lines() const {
    revive();
    auto all = complete_lines(read_file(out_));
    std::erase_if(all, [&](const std::string& l) { return l.starts_with(probe_topic_ + " "); });
    return all;
}

std::size_t observer_subscription::wait_for(std::size_t n, int timeout_ms) {
    eventually([&] { return lines().size() >= n; }, timeout_ms);
    return lines().size();
}

std::size_t observer_subscription::wait_for_all(const std::vector<std::string>& expected, int timeout_ms) {
    std::size_t still_missing = expected.size();
    eventually(
        [&] {
            still_missing = missing_from(lines(), expected);
            return still_missing == 0;
        },
        timeout_ms);
    return still_missing;
}

bool observer_subscription::wait_acknowledged(int timeout_ms) const {
    // mosquitto's log_type all: "Sending PUBLISH to ID (d0, q1, r0, m2, ...)" and "Received PUBACK
    // from ID (Mid: 2, RC:0)"; the observer subscribes with QoS 1, so every PUBLISH to it is one.
    const std::string sent = "Sending PUBLISH to " + client_id_ + " (",
                      acknowledged = "Received PUBACK from " + client_id_ + " (";
    return eventually(
        [&] {
            const auto log = read_file(broker_.log_file());
            return count_of(log, sent) == count_of(log, acknowledged);
        },
        timeout_ms);
}

}  // namespace thingmux::test
