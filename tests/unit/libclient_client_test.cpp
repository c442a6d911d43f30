// libthingmux against a fake daemon written here: a real Unix socket speaking the IPC codec
// (docs/ipc-protocol.md). The fake is scripted from the test thread with blocking, time-limited
// reads; the client runs its own thread (start()) or is driven by process() (fd mode). No sleeps:
// every wait is for a frame, a future or a handler, with a generous limit.
#include <thingmux/client.hpp>

#include "ipc/codec.hpp"

#include <gtest/gtest.h>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using thingmux::error_code;
namespace ipc = thingmux::ipc;

constexpr auto generous = 10s;

// ---------------------------------------------------------------------------------------------
// The fake daemon

class fake_daemon {
public:
    explicit fake_daemon(std::string path) : path_(std::move(path)) {}
    ~fake_daemon() {
        drop();
        stop_listening();
    }
    fake_daemon(const fake_daemon&) = delete;
    fake_daemon& operator=(const fake_daemon&) = delete;

    void listen() {
        ::unlink(path_.c_str());
        listener_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ASSERT_GE(listener_, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
        ASSERT_EQ(::bind(listener_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0) << std::strerror(errno);
        ASSERT_EQ(::listen(listener_, 8), 0);
    }

    void stop_listening() {
        if (listener_ >= 0) {
            ::close(listener_);
            listener_ = -1;
            ::unlink(path_.c_str());
        }
    }

    // Accepts the next connection (the previous one is closed).
    [[nodiscard]] bool accept(std::chrono::milliseconds timeout = generous) {
        drop();
        pollfd p{listener_, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) {
            return false;
        }
        conn_ = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
        buf_.clear();
        version_ = ipc::wire_version::v1;
        return conn_ >= 0;
    }

    void drop() {
        if (conn_ >= 0) {
            ::close(conn_);
            conn_ = -1;
        }
    }

    // The next client frame, or nullopt on timeout / EOF.
    [[nodiscard]] std::optional<ipc::client_message> receive(std::chrono::milliseconds timeout = generous) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (true) {
            auto d = ipc::decode_client_message(buf_, ipc::default_max_frame, version_);
            if (auto* ok = std::get_if<ipc::decoded<ipc::client_message>>(&d)) {
                auto m = std::move(ok->message);
                buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(ok->consumed));
                // The connection speaks the version of its hello from then on (IPC-9).
                if (const auto* hello = std::get_if<ipc::hello>(&m)) {
                    version_ = ipc::known_version(hello->version).value_or(ipc::wire_version::v1);
                }
                return m;
            }
            if (auto* bad = std::get_if<ipc::malformed>(&d)) {
                ADD_FAILURE() << "client sent a malformed frame: " << bad->reason;
                return std::nullopt;
            }
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) {
                return std::nullopt;
            }
            pollfd p{conn_, POLLIN, 0};
            if (::poll(&p, 1, static_cast<int>(left.count())) != 1) {
                return std::nullopt;
            }
            std::uint8_t chunk[65536];
            const auto n = ::read(conn_, chunk, sizeof chunk);
            if (n <= 0) {
                eof_ = true;
                return std::nullopt;
            }
            buf_.insert(buf_.end(), chunk, chunk + n);
        }
    }

    template <class T>
    [[nodiscard]] std::optional<T> receive_as(std::chrono::milliseconds timeout = generous) {
        auto m = receive(timeout);
        if (!m) {
            ADD_FAILURE() << "no frame from the client";
            return std::nullopt;
        }
        if (auto* t = std::get_if<T>(&*m)) {
            return std::move(*t);
        }
        ADD_FAILURE() << "unexpected frame type " << ipc::to_string(ipc::type_of(*m));
        return std::nullopt;
    }

    // True when the client closed its end within the timeout.
    [[nodiscard]] bool closed_by_client(std::chrono::milliseconds timeout = generous) {
        if (eof_) {
            return true;
        }
        while (receive(timeout)) {
        }
        return eof_;
    }

    void send(const ipc::daemon_message& m) { send_bytes(ipc::encode(m, version_)); }

    void send_bytes(const std::vector<std::uint8_t>& bytes) {
        std::size_t off = 0;
        while (off < bytes.size()) {
            const auto n = ::send(conn_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
            ASSERT_GT(n, 0) << std::strerror(errno);
            off += static_cast<std::size_t>(n);
        }
    }

    static ipc::welcome default_welcome() {
        ipc::welcome w;
        w.daemon_version = "9.8.7";
        w.thing = "gw";
        w.connection_id = "c1";
        w.link = ipc::link_state::connected;
        return w;
    }

    // accept + hello + welcome.
    [[nodiscard]] std::optional<ipc::hello> handshake(const ipc::welcome& w = default_welcome()) {
        if (!accept()) {
            ADD_FAILURE() << "the client did not connect";
            return std::nullopt;
        }
        eof_ = false;
        auto hello = receive_as<ipc::hello>();
        if (hello) {
            auto answer = w;
            answer.version = hello->version;  // as thingmuxd: in the hello's own version (IPC-9)
            send(answer);
        }
        return hello;
    }

private:
    std::string path_;
    int listener_ = -1;
    int conn_ = -1;
    bool eof_ = false;
    std::vector<std::uint8_t> buf_;
    ipc::wire_version version_ = ipc::wire_version::v1;
};

// Collects values from the library thread; waits on the test thread.
template <class T>
class collector {
public:
    void add(T v) {
        std::lock_guard lk(m_);
        items_.push_back(std::move(v));
        cv_.notify_all();
    }
    [[nodiscard]] bool wait_for_count(std::size_t n, std::chrono::milliseconds timeout = generous) {
        std::unique_lock lk(m_);
        return cv_.wait_for(lk, timeout, [&] { return items_.size() >= n; });
    }
    template <class Pred>
    [[nodiscard]] bool wait_until(Pred pred, std::chrono::milliseconds timeout = generous) {
        std::unique_lock lk(m_);
        return cv_.wait_for(lk, timeout, [&] {
            for (const auto& i : items_) {
                if (pred(i)) {
                    return true;
                }
            }
            return false;
        });
    }
    [[nodiscard]] std::vector<T> items() const {
        std::lock_guard lk(m_);
        return items_;
    }
    [[nodiscard]] std::size_t size() const {
        std::lock_guard lk(m_);
        return items_.size();
    }

private:
    mutable std::mutex m_;
    std::condition_variable cv_;
    std::vector<T> items_;
};

template <class T>
[[nodiscard]] T get(std::future<T>& f, std::chrono::milliseconds timeout = generous) {
    if (f.wait_for(timeout) != std::future_status::ready) {
        ADD_FAILURE() << "future not ready in time";
        return T{};
    }
    return f.get();
}

ipc::result ok_result(std::uint8_t reason = 0) { return ipc::result{ipc::errc::ok, reason, {}}; }

// Everything the daemon sent before this publish's result has been dispatched once it completes.
void sync_with(thingmux::client& c, fake_daemon& d) {
    auto sync = c.publish({.topic = "sync", .payload = ""});
    const auto p = d.receive_as<ipc::publish>();
    ASSERT_TRUE(p);
    EXPECT_EQ(p->topic, "sync");
    d.send(ipc::publish_result{p->request_id, ok_result()});
    EXPECT_TRUE(get(sync).ok());
}

class LibClient : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/thingmux-libclient-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        path_ = dir_ + "/thingmux.sock";
        daemon_ = std::make_unique<fake_daemon>(path_);
    }
    void TearDown() override {
        daemon_.reset();
        std::filesystem::remove_all(dir_);
    }

    [[nodiscard]] thingmux::options opts() const {
        thingmux::options o;
        o.socket_path = path_;
        o.app_name = "unit";
        o.reconnect_min = 5ms;
        o.reconnect_max = 20ms;
        return o;
    }

    // A started, connected client (handshake done with the default welcome).
    std::unique_ptr<thingmux::client> connected_client(thingmux::options o, const ipc::welcome& w = fake_daemon::default_welcome()) {
        daemon_->listen();
        auto c = std::make_unique<thingmux::client>(std::move(o));
        c->on_state([this](const thingmux::state& s) { states_.add(s); });
        c->start();
        auto f = c->connect();
        EXPECT_TRUE(daemon_->handshake(w));
        const auto r = get(f);
        EXPECT_EQ(r.code, error_code::ok) << r.message;
        return c;
    }
    // A client of a session that holds `filter` (handled by `handler`), whose daemon then went
    // away (defined with the session tests).
    std::unique_ptr<thingmux::client> subscribed_then_away(thingmux::options o, const std::string& filter,
                                                           thingmux::message_handler handler);

    std::string dir_;
    std::string path_;
    std::unique_ptr<fake_daemon> daemon_;
    collector<thingmux::state> states_;
};

// ---------------------------------------------------------------------------------------------

TEST_F(LibClient, IPC8_Handshake_SendsHelloAndExposesWelcome) {
    daemon_->listen();
    auto o = opts();
    o.thing = "gw";
    thingmux::client c(o);
    c.on_state([this](const thingmux::state& s) { states_.add(s); });
    c.start();
    auto f = c.connect();
    ASSERT_TRUE(daemon_->accept());
    const auto hello = daemon_->receive_as<ipc::hello>();
    ASSERT_TRUE(hello);
    EXPECT_EQ(hello->version, 3) << "IPC-60: the library asks for version 3";
    EXPECT_EQ(hello->session_name, "");
    EXPECT_EQ(hello->app_name, "unit");
    EXPECT_EQ(hello->thing, "gw");
    // IPC-8: nothing else before the welcome.
    EXPECT_FALSE(daemon_->receive(100ms));
    EXPECT_EQ(f.wait_for(0ms), std::future_status::timeout);

    auto w = fake_daemon::default_welcome();
    w.limits.max_payload = 1234;
    w.limits.max_subscriptions = 7;
    w.limits.max_inflight = 3;
    w.link = ipc::link_state::backing_off;
    w.version = 3;
    daemon_->send(w);
    const auto r = get(f);
    EXPECT_EQ(r.code, error_code::ok) << r.message;

    const auto info = c.daemon();
    ASSERT_TRUE(info);
    EXPECT_EQ(info->daemon_version, "9.8.7");
    EXPECT_EQ(info->thing, "gw");
    EXPECT_EQ(info->client_id, "c1");
    EXPECT_EQ(info->protocol_version, 3);
    EXPECT_EQ(info->limits.max_payload, 1234U);
    EXPECT_EQ(info->limits.max_subscriptions, 7U);
    EXPECT_EQ(info->limits.max_inflight, 3U);
    EXPECT_EQ(c.current_state().daemon, thingmux::daemon_state::connected);
    EXPECT_EQ(c.current_state().uplink, thingmux::uplink_state::backing_off);
    ASSERT_TRUE(states_.wait_until([](const thingmux::state& s) { return s.daemon == thingmux::daemon_state::connected; }));
    EXPECT_EQ(states_.items().front().daemon, thingmux::daemon_state::connecting);

    // A second connect() while connected completes at once.
    auto again = c.connect();
    EXPECT_EQ(get(again).code, error_code::ok);
}

TEST_F(LibClient, IPC22_StateFramesReachTheStateHandler) {
    auto c = connected_client(opts());
    daemon_->send(ipc::state{ipc::link_state::backing_off, "dns", false, 1500});
    ASSERT_TRUE(states_.wait_until([](const thingmux::state& s) {
        return s.uplink == thingmux::uplink_state::backing_off && s.uplink_reason == "dns" &&
               s.uplink_retry_in == 1500ms && s.daemon == thingmux::daemon_state::connected;
    }));
    daemon_->send(ipc::state{ipc::link_state::failed, "certificate expired", true, 0});
    ASSERT_TRUE(states_.wait_until([](const thingmux::state& s) {
        return s.uplink == thingmux::uplink_state::failed && s.uplink_fatal;
    }));
    EXPECT_EQ(c->current_state().uplink_reason, "certificate expired");
}

TEST_F(LibClient, IPC10_RefusedHelloReportsTheDaemonsCode) {
    daemon_->listen();
    auto o = opts();
    o.thing = "nope";
    thingmux::client c(o);
    c.start();
    auto f = c.connect();
    ASSERT_TRUE(daemon_->accept());
    ASSERT_TRUE(daemon_->receive_as<ipc::hello>());
    daemon_->send(ipc::error{ipc::errc::unknown_thing, "no Thing \"nope\""});
    daemon_->drop();
    const auto r = get(f);
    EXPECT_EQ(r.code, error_code::unknown_thing);
    EXPECT_NE(r.message.find("no Thing \"nope\""), std::string::npos) << r.message;
    EXPECT_NE(r.message.find("refused"), std::string::npos) << r.message;
}

TEST_F(LibClient, NoDaemon_ConnectFailsFastAndSaysHowToStartIt) {
    auto o = opts();
    o.reconnect = false;
    thingmux::client c(o);
    c.on_state([this](const thingmux::state& s) { states_.add(s); });
    c.start();
    auto f = c.connect();
    const auto r = get(f);
    EXPECT_EQ(r.code, error_code::daemon_unavailable);
    EXPECT_NE(r.message.find(path_), std::string::npos) << r.message;
    EXPECT_NE(r.message.find("No such file or directory"), std::string::npos) << r.message;
    EXPECT_NE(r.message.find("is thingmuxd running? (systemctl start thingmuxd)"), std::string::npos) << r.message;
    ASSERT_TRUE(states_.wait_until([](const thingmux::state& s) {
        return s.daemon == thingmux::daemon_state::unavailable && !s.daemon_reason.empty();
    }));
    // Requests fail at once with not_connected and say why.
    auto p = c.publish({.topic = "a/b", .payload = "x"});
    const auto pr = get(p, 2s);
    EXPECT_EQ(pr.code, error_code::not_connected);
    EXPECT_NE(pr.message.find("is thingmuxd running?"), std::string::npos) << pr.message;
    auto s = c.subscribe("a/#", 1, [](const thingmux::message&) {});
    EXPECT_EQ(get(s, 2s).code, error_code::not_connected);
}

TEST_F(LibClient, HandshakeTimeout_FailsTheConnect) {
    daemon_->listen();
    auto o = opts();
    o.handshake_timeout = 100ms;
    o.reconnect = false;
    thingmux::client c(o);
    c.start();
    auto f = c.connect();
    ASSERT_TRUE(daemon_->accept());
    ASSERT_TRUE(daemon_->receive_as<ipc::hello>());
    const auto r = get(f);
    EXPECT_EQ(r.code, error_code::daemon_unavailable);
    EXPECT_NE(r.message.find("no welcome"), std::string::npos) << r.message;
    EXPECT_TRUE(daemon_->closed_by_client());
}

TEST_F(LibClient, IPC14_IPC19_PublishCarriesEveryFieldAndMapsResultsById) {
    auto c = connected_client(opts());
    thingmux::message m;
    m.topic = "dt/gw/t";
    m.payload = std::string("\x00\x01\xff", 3);
    m.qos = 1;
    m.retain = true;
    m.content_type = "application/json";
    m.response_topic = "r/gw";
    m.correlation_data = std::string("\x00\x02", 2);
    m.message_expiry_seconds = 60;
    m.payload_format_indicator = 0;
    m.user_properties = {{"k", "v"}, {"k", "w"}};
    auto f1 = c->publish(m);
    auto f2 = c->publish({.topic = "dt/gw/2", .payload = "two", .qos = 1});
    auto f3 = c->publish({.topic = "dt/gw/3", .payload = "three", .qos = 0});

    const auto p1 = daemon_->receive_as<ipc::publish>();
    const auto p2 = daemon_->receive_as<ipc::publish>();
    const auto p3 = daemon_->receive_as<ipc::publish>();
    ASSERT_TRUE(p1 && p2 && p3);
    EXPECT_EQ(p1->topic, "dt/gw/t");
    EXPECT_EQ(p1->payload, m.payload);
    EXPECT_EQ(p1->qos, 1);
    EXPECT_TRUE(p1->retain);
    EXPECT_EQ(p1->props.content_type, "application/json");
    EXPECT_EQ(p1->props.response_topic, "r/gw");
    EXPECT_EQ(p1->props.correlation_data, std::string("\x00\x02", 2));
    EXPECT_EQ(p1->props.message_expiry_interval, 60U);
    EXPECT_EQ(p1->props.payload_format_indicator, 0);
    ASSERT_EQ(p1->props.user_properties.size(), 2U);
    EXPECT_EQ(p1->props.user_properties[1].value, "w");
    EXPECT_EQ(p3->qos, 0);
    EXPECT_NE(p1->request_id, p2->request_id);
    EXPECT_NE(p2->request_id, p3->request_id);

    // IPC-25: results in any order.
    daemon_->send(ipc::publish_result{p3->request_id, ipc::result{ipc::errc::not_connected, 0, "uplink down"}});
    daemon_->send(ipc::publish_result{p2->request_id, ipc::result{ipc::errc::broker_refused, 0x87, {}}});
    daemon_->send(ipc::publish_result{p1->request_id, ok_result(0x10)});

    const auto r1 = get(f1);
    EXPECT_TRUE(r1.ok());
    EXPECT_EQ(r1.code, error_code::ok);
    EXPECT_EQ(r1.reason_code, 0x10);
    const auto r2 = get(f2);
    EXPECT_EQ(r2.code, error_code::broker_refused);
    EXPECT_EQ(r2.reason_code, 0x87);
    EXPECT_NE(r2.message.find("0x87"), std::string::npos) << r2.message;  // filled in when the daemon sent none
    const auto r3 = get(f3);
    EXPECT_EQ(r3.code, error_code::not_connected);
    EXPECT_EQ(r3.message, "uplink down");

    // Codes the library does not know pass through as numbers (IPC-12).
    std::promise<thingmux::result> p;
    c->publish({.topic = "x", .payload = "y"}, [&p](const thingmux::result& r) { p.set_value(r); });
    const auto p4 = daemon_->receive_as<ipc::publish>();
    ASSERT_TRUE(p4);
    daemon_->send(ipc::publish_result{p4->request_id, ipc::result{static_cast<ipc::errc>(77), 0, {}}});
    auto f4 = p.get_future();
    const auto r4 = get(f4);
    EXPECT_EQ(static_cast<int>(r4.code), 77);
    EXPECT_FALSE(r4.ok());
    EXPECT_STREQ(to_string(r4.code), "unknown");
}

TEST_F(LibClient, IPC38_LocalChecksFailWithoutSending) {
    auto w = fake_daemon::default_welcome();
    w.limits.max_payload = 100;
    w.limits.max_topic_length = 16;
    w.limits.max_frame = 512;
    auto c = connected_client(opts(), w);

    auto bad_topic = c->publish({.topic = "a/+", .payload = "x"});
    auto long_topic = c->publish({.topic = std::string(17, 'a'), .payload = "x"});
    auto big_payload = c->publish({.topic = "a", .payload = std::string(101, 'x')});
    auto bad_qos = c->publish({.topic = "a", .payload = "x", .qos = 3});
    auto bad_utf8 = c->publish({.topic = "a", .payload = "x", .content_type = "\xff"});
    thingmux::message big_frame{.topic = "a", .payload = std::string(100, 'x')};
    big_frame.user_properties.assign(40, {"key", "value-value"});  // 40 * 18 bytes > max_frame
    auto too_big_frame = c->publish(big_frame);
    auto bad_filter = c->subscribe("a/#/b", 1, [](const thingmux::message&) {});

    EXPECT_EQ(get(bad_topic).code, error_code::invalid_topic);
    EXPECT_EQ(get(long_topic).code, error_code::invalid_topic);
    EXPECT_EQ(get(big_payload).code, error_code::payload_too_large);
    EXPECT_EQ(get(bad_qos).code, error_code::qos_not_supported);
    EXPECT_EQ(get(bad_utf8).code, error_code::invalid_argument);
    const auto frame_result = get(too_big_frame);
    EXPECT_EQ(frame_result.code, error_code::payload_too_large);  // IPC-5
    EXPECT_NE(frame_result.message.find("512"), std::string::npos) << frame_result.message;
    EXPECT_EQ(get(bad_filter).code, error_code::invalid_filter);

    // None of them reached the daemon: the next frame is the next valid request.
    auto fine = c->publish({.topic = "ok", .payload = "x"});
    const auto p = daemon_->receive_as<ipc::publish>();
    ASSERT_TRUE(p);
    EXPECT_EQ(p->topic, "ok");
    daemon_->send(ipc::publish_result{p->request_id, ok_result()});
    EXPECT_TRUE(get(fine).ok());
}

TEST_F(LibClient, IPC29_IPC31_MessagesGoToEveryMatchingHandler) {
    auto c = connected_client(opts());
    collector<std::string> exact;
    collector<std::string> wide;
    collector<std::string> aws;
    auto s1 = c->subscribe("cmd/gw/+", 1, [&](const thingmux::message& m) { exact.add(m.topic); });
    auto s2 = c->subscribe("cmd/#", 0, [&](const thingmux::message& m) { wide.add(m.topic + "=" + m.payload); });
    auto s3 = c->subscribe("$aws/things/gw/#", 1, [&](const thingmux::message& m) { aws.add(m.topic); });
    for (const auto& [filter, qos] : {std::pair{"cmd/gw/+", 1}, std::pair{"cmd/#", 0}, std::pair{"$aws/things/gw/#", 1}}) {
        const auto sub = daemon_->receive_as<ipc::subscribe>();
        ASSERT_TRUE(sub);
        ASSERT_EQ(sub->subscriptions.size(), 1U);
        EXPECT_EQ(sub->subscriptions[0].filter, filter);
        EXPECT_EQ(sub->subscriptions[0].max_qos, qos);
        daemon_->send(ipc::subscribe_result{sub->request_id, {ok_result(static_cast<std::uint8_t>(qos))}});
    }
    EXPECT_EQ(get(s1).reason_code, 1);
    EXPECT_TRUE(get(s2).ok());
    EXPECT_TRUE(get(s3).ok());

    ipc::message m;
    m.topic = "cmd/gw/reboot";
    m.payload = "now";
    m.qos = 1;
    m.props.user_properties = {{"by", "ops"}};
    daemon_->send(m);
    daemon_->send(ipc::message{"cmd/other/x/y", "deep", 0, false, {}});
    daemon_->send(ipc::message{"$SYS/broker", "no", 0, false, {}});
    daemon_->send(ipc::message{"$aws/things/gw/shadow/update", "{}", 0, false, {}});
    daemon_->send(ipc::message{"dt/unrelated", "no", 0, false, {}});

    ASSERT_TRUE(wide.wait_for_count(2));
    ASSERT_TRUE(exact.wait_for_count(1));
    ASSERT_TRUE(aws.wait_for_count(1));
    // Everything the daemon sent before this result has been dispatched when it completes.
    auto sync = c->publish({.topic = "sync", .payload = ""});
    const auto p = daemon_->receive_as<ipc::publish>();
    ASSERT_TRUE(p);
    daemon_->send(ipc::publish_result{p->request_id, ok_result()});
    EXPECT_TRUE(get(sync).ok());

    EXPECT_EQ(exact.items(), (std::vector<std::string>{"cmd/gw/reboot"}));
    EXPECT_EQ(wide.items(), (std::vector<std::string>{"cmd/gw/reboot=now", "cmd/other/x/y=deep"}));
    EXPECT_EQ(aws.items(), (std::vector<std::string>{"$aws/things/gw/shadow/update"}));
}

TEST_F(LibClient, IPC29_RefusedSubscriptionRemovesItsHandler) {
    auto c = connected_client(opts());
    std::atomic<int> calls{0};
    auto s = c->subscribe("secret/#", 1, [&](const thingmux::message&) { ++calls; });
    const auto sub = daemon_->receive_as<ipc::subscribe>();
    ASSERT_TRUE(sub);
    daemon_->send(ipc::subscribe_result{sub->request_id, {ipc::result{ipc::errc::not_authorized, 0, "denied by policy"}}});
    const auto r = get(s);
    EXPECT_EQ(r.code, error_code::not_authorized);
    EXPECT_EQ(r.message, "denied by policy");

    daemon_->send(ipc::message{"secret/x", "leak", 0, false, {}});
    auto sync = c->publish({.topic = "sync", .payload = ""});
    const auto p = daemon_->receive_as<ipc::publish>();
    ASSERT_TRUE(p);
    daemon_->send(ipc::publish_result{p->request_id, ok_result()});
    EXPECT_TRUE(get(sync).ok());
    EXPECT_EQ(calls.load(), 0);
}

TEST_F(LibClient, IPC30_UnsubscribeStopsDispatch) {
    auto c = connected_client(opts());
    collector<std::string> got;
    auto s = c->subscribe("cmd/#", 1, [&](const thingmux::message& m) { got.add(m.payload); });
    const auto sub = daemon_->receive_as<ipc::subscribe>();
    ASSERT_TRUE(sub);
    daemon_->send(ipc::subscribe_result{sub->request_id, {ok_result(1)}});
    ASSERT_TRUE(get(s).ok());
    daemon_->send(ipc::message{"cmd/a", "1", 0, false, {}});
    ASSERT_TRUE(got.wait_for_count(1));

    auto u = c->unsubscribe("cmd/#");
    const auto unsub = daemon_->receive_as<ipc::unsubscribe>();
    ASSERT_TRUE(unsub);
    EXPECT_EQ(unsub->filters, (std::vector<std::string>{"cmd/#"}));
    // Sent before the result: the handler is gone already.
    daemon_->send(ipc::message{"cmd/a", "2", 0, false, {}});
    daemon_->send(ipc::unsubscribe_result{unsub->request_id, {ok_result()}});
    EXPECT_TRUE(get(u).ok());
    EXPECT_EQ(got.items(), (std::vector<std::string>{"1"}));
}

TEST_F(LibClient, IPC36_ReconnectsResubscribesAndFailsFastMeanwhile) {
    auto c = connected_client(opts());
    collector<std::string> got;
    auto s1 = c->subscribe("cmd/#", 1, [&](const thingmux::message& m) { got.add("a:" + m.payload); });
    auto s2 = c->subscribe("dt/+/x", 0, [&](const thingmux::message& m) { got.add("b:" + m.payload); });
    for (int i = 0; i < 2; ++i) {
        const auto sub = daemon_->receive_as<ipc::subscribe>();
        ASSERT_TRUE(sub);
        daemon_->send(ipc::subscribe_result{sub->request_id, {ok_result(static_cast<std::uint8_t>(1 - i))}});
    }
    ASSERT_TRUE(get(s1).ok());
    ASSERT_TRUE(get(s2).ok());
    auto pending = c->publish({.topic = "dt/gw/x", .payload = "lost?", .qos = 1});
    ASSERT_TRUE(daemon_->receive_as<ipc::publish>());

    // The daemon stops (IPC-36) and is gone for a while.
    daemon_->send(ipc::error{ipc::errc::daemon_shutting_down, "stopping"});
    daemon_->drop();
    daemon_->stop_listening();

    const auto lost = get(pending);
    EXPECT_EQ(lost.code, error_code::session_closed);
    EXPECT_NE(lost.message.find("may or may not have been published"), std::string::npos) << lost.message;
    ASSERT_TRUE(states_.wait_until([](const thingmux::state& s) {
        return s.daemon == thingmux::daemon_state::unavailable &&
               s.daemon_reason.find("daemon_shutting_down") != std::string::npos;
    }));
    auto meanwhile = c->publish({.topic = "dt/gw/x", .payload = "x", .qos = 1});
    const auto fast = get(meanwhile, 2s);
    EXPECT_EQ(fast.code, error_code::not_connected);
    EXPECT_NE(fast.message.find("thingmuxd"), std::string::npos) << fast.message;

    // Back: the library reconnects by itself and subscribes again, both filters in one frame.
    daemon_->listen();
    ASSERT_TRUE(daemon_->handshake());
    const auto resub = daemon_->receive_as<ipc::subscribe>();
    ASSERT_TRUE(resub);
    ASSERT_EQ(resub->subscriptions.size(), 2U);
    EXPECT_EQ(resub->subscriptions[0].filter, "cmd/#");
    EXPECT_EQ(resub->subscriptions[0].max_qos, 1);
    EXPECT_EQ(resub->subscriptions[1].filter, "dt/+/x");
    EXPECT_EQ(resub->subscriptions[1].max_qos, 0);
    daemon_->send(ipc::subscribe_result{resub->request_id, {ok_result(1), ok_result(0)}});
    ASSERT_TRUE(states_.wait_until([&](const thingmux::state&) {
        return c->current_state().daemon == thingmux::daemon_state::connected;
    }));

    daemon_->send(ipc::message{"cmd/x", "1", 0, false, {}});
    daemon_->send(ipc::message{"dt/gw/x", "2", 0, false, {}});
    ASSERT_TRUE(got.wait_for_count(2));
    EXPECT_EQ(got.items(), (std::vector<std::string>{"a:1", "b:2"}));

    auto after = c->publish({.topic = "dt/gw/x", .payload = "x", .qos = 1});
    const auto p = daemon_->receive_as<ipc::publish>();
    ASSERT_TRUE(p);
    daemon_->send(ipc::publish_result{p->request_id, ok_result()});
    EXPECT_TRUE(get(after).ok());
}

TEST_F(LibClient, ResubscribeRefusedIsReportedAsLost) {
    auto c = connected_client(opts());
    collector<std::string> lost;
    c->on_subscription_lost([&](const std::string& f, const thingmux::result& r) {
        lost.add(f + ":" + to_string(r.code));
    });
    auto s = c->subscribe("cmd/#", 1, [](const thingmux::message&) {});
    const auto sub = daemon_->receive_as<ipc::subscribe>();
    ASSERT_TRUE(sub);
    daemon_->send(ipc::subscribe_result{sub->request_id, {ok_result(1)}});
    ASSERT_TRUE(get(s).ok());

    daemon_->drop();  // a crash: no error frame
    ASSERT_TRUE(daemon_->handshake());
    const auto resub = daemon_->receive_as<ipc::subscribe>();
    ASSERT_TRUE(resub);
    daemon_->send(ipc::subscribe_result{resub->request_id, {ipc::result{ipc::errc::not_authorized, 0, "policy changed"}}});
    ASSERT_TRUE(lost.wait_for_count(1));
    EXPECT_EQ(lost.items().front(), "cmd/#:not_authorized");
}

TEST_F(LibClient, WaitForDaemon_QueuesRequestsUntilTheDaemonIsBack) {
    auto o = opts();
    o.wait_for_daemon = true;
    thingmux::client c(o);
    c.start();
    auto connected = c.connect();
    collector<std::string> got;
    auto sub = c.subscribe("cmd/#", 1, [&](const thingmux::message& m) { got.add(m.payload); });
    auto pub = c.publish({.topic = "dt/gw/x", .payload = "queued", .qos = 1});
    // Nobody listens yet: the library keeps trying, the requests wait.
    EXPECT_EQ(connected.wait_for(50ms), std::future_status::timeout);
    EXPECT_EQ(pub.wait_for(0ms), std::future_status::timeout);

    daemon_->listen();
    ASSERT_TRUE(daemon_->handshake());
    const auto s = daemon_->receive_as<ipc::subscribe>();
    ASSERT_TRUE(s);
    EXPECT_EQ(s->subscriptions.at(0).filter, "cmd/#");
    const auto p = daemon_->receive_as<ipc::publish>();
    ASSERT_TRUE(p);
    EXPECT_EQ(p->payload, "queued");
    daemon_->send(ipc::subscribe_result{s->request_id, {ok_result(1)}});
    daemon_->send(ipc::publish_result{p->request_id, ok_result()});
    EXPECT_TRUE(get(connected).ok());
    EXPECT_TRUE(get(sub).ok());
    EXPECT_TRUE(get(pub).ok());
    daemon_->send(ipc::message{"cmd/a", "hi", 0, false, {}});
    ASSERT_TRUE(got.wait_for_count(1));
}

TEST_F(LibClient, WaitForDaemon_BacklogIsBounded) {
    auto o = opts();
    o.wait_for_daemon = true;
    o.max_backlog = 2;
    thingmux::client c(o);
    c.start();
    auto f1 = c.publish({.topic = "a", .payload = "1"});
    auto f2 = c.publish({.topic = "a", .payload = "2"});
    auto f3 = c.publish({.topic = "a", .payload = "3"});
    const auto r3 = get(f3);
    EXPECT_EQ(r3.code, error_code::backlog_full) << r3.message;
    EXPECT_EQ(f1.wait_for(0ms), std::future_status::timeout);
    c.close();
    EXPECT_EQ(get(f1).code, error_code::closed);
    EXPECT_EQ(get(f2).code, error_code::closed);
}

TEST_F(LibClient, IPC25_AtMostMaxInflightPublishesAreOutstanding) {
    auto w = fake_daemon::default_welcome();
    w.limits.max_inflight = 2;
    auto c = connected_client(opts(), w);
    std::vector<std::future<thingmux::result>> fs;
    for (int i = 0; i < 5; ++i) {
        fs.push_back(c->publish({.topic = "t", .payload = std::to_string(i), .qos = 1}));
    }
    std::vector<ipc::publish> seen;
    for (int i = 0; i < 2; ++i) {
        auto p = daemon_->receive_as<ipc::publish>();
        ASSERT_TRUE(p);
        seen.push_back(*p);
    }
    EXPECT_FALSE(daemon_->receive(200ms)) << "a third publish went out with 2 awaiting their result";
    std::size_t answered = 0;
    while (answered < 5) {
        daemon_->send(ipc::publish_result{seen[answered].request_id, ok_result()});
        ++answered;
        if (seen.size() < 5) {
            auto p = daemon_->receive_as<ipc::publish>();
            ASSERT_TRUE(p);
            seen.push_back(*p);
        }
    }
    for (std::size_t i = 0; i < 5; ++i) {
        EXPECT_EQ(seen[i].payload, std::to_string(i));
        EXPECT_TRUE(get(fs[i]).ok());
    }
}

TEST_F(LibClient, MalformedFrameFromTheDaemonEndsTheConnectionAndRetries) {
    auto c = connected_client(opts());
    daemon_->send_bytes({0x00, 0x00, 0x00, 0x02, 0x85, 0x00});  // message with a truncated body
    EXPECT_TRUE(daemon_->closed_by_client());
    ASSERT_TRUE(states_.wait_until([](const thingmux::state& s) {
        return s.daemon == thingmux::daemon_state::unavailable &&
               s.daemon_reason.find("bad frame") != std::string::npos;
    }));
    ASSERT_TRUE(daemon_->handshake());
}

TEST_F(LibClient, HandlerExceptionsAreContained) {
    auto c = connected_client(opts());
    collector<std::string> got;
    auto s = c->subscribe("t/#", 0, [&](const thingmux::message& m) {
        got.add(m.payload);
        throw std::runtime_error("app bug");
    });
    const auto sub = daemon_->receive_as<ipc::subscribe>();
    ASSERT_TRUE(sub);
    daemon_->send(ipc::subscribe_result{sub->request_id, {ok_result()}});
    ASSERT_TRUE(get(s).ok());
    daemon_->send(ipc::message{"t/1", "1", 0, false, {}});
    daemon_->send(ipc::message{"t/2", "2", 0, false, {}});
    ASSERT_TRUE(got.wait_for_count(2));
    std::promise<void> done;
    c->publish({.topic = "x", .payload = ""}, [&](const thingmux::result&) {
        done.set_value();
        throw std::runtime_error("completion bug");
    });
    const auto p = daemon_->receive_as<ipc::publish>();
    ASSERT_TRUE(p);
    daemon_->send(ipc::publish_result{p->request_id, ok_result()});
    EXPECT_EQ(done.get_future().wait_for(generous), std::future_status::ready);
    EXPECT_EQ(c->current_state().daemon, thingmux::daemon_state::connected);
}

TEST_F(LibClient, CloseCompletesPendingRequestsAndStopsHandlers) {
    auto c = connected_client(opts());
    std::atomic<bool> closed{false};
    std::atomic<int> after_close{0};
    auto s = c->subscribe("t/#", 0, [&](const thingmux::message&) {
        if (closed) {
            ++after_close;
        }
    });
    const auto sub = daemon_->receive_as<ipc::subscribe>();
    ASSERT_TRUE(sub);
    daemon_->send(ipc::subscribe_result{sub->request_id, {ok_result()}});
    ASSERT_TRUE(get(s).ok());
    auto pending = c->publish({.topic = "x", .payload = "", .qos = 1});
    ASSERT_TRUE(daemon_->receive_as<ipc::publish>());
    for (int i = 0; i < 100; ++i) {
        daemon_->send(ipc::message{"t/x", std::to_string(i), 0, false, {}});
    }
    c->close();
    closed = true;
    EXPECT_EQ(pending.wait_for(0ms), std::future_status::ready);  // completed before close() returned
    EXPECT_EQ(pending.get().code, error_code::closed);
    auto later = c->publish({.topic = "x", .payload = ""});
    EXPECT_EQ(later.wait_for(0ms), std::future_status::ready);
    EXPECT_EQ(later.get().code, error_code::closed);
    EXPECT_EQ(c->current_state().daemon, thingmux::daemon_state::closed);
    EXPECT_TRUE(daemon_->closed_by_client());
    c.reset();
    EXPECT_EQ(after_close.load(), 0);
}

TEST_F(LibClient, CloseFromInsideAHandler) {
    auto c = connected_client(opts());
    std::promise<void> in_handler;
    std::atomic<int> calls{0};
    thingmux::client* raw = c.get();
    auto s = c->subscribe("t/#", 0, [&](const thingmux::message&) {
        if (++calls == 1) {
            raw->close();
            in_handler.set_value();
        }
    });
    const auto sub = daemon_->receive_as<ipc::subscribe>();
    ASSERT_TRUE(sub);
    daemon_->send(ipc::subscribe_result{sub->request_id, {ok_result()}});
    ASSERT_TRUE(get(s).ok());
    // One write: the client may close as soon as it handled the first.
    auto both = ipc::encode(ipc::daemon_message{ipc::message{"t/1", "1", 0, false, {}}}, ipc::wire_version::v3);
    ipc::encode(ipc::daemon_message{ipc::message{"t/2", "2", 0, false, {}}}, both, ipc::wire_version::v3);
    daemon_->send_bytes(both);
    EXPECT_EQ(in_handler.get_future().wait_for(generous), std::future_status::ready);
    c.reset();  // joins the library thread
    EXPECT_EQ(calls.load(), 1);
}

// fd() + process(): no library thread; the handlers run on the thread that calls process().
TEST_F(LibClient, FdAndProcessWithoutStart) {
    daemon_->listen();
    thingmux::client c(opts());
    const auto fd = c.fd();
    ASSERT_GE(fd, 0);
    const auto run_until = [&](auto done) {
        const auto deadline = std::chrono::steady_clock::now() + generous;
        while (!done() && std::chrono::steady_clock::now() < deadline) {
            pollfd p{fd, POLLIN, 0};
            ::poll(&p, 1, 100);
            c.process();
        }
        return done();
    };

    std::thread daemon_side([&] {
        const auto hello = daemon_->handshake();
        ASSERT_TRUE(hello);
        const auto sub = daemon_->receive_as<ipc::subscribe>();
        ASSERT_TRUE(sub);
        daemon_->send(ipc::subscribe_result{sub->request_id, {ok_result(1)}});
        daemon_->send(ipc::message{"cmd/gw/x", "hello", 1, false, {}});
        const auto p = daemon_->receive_as<ipc::publish>();
        ASSERT_TRUE(p);
        daemon_->send(ipc::publish_result{p->request_id, ok_result()});
    });

    const auto me = std::this_thread::get_id();
    std::optional<thingmux::result> connected;
    c.connect([&](const thingmux::result& r) {
        EXPECT_EQ(std::this_thread::get_id(), me);
        connected = r;
    });
    ASSERT_TRUE(run_until([&] { return connected.has_value(); }));
    EXPECT_TRUE(connected->ok()) << connected->message;

    std::vector<std::string> got;
    std::optional<thingmux::result> subscribed;
    c.subscribe(
        "cmd/#", 1,
        [&](const thingmux::message& m) {
            EXPECT_EQ(std::this_thread::get_id(), me);
            got.push_back(m.payload);
        },
        [&](const thingmux::result& r) { subscribed = r; });
    ASSERT_TRUE(run_until([&] { return subscribed.has_value() && !got.empty(); }));
    EXPECT_TRUE(subscribed->ok());
    EXPECT_EQ(got, (std::vector<std::string>{"hello"}));

    auto f = c.publish({.topic = "dt/gw/x", .payload = "p", .qos = 1});
    ASSERT_TRUE(run_until([&] { return f.wait_for(0ms) == std::future_status::ready; }));
    EXPECT_TRUE(f.get().ok());
    daemon_side.join();
}

// ---------------------------------------------------------------------------------------------
// Sessions (protocol version 2, IPC-43 .. IPC-46)

ipc::welcome session_welcome(bool present, std::uint32_t expiry) {
    auto w = fake_daemon::default_welcome();
    w.version = 2;
    w.session_present = present;
    w.session_expiry = expiry;
    return w;
}

thingmux::options with_session(thingmux::options o) {
    o.session_name = "recorder";
    o.session_expiry = 3600s;
    return o;
}

TEST_F(LibClient, IPC43_ASessionNameGoesInTheHelloAndTheWelcomeTellsWhatWasKept) {
    daemon_->listen();
    thingmux::client c(with_session(opts()));
    c.start();
    auto f = c.connect();
    ASSERT_TRUE(daemon_->accept());
    const auto hello = daemon_->receive_as<ipc::hello>();
    ASSERT_TRUE(hello);
    EXPECT_EQ(hello->version, 3);
    EXPECT_EQ(hello->session_name, "recorder");
    EXPECT_EQ(hello->session_expiry, 3600U);
    auto w = session_welcome(true, 600);
    w.version = 3;
    daemon_->send(w);
    EXPECT_EQ(get(f).code, error_code::ok);
    const auto info = c.daemon();
    ASSERT_TRUE(info);
    EXPECT_EQ(info->protocol_version, 3);
    EXPECT_TRUE(info->session_present);
    EXPECT_EQ(info->session_expiry, 600s);
}

TEST_F(LibClient, IPC60_WithoutASessionNameTheHelloIsVersion3WithoutASession) {
    auto c = connected_client(opts());
    const auto info = c->daemon();
    ASSERT_TRUE(info);
    EXPECT_EQ(info->protocol_version, 3);
    EXPECT_FALSE(info->session_present);
    EXPECT_EQ(info->session_expiry, 0s);
}

TEST_F(LibClient, IPC44_AQoS1DeliveryIsAcknowledgedOnceItsHandlerReturned) {
    auto c = connected_client(with_session(opts()), session_welcome(false, 3600));
    std::promise<void> release;
    auto released = release.get_future().share();
    collector<std::string> handled;
    auto s = c->subscribe("cmd/#", 1, [&](const thingmux::message& m) {
        handled.add(m.payload);
        if (m.payload == "first") {
            released.wait();
        }
    });
    const auto sub = daemon_->receive_as<ipc::subscribe>();
    ASSERT_TRUE(sub);
    daemon_->send(ipc::subscribe_result{sub->request_id, {ok_result(1)}});
    EXPECT_TRUE(get(s).ok());

    daemon_->send(ipc::message{.topic = "cmd/a", .payload = "first", .qos = 1, .retain = false, .props = {},
                               .delivery_id = 7});
    ASSERT_TRUE(handled.wait_for_count(1));
    // The handler has not returned: nothing is acknowledged yet.
    EXPECT_FALSE(daemon_->receive(100ms));
    release.set_value();
    const auto first = daemon_->receive_as<ipc::ack>();
    ASSERT_TRUE(first);
    EXPECT_EQ(first->delivery_id, 7U);

    // Delivery id 0 (QoS 0) is not acknowledged: the next ack is the next QoS 1 delivery's.
    daemon_->send(ipc::message{.topic = "cmd/b", .payload = "qos0", .qos = 0, .retain = false, .props = {},
                               .delivery_id = 0});
    daemon_->send(ipc::message{.topic = "cmd/c", .payload = "second", .qos = 1, .retain = false, .props = {},
                               .delivery_id = 8});
    const auto second = daemon_->receive_as<ipc::ack>();
    ASSERT_TRUE(second);
    EXPECT_EQ(second->delivery_id, 8U);
    EXPECT_EQ(handled.items(), (std::vector<std::string>{"first", "qos0", "second"}));

    // A delivery no handler takes is held, unacknowledged, for one that may come; unsubscribing
    // its filter says none will, and acknowledges it.
    daemon_->send(ipc::message{.topic = "dt/elsewhere", .payload = "x", .qos = 1, .retain = false, .props = {},
                               .delivery_id = 9});
    EXPECT_FALSE(daemon_->receive(100ms)) << "acknowledged with no handler";
    auto u = c->unsubscribe("dt/#");
    const auto unhandled = daemon_->receive_as<ipc::ack>();
    ASSERT_TRUE(unhandled);
    EXPECT_EQ(unhandled->delivery_id, 9U);
    EXPECT_EQ(handled.items(), (std::vector<std::string>{"first", "qos0", "second"}));
}

// A resumed session delivers what waited right after the welcome, before the app subscribed
// again: those deliveries wait in the library for the handler, and are acknowledged once it
// returned. Requests made before the first connect() wait for it even without wait_for_daemon,
// so that an app can register its handlers first.
TEST_F(LibClient, IPC43_WhatAResumedSessionDeliversBeforeTheAppSubscribesWaitsForItsHandler) {
    daemon_->listen();
    thingmux::client c(with_session(opts()));
    c.start();
    collector<std::string> early;
    auto before = c.subscribe("early/#", 1, [&](const thingmux::message& m) { early.add(m.payload); });
    EXPECT_EQ(before.wait_for(100ms), std::future_status::timeout) << "refused before connect()";
    auto f = c.connect();
    ASSERT_TRUE(daemon_->accept());
    ASSERT_TRUE(daemon_->receive_as<ipc::hello>());
    auto w = session_welcome(true, 3600);
    w.version = 3;
    daemon_->send(w);
    ASSERT_EQ(get(f).code, error_code::ok);
    // What waited in the session, before any subscribe from this connection was answered.
    daemon_->send(ipc::message{.topic = "early/a", .payload = "e1", .qos = 1, .retain = false, .props = {},
                               .delivery_id = 1});
    daemon_->send(ipc::message{.topic = "late/a", .payload = "l1", .qos = 1, .retain = false, .props = {},
                               .delivery_id = 2});
    daemon_->send(ipc::message{.topic = "late/b", .payload = "l2", .qos = 1, .retain = false, .props = {},
                               .delivery_id = 3});
    const auto sub = daemon_->receive_as<ipc::subscribe>();
    ASSERT_TRUE(sub);
    ASSERT_EQ(sub->subscriptions.size(), 1U);
    EXPECT_EQ(sub->subscriptions[0].filter, "early/#");
    daemon_->send(ipc::subscribe_result{sub->request_id, {ok_result(1)}});
    EXPECT_TRUE(get(before).ok());
    const auto first = daemon_->receive_as<ipc::ack>();
    ASSERT_TRUE(first);
    EXPECT_EQ(first->delivery_id, 1U);
    EXPECT_EQ(early.items(), (std::vector<std::string>{"e1"}));
    EXPECT_FALSE(daemon_->receive(100ms)) << "late/# deliveries acknowledged with no handler";

    collector<std::string> late;
    auto after = c.subscribe("late/#", 1, [&](const thingmux::message& m) { late.add(m.payload); });
    ASSERT_TRUE(late.wait_for_count(2));
    EXPECT_EQ(late.items(), (std::vector<std::string>{"l1", "l2"}));
    std::vector<std::uint32_t> acked;
    while (acked.size() < 2) {
        auto m = daemon_->receive(2s);
        ASSERT_TRUE(m) << acked.size() << " acks";
        if (auto* a = std::get_if<ipc::ack>(&*m)) acked.push_back(a->delivery_id);
    }
    std::sort(acked.begin(), acked.end());
    EXPECT_EQ(acked, (std::vector<std::uint32_t>{2, 3}));
}

std::unique_ptr<thingmux::client> LibClient::subscribed_then_away(thingmux::options o, const std::string& filter,
                                                                   thingmux::message_handler handler) {
    o = with_session(std::move(o));
    o.reconnect_min = 10ms;
    o.reconnect_max = 10ms;
    auto c = connected_client(std::move(o), session_welcome(false, 3600));
    auto s = c->subscribe(filter, 1, std::move(handler));
    const auto sub = daemon_->receive_as<ipc::subscribe>();
    EXPECT_TRUE(sub);
    if (sub) daemon_->send(ipc::subscribe_result{sub->request_id, {ok_result(1)}});
    EXPECT_TRUE(get(s).ok());
    daemon_->drop();
    daemon_->stop_listening();
    EXPECT_TRUE(states_.wait_until([](const thingmux::state& st) { return st.daemon == thingmux::daemon_state::unavailable; }));
    return c;
}

// A session keeps its subscriptions while the app is away from the daemon (IPC-43): an
// unsubscribe made meanwhile goes out with the next connection (wait_for_daemon) instead of being
// dropped, and the filter is not subscribed again; without wait_for_daemon it fails like any
// request made while away, the filter still held.
TEST_F(LibClient, IPC43_AnUnsubscribeWhileAwayGoesOutWithTheNextConnectionOfASession) {
    auto o = opts();
    o.wait_for_daemon = true;
    auto c = subscribed_then_away(o, "cmd/#", [](const thingmux::message&) {});
    ASSERT_FALSE(HasFailure());
    auto u = c->unsubscribe("cmd/#");
    EXPECT_EQ(u.wait_for(100ms), std::future_status::timeout) << "done without the session hearing of it";

    daemon_->listen();
    ASSERT_TRUE(daemon_->handshake(session_welcome(true, 3600)));
    const auto unsub = daemon_->receive_as<ipc::unsubscribe>();
    ASSERT_TRUE(unsub);
    EXPECT_EQ(unsub->filters, (std::vector<std::string>{"cmd/#"}));
    daemon_->send(ipc::unsubscribe_result{unsub->request_id, {ok_result(0)}});
    EXPECT_TRUE(get(u).ok());
    EXPECT_FALSE(daemon_->receive(100ms)) << "the filter was subscribed again";
}

TEST_F(LibClient, IPC43_WithoutWaitForDaemonAnUnsubscribeWhileAwayFailsAndKeepsTheFilter) {
    collector<std::string> got;
    auto c = subscribed_then_away(opts(), "cmd/#", [&](const thingmux::message& m) { got.add(m.payload); });
    ASSERT_FALSE(HasFailure());
    auto u = c->unsubscribe("cmd/#");
    EXPECT_EQ(get(u, 2s).code, error_code::not_connected);

    daemon_->listen();
    ASSERT_TRUE(daemon_->handshake(session_welcome(true, 3600)));
    const auto again = daemon_->receive_as<ipc::subscribe>();  // the filter is still the app's
    ASSERT_TRUE(again);
    daemon_->send(ipc::message{.topic = "cmd/a", .payload = "still", .qos = 1, .retain = false, .props = {},
                               .delivery_id = 4});
    ASSERT_TRUE(got.wait_for_count(1));
    EXPECT_EQ(got.items(), (std::vector<std::string>{"still"}));
}

TEST_F(LibClient, IPC46_IPC60_ADaemonThatRefusesVersions3And2GetsAVersion1HelloWithoutASession) {
    daemon_->listen();
    thingmux::client c(with_session(opts()));
    c.start();
    auto f = c.connect();
    ASSERT_TRUE(daemon_->accept());
    const auto v3 = daemon_->receive_as<ipc::hello>();
    ASSERT_TRUE(v3);
    EXPECT_EQ(v3->version, 3);
    daemon_->send(ipc::error{ipc::errc::unsupported_version, "client speaks IPC version 3, thingmuxd speaks 1 and 2"});
    daemon_->drop();
    ASSERT_TRUE(daemon_->accept());
    const auto v2 = daemon_->receive_as<ipc::hello>();
    ASSERT_TRUE(v2);
    EXPECT_EQ(v2->version, 2);
    daemon_->send(ipc::error{ipc::errc::unsupported_version, "client speaks IPC version 2, thingmuxd speaks 1"});
    daemon_->drop();

    ASSERT_TRUE(daemon_->accept());
    const auto v1 = daemon_->receive_as<ipc::hello>();
    ASSERT_TRUE(v1);
    EXPECT_EQ(v1->version, 1);
    EXPECT_EQ(v1->session_name, "");
    EXPECT_EQ(v1->app_name, "unit");
    daemon_->send(fake_daemon::default_welcome());
    EXPECT_EQ(get(f).code, error_code::ok);
    const auto info = c.daemon();
    ASSERT_TRUE(info);
    EXPECT_EQ(info->protocol_version, 1);
    EXPECT_EQ(info->session_expiry, 0s);

    // After that connection ends, the next attempt asks for version 3 again.
    daemon_->send(ipc::error{ipc::errc::daemon_shutting_down, "bye"});
    daemon_->drop();
    ASSERT_TRUE(daemon_->accept());
    const auto again = daemon_->receive_as<ipc::hello>();
    ASSERT_TRUE(again);
    EXPECT_EQ(again->version, 3);
}

TEST_F(LibClient, IPC60_WithoutASessionADaemonThatRefusesVersion3GetsVersion1) {
    daemon_->listen();
    thingmux::client c(opts());
    c.start();
    auto f = c.connect();
    ASSERT_TRUE(daemon_->accept());
    const auto v3 = daemon_->receive_as<ipc::hello>();
    ASSERT_TRUE(v3);
    EXPECT_EQ(v3->version, 3);
    daemon_->send(ipc::error{ipc::errc::unsupported_version, "client speaks IPC version 3, thingmuxd speaks 1 and 2"});
    daemon_->drop();
    ASSERT_TRUE(daemon_->accept());
    const auto v1 = daemon_->receive_as<ipc::hello>();
    ASSERT_TRUE(v1);
    EXPECT_EQ(v1->version, 1) << "version 2 has nothing for an app without a session";
    daemon_->send(fake_daemon::default_welcome());
    EXPECT_EQ(get(f).code, error_code::ok);

    // A subscribe asking to complete at registration goes without the flag, and completes with
    // the (one) answer.
    auto s = c.subscribe("cmd/#", 1, [](const thingmux::message&) {},
                         {.complete_at = thingmux::subscribe_completion::registered});
    const auto sub = daemon_->receive_as<ipc::subscribe>();
    ASSERT_TRUE(sub);
    EXPECT_EQ(sub->flags, 0);
    daemon_->send(ipc::subscribe_result{sub->request_id, {ok_result(1)}});
    EXPECT_EQ(get(s).code, error_code::ok);
}

TEST_F(LibClient, IPC61_IPC62_ASubscribeCompletesAtRegistrationAndALaterRefusalIsReportedAsLost) {
    auto c = connected_client(opts());
    collector<std::string> lost;
    c->on_subscription_lost([&](const std::string& f, const thingmux::result& r) {
        lost.add(f + ":" + thingmux::to_string(r.code));
    });
    collector<std::string> got;
    const thingmux::request_options at_registration{.complete_at = thingmux::subscribe_completion::registered};
    auto s1 = c->subscribe("cmd/#", 1, [&](const thingmux::message& m) { got.add(m.payload); }, at_registration);
    auto s2 = c->subscribe("secret/#", 1, [&](const thingmux::message& m) { got.add(m.payload); }, at_registration);
    const auto sub1 = daemon_->receive_as<ipc::subscribe>();
    const auto sub2 = daemon_->receive_as<ipc::subscribe>();
    ASSERT_TRUE(sub1 && sub2);
    EXPECT_EQ(sub1->flags, ipc::subscribe_answer_at_registration);
    EXPECT_EQ(sub2->flags, ipc::subscribe_answer_at_registration);

    // The first answers: registered (the broker is down: no SUBACK yet).
    daemon_->send(ipc::subscribe_result{sub1->request_id, {ipc::result{ipc::errc::ok, 1, "registered"}}});
    daemon_->send(ipc::subscribe_result{sub2->request_id, {ipc::result{ipc::errc::ok, 1, "registered"}}});
    const auto r1 = get(s1);
    EXPECT_EQ(r1.code, error_code::ok);
    EXPECT_EQ(r1.message, "registered");
    EXPECT_TRUE(get(s2).ok());

    // The broker is back: the final answers. One filter is accepted, its messages flow; the
    // other is refused: removed, and reported as lost.
    daemon_->send(ipc::subscribe_result{sub1->request_id, {ok_result(1)}});
    daemon_->send(ipc::subscribe_result{sub2->request_id, {ipc::result{ipc::errc::broker_refused, 0x87, "refused"}}});
    ASSERT_TRUE(lost.wait_for_count(1));
    EXPECT_EQ(lost.items(), (std::vector<std::string>{"secret/#:broker_refused"}));
    daemon_->send(ipc::message{"cmd/a", "1", 0, false, {}});
    daemon_->send(ipc::message{"secret/a", "2", 0, false, {}});
    sync_with(*c, *daemon_);
    EXPECT_EQ(got.items(), (std::vector<std::string>{"1"}));
    EXPECT_EQ(c->counters().late_results, 0U) << "the final answer is expected, not late";

    // Reconnected: the registered and accepted filter is subscribed again, the lost one not.
    daemon_->send(ipc::error{ipc::errc::daemon_shutting_down, "bye"});
    ASSERT_TRUE(daemon_->handshake());
    const auto resub = daemon_->receive_as<ipc::subscribe>();
    ASSERT_TRUE(resub);
    ASSERT_EQ(resub->subscriptions.size(), 1U);
    EXPECT_EQ(resub->subscriptions[0].filter, "cmd/#");
    EXPECT_EQ(resub->flags, 0);
}

TEST_F(LibClient, IPC61_ARefusalAtRegistrationCompletesTheSubscribeAndRemovesTheFilter) {
    auto c = connected_client(opts());
    std::atomic<int> lost{0};
    c->on_subscription_lost([&](const std::string&, const thingmux::result&) { ++lost; });
    std::atomic<int> calls{0};
    auto s = c->subscribe("secret/#", 1, [&](const thingmux::message&) { ++calls; },
                          {.complete_at = thingmux::subscribe_completion::registered});
    const auto sub = daemon_->receive_as<ipc::subscribe>();
    ASSERT_TRUE(sub);
    const ipc::result denied{ipc::errc::not_authorized, 0, "denied by policy"};
    daemon_->send(ipc::subscribe_result{sub->request_id, {denied}});
    EXPECT_EQ(get(s).code, error_code::not_authorized);
    daemon_->send(ipc::subscribe_result{sub->request_id, {denied}});  // the final answer repeats it
    daemon_->send(ipc::message{"secret/x", "leak", 0, false, {}});
    sync_with(*c, *daemon_);
    EXPECT_EQ(calls.load(), 0);
    EXPECT_EQ(lost.load(), 0) << "the app was told by the subscribe's own result";
}

TEST_F(LibClient, IPC43_ASessionNameOver256BytesIsRefusedLocally) {
    auto o = with_session(opts());
    o.session_name = std::string(257, 's');
    o.reconnect = false;
    thingmux::client c(o);
    c.start();
    auto f = c.connect();
    const auto r = get(f);
    EXPECT_EQ(r.code, error_code::invalid_argument);
    EXPECT_NE(r.message.find("session name is 257 bytes"), std::string::npos) << r.message;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Request timeouts and cancellation (docs/libthingmux.md, "Timeouts and cancellation")


TEST_F(LibClient, Timeout_AnUnansweredPublishTimesOutOnceAndItsLateResultIsDroppedAndCounted) {
    auto c = connected_client(opts());
    collector<thingmux::result> done;
    const auto handle = c->publish({.topic = "dt/gw/t", .payload = "1", .qos = 1}, {.timeout = 50ms},
                                   [&](const thingmux::result& r) { done.add(r); });
    auto fut = c->publish({.topic = "dt/gw/t", .payload = "2", .qos = 1}, thingmux::request_options{.timeout = 50ms});
    const auto p1 = daemon_->receive_as<ipc::publish>();
    const auto p2 = daemon_->receive_as<ipc::publish>();
    ASSERT_TRUE(p1 && p2);
    ASSERT_TRUE(done.wait_for_count(1));
    EXPECT_EQ(done.items()[0].code, error_code::timed_out);
    EXPECT_TRUE(handle.done());
    EXPECT_EQ(get(fut).code, error_code::timed_out);

    // The daemon's answers come late: dropped, never a second completion.
    daemon_->send(ipc::publish_result{p1->request_id, ok_result()});
    daemon_->send(ipc::publish_result{p2->request_id, ok_result()});
    sync_with(*c, *daemon_);
    EXPECT_EQ(done.size(), 1U);
    const auto n = c->counters();
    EXPECT_EQ(n.timed_out, 2U);
    EXPECT_EQ(n.late_results, 2U);
    EXPECT_EQ(n.cancelled, 0U);
}

TEST_F(LibClient, Timeout_AnAnswerInTimeCompletesNormallyAndTheTimerDoesNothingLater) {
    auto c = connected_client(opts());
    collector<thingmux::result> done;
    static_cast<void>(c->publish({.topic = "dt/gw/t", .payload = "1", .qos = 1}, {.timeout = 100ms},
                                 [&](const thingmux::result& r) { done.add(r); }));
    const auto p = daemon_->receive_as<ipc::publish>();
    ASSERT_TRUE(p);
    daemon_->send(ipc::publish_result{p->request_id, ok_result()});
    ASSERT_TRUE(done.wait_for_count(1));
    EXPECT_EQ(done.items()[0].code, error_code::ok);
    // Past its deadline (a later request's timer fired after it): still one completion.
    auto later = c->publish({.topic = "dt/gw/t", .payload = "2", .qos = 1}, {.timeout = 150ms});
    const auto p2 = daemon_->receive_as<ipc::publish>();
    ASSERT_TRUE(p2);
    EXPECT_EQ(get(later).code, error_code::timed_out);
    EXPECT_EQ(done.size(), 1U);
    EXPECT_EQ(c->counters().timed_out, 1U);
    EXPECT_EQ(c->counters().late_results, 0U);
}

TEST_F(LibClient, Timeout_ARequestWaitingForTheDaemonIsWithdrawnAndNeverSent) {
    auto o = opts();
    o.wait_for_daemon = true;
    thingmux::client c(o);
    c.start();
    auto conn = c.connect();
    auto sub = c.subscribe("cmd/#", 1, [](const thingmux::message&) {}, {.timeout = 30ms});
    auto pub = c.publish({.topic = "dt/gw/t", .payload = "x", .qos = 1}, {.timeout = 30ms});
    EXPECT_EQ(get(sub).code, error_code::timed_out);
    const auto r = get(pub);
    EXPECT_EQ(r.code, error_code::timed_out);
    EXPECT_NE(r.message.find("withdrawn"), std::string::npos) << r.message;

    // The daemon comes: neither the subscribe (its filter went with it) nor the publish is sent.
    daemon_->listen();
    ASSERT_TRUE(daemon_->handshake());
    ASSERT_TRUE(get(conn).ok());
    sync_with(c, *daemon_);
    EXPECT_EQ(c.counters().timed_out, 2U);
    EXPECT_EQ(c.counters().late_results, 0U);
}

TEST_F(LibClient, Cancel_AHandleAndAStopTokenEndTheWaitOnceWithCancelled) {
    auto c = connected_client(opts());
    collector<thingmux::result> done;
    const auto handle = c->publish({.topic = "dt/gw/t", .payload = "1", .qos = 1}, {},
                                   [&](const thingmux::result& r) { done.add(r); });
    std::stop_source stop;
    auto fut = c->publish({.topic = "dt/gw/t", .payload = "2", .qos = 1}, {.cancel = stop.get_token()});
    const auto p1 = daemon_->receive_as<ipc::publish>();
    const auto p2 = daemon_->receive_as<ipc::publish>();
    ASSERT_TRUE(p1 && p2);
    EXPECT_FALSE(handle.done());
    handle.cancel();
    handle.cancel();  // twice: still once
    stop.request_stop();
    ASSERT_TRUE(done.wait_for_count(1));
    EXPECT_EQ(done.items()[0].code, error_code::cancelled);
    EXPECT_EQ(get(fut).code, error_code::cancelled);
    daemon_->send(ipc::publish_result{p1->request_id, ok_result()});
    daemon_->send(ipc::publish_result{p2->request_id, ok_result()});
    sync_with(*c, *daemon_);
    EXPECT_EQ(done.size(), 1U);
    EXPECT_EQ(c->counters().cancelled, 2U);
    EXPECT_EQ(c->counters().late_results, 2U);

    // A token stopped before the call: cancelled at once, nothing lost.
    std::stop_source early;
    early.request_stop();
    auto pre = c->publish({.topic = "dt/gw/t", .payload = "3", .qos = 1}, {.cancel = early.get_token()});
    EXPECT_EQ(get(pre).code, error_code::cancelled);
    // A default handle cancels nothing.
    thingmux::request_handle none;
    none.cancel();
    EXPECT_TRUE(none.done());
}

TEST_F(LibClient, Cancel_ASubscribeTheDaemonRefusesAfterItsWaitEndedIsReportedAsLost) {
    auto c = connected_client(opts());
    collector<std::string> lost;
    c->on_subscription_lost([&](const std::string& f, const thingmux::result& r) {
        lost.add(f + ":" + thingmux::to_string(r.code));
    });
    std::atomic<int> calls{0};
    auto sub = c->subscribe("cmd/#", 1, [&](const thingmux::message&) { ++calls; }, {.timeout = 30ms});
    const auto s = daemon_->receive_as<ipc::subscribe>();
    ASSERT_TRUE(s);
    EXPECT_EQ(get(sub).code, error_code::timed_out);
    // Still held meanwhile: its messages reach the handler.
    daemon_->send(ipc::message{"cmd/a", "1", 0, false, {}});
    daemon_->send(ipc::subscribe_result{s->request_id, {ipc::result{ipc::errc::broker_refused, 0x87, "refused"}}});
    ASSERT_TRUE(lost.wait_for_count(1));
    EXPECT_EQ(lost.items()[0], "cmd/#:broker_refused");
    daemon_->send(ipc::message{"cmd/a", "2", 0, false, {}});
    sync_with(*c, *daemon_);
    EXPECT_EQ(calls.load(), 1);
    EXPECT_EQ(c->counters().late_results, 1U);
}

TEST_F(LibClient, Timeout_CloseCompletesATimedRequestOnceWithClosed) {
    auto c = connected_client(opts());
    collector<thingmux::result> done;
    static_cast<void>(c->publish({.topic = "dt/gw/t", .payload = "1", .qos = 1}, {.timeout = 10s},
                                 [&](const thingmux::result& r) { done.add(r); }));
    ASSERT_TRUE(daemon_->receive_as<ipc::publish>());
    c->close();
    ASSERT_EQ(done.size(), 1U);
    EXPECT_EQ(done.items()[0].code, error_code::closed);
}

// ---------------------------------------------------------------------------------------------
// Listeners and consume (docs/libthingmux.md, "Listeners", "Consuming")

TEST_F(LibClient, StateListeners_EachSeesEveryChangeUntilRemoved) {
    daemon_->listen();
    thingmux::client c(opts());
    collector<thingmux::state> first;
    collector<thingmux::state> second;
    const auto a = c.add_state_listener([&](const thingmux::state& s) { first.add(s); });
    const auto b = c.add_state_listener([&](const thingmux::state& s) { second.add(s); });
    EXPECT_NE(a, 0U);
    EXPECT_NE(a, b);
    c.start();
    auto f = c.connect();
    ASSERT_TRUE(daemon_->handshake());
    ASSERT_TRUE(get(f).ok());
    daemon_->send(ipc::state{ipc::link_state::backing_off, "broker down", false, 1000});
    ASSERT_TRUE(first.wait_until([](const thingmux::state& s) { return s.uplink == thingmux::uplink_state::backing_off; }));
    ASSERT_TRUE(second.wait_until([](const thingmux::state& s) { return s.uplink == thingmux::uplink_state::backing_off; }));
    EXPECT_EQ(first.size(), second.size());
    EXPECT_TRUE(c.remove_state_listener(a));
    EXPECT_FALSE(c.remove_state_listener(a));
    const auto seen = first.size();
    daemon_->send(ipc::state{ipc::link_state::connected, "", false, 0});
    ASSERT_TRUE(second.wait_for_count(seen + 1));
    sync_with(c, *daemon_);
    EXPECT_EQ(first.size(), seen) << "a removed listener saw a change";
    EXPECT_EQ(second.items().back().uplink, thingmux::uplink_state::connected);
}

TEST_F(LibClient, MessageListeners_UnmatchedGetsWhatNoHandlerTookAndAllGetsEverything) {
    auto c = connected_client(opts());
    collector<std::string> handler;
    collector<std::string> unmatched;
    collector<std::string> all;
    const auto u = c->add_message_listener([&](const thingmux::message& m) { unmatched.add(m.topic); });
    c->add_message_listener([&](const thingmux::message& m) { all.add(m.topic); }, thingmux::message_scope::all);
    auto s1 = c->subscribe("cmd/#", 1, [&](const thingmux::message& m) { handler.add(m.topic); });
    auto s2 = c->subscribe("dt/#", 1, nullptr);  // no handler: left to the listeners
    for (int i = 0; i < 2; ++i) {
        const auto s = daemon_->receive_as<ipc::subscribe>();
        ASSERT_TRUE(s);
        daemon_->send(ipc::subscribe_result{s->request_id, {ok_result(1)}});
    }
    ASSERT_TRUE(get(s1).ok());
    ASSERT_TRUE(get(s2).ok());
    daemon_->send(ipc::message{"cmd/a", "", 0, false, {}});
    daemon_->send(ipc::message{"dt/b", "", 0, false, {}});
    daemon_->send(ipc::message{"other/c", "", 0, false, {}});  // a filter dropped while on its way
    sync_with(*c, *daemon_);
    EXPECT_EQ(handler.items(), (std::vector<std::string>{"cmd/a"}));
    EXPECT_EQ(unmatched.items(), (std::vector<std::string>{"dt/b", "other/c"}));
    EXPECT_EQ(all.items(), (std::vector<std::string>{"cmd/a", "dt/b", "other/c"}));
    EXPECT_TRUE(c->remove_message_listener(u));
    daemon_->send(ipc::message{"dt/d", "", 0, false, {}});
    sync_with(*c, *daemon_);
    EXPECT_EQ(unmatched.size(), 2U);
    EXPECT_EQ(all.size(), 4U);
}

TEST_F(LibClient, Consume_ReturnsUnhandledMessagesInOrderAndDropsTheNewestWhenFull) {
    auto c = connected_client(opts());
    EXPECT_FALSE(c->consume(0ms)) << "not consuming yet";
    c->start_consuming({.capacity = 3});
    auto s = c->subscribe("dt/#", 0, nullptr);
    const auto sub = daemon_->receive_as<ipc::subscribe>();
    ASSERT_TRUE(sub);
    daemon_->send(ipc::subscribe_result{sub->request_id, {ok_result(0)}});
    ASSERT_TRUE(get(s).ok());
    for (int i = 0; i < 5; ++i) {
        daemon_->send(ipc::message{"dt/x", std::to_string(i), 0, false, {}});
    }
    sync_with(*c, *daemon_);
    std::vector<std::string> got;
    while (auto m = c->consume(0ms)) {
        got.push_back(m->payload);
    }
    EXPECT_EQ(got, (std::vector<std::string>{"0", "1", "2"}));
    EXPECT_EQ(c->counters().consume_dropped, 2U);

    // A blocking consume() wakes for a message sent while it waits.
    std::thread later([&] { daemon_->send(ipc::message{"dt/y", "late", 0, false, {}}); });
    const auto m = c->consume(generous);
    later.join();
    ASSERT_TRUE(m);
    EXPECT_EQ(m->topic, "dt/y");
    EXPECT_EQ(m->payload, "late");
    c->stop_consuming();
    EXPECT_FALSE(c->consume(0ms));
}

TEST_F(LibClient, Consume_ASessionDeliveryIsAcknowledgedWhenConsumedAndNeverDropped) {
    auto c = connected_client(with_session(opts()), session_welcome(false, 3600));
    c->start_consuming({.capacity = 1});
    auto s = c->subscribe("cmd/#", 1, nullptr);
    const auto sub = daemon_->receive_as<ipc::subscribe>();
    ASSERT_TRUE(sub);
    daemon_->send(ipc::subscribe_result{sub->request_id, {ok_result(1)}});
    ASSERT_TRUE(get(s).ok());
    for (std::uint32_t id = 1; id <= 3; ++id) {
        daemon_->send(ipc::message{.topic = "cmd/a", .payload = std::to_string(id), .qos = 1, .retain = false,
                                   .props = {}, .delivery_id = id});
    }
    EXPECT_FALSE(daemon_->receive(100ms)) << "acknowledged before it was consumed";
    for (std::uint32_t id = 1; id <= 3; ++id) {
        const auto m = c->consume(generous);
        ASSERT_TRUE(m);
        EXPECT_EQ(m->payload, std::to_string(id));
        const auto ack = daemon_->receive_as<ipc::ack>();
        ASSERT_TRUE(ack);
        EXPECT_EQ(ack->delivery_id, id);
    }
    EXPECT_EQ(c->counters().consume_dropped, 0U);
}

TEST_F(LibClient, Consume_WithoutStartDrivesTheClientWhileItWaits) {
    daemon_->listen();
    auto o = opts();
    o.wait_for_daemon = true;  // the subscribe waits for the welcome
    thingmux::client c(o);
    c.start_consuming();
    collector<thingmux::result> done;
    c.connect([&](const thingmux::result& r) { done.add(r); });
    std::thread fake([&] {
        ASSERT_TRUE(daemon_->handshake());
        const auto s = daemon_->receive_as<ipc::subscribe>();
        ASSERT_TRUE(s);
        daemon_->send(ipc::subscribe_result{s->request_id, {ok_result(0)}});
        daemon_->send(ipc::message{"dt/x", "driven", 0, false, {}});
    });
    c.subscribe("dt/#", 0, nullptr, [&](const thingmux::result& r) { done.add(r); });
    const auto m = c.consume(generous);
    fake.join();
    ASSERT_TRUE(m);
    EXPECT_EQ(m->payload, "driven");
    EXPECT_EQ(done.size(), 2U);
    c.close();
    EXPECT_FALSE(c.consume(0ms));
}
