#include "tests/bench/bench_clients.hpp"

#include "daemon/uplink/uplink.hpp"

#include <thingmux/client.hpp>

#include <boost/asio/posix/stream_descriptor.hpp>

#include <algorithm>
#include <utility>

namespace thingmux::bench {

namespace asio = boost::asio;

const char* to_string(path p) noexcept {
    switch (p) {
    case path::direct: return "direct";
    case path::thingmux: return "thingmux";
    case path::mqtt_face: return "mqtt-face";
    case path::bridge: return "bridge";
    }
    return "unknown";
}

const std::string& thing_of(path p, const endpoints& e) noexcept {
    switch (p) {
    case path::direct: return e.direct_thing;
    case path::bridge: return e.bridge_thing;
    case path::thingmux:
    case path::mqtt_face: break;
    }
    return e.thing;
}

namespace {

status failure(std::string why) { return {.ok = false, .error = std::move(why)}; }

// direct, mqtt-face, bridge and the observer: one uplink (mTLS; plain TCP to the local
// mosquitto; thingmuxd's MQTT socket).
class mqtt_client final : public client {
public:
    mqtt_client(asio::io_context& io, uplink::uplink_config cfg) : link_(uplink::uplink::create(io, std::move(cfg))) {}

    ~mqtt_client() override { stop(); }

    void start(done_fn ready) override {
        link_->on_message([this](const mqtt::publish& m, std::optional<mqtt::inbound_ticket> ticket) {
            if (on_message) on_message(m.topic, m.payload);
            if (ticket) link_->acknowledge(*ticket);
        });
        link_->on_state([this, ready = std::move(ready)](const uplink::state_event& ev) {
            if (ev.state == uplink::link_state::connected && !started_) {
                started_ = true;
                ready({});
            } else if (ev.fatal && !started_) {
                started_ = true;
                ready(failure(ev.reason));
            }
        });
        link_->start();
    }

    void publish(const std::string& topic, const std::string& payload, int qos, done_fn done) override {
        link_->publish({.topic = topic, .payload = payload, .qos = static_cast<mqtt::qos>(qos)},
                       [done = std::move(done)](const mqtt::action::publish_done& d) {
                           if (d.error != mqtt::local_error::none) return done(failure(mqtt::to_string(d.error)));
                           if (d.reason_code >= 0x80) return done(failure(mqtt::reason_string(d.reason_code)));
                           done({});
                       });
    }

    void subscribe(const std::string& filter, int qos, done_fn done) override {
        link_->subscribe({{.filter = filter, .max_qos = static_cast<mqtt::qos>(qos)}},
                         [done = std::move(done), filter](const std::vector<std::uint8_t>& codes) {
                             if (codes.empty() || codes.front() >= 0x80)
                                 return done(failure("subscribe to '" + filter + "' refused"));
                             done({});
                         });
    }

    void stop() override {
        if (stopped_) return;
        stopped_ = true;
        link_->on_message({});
        link_->on_state({});
        link_->stop();
    }

private:
    std::shared_ptr<uplink::uplink> link_;
    bool started_ = false;
    bool stopped_ = false;
};

// thingmux: a libthingmux client driven through its epoll descriptor on the io_context.
class library_client final : public client {
public:
    library_client(asio::io_context& io, const endpoints& e, unsigned index) : fd_(io) {
        thingmux::options opts;
        opts.socket_path = e.socket;
        opts.app_name = "thingmux-bench-" + std::to_string(index);
        opts.reconnect = false;
        // The driver keeps its own window; the library must hold at least that many requests.
        opts.max_backlog = 65536;
        opts.max_backlog_bytes = 1024UL * 1024 * 1024;
        client_ = std::make_unique<thingmux::client>(opts);
        fd_.assign(client_->fd());
    }

    ~library_client() override {
        stop();
        fd_.release();  // the library owns the descriptor
    }

    void start(done_fn ready) override {
        client_->on_state([this, ready](const thingmux::state& s) {
            if (started_) return;
            if (s.uplink == thingmux::uplink_state::connected) {
                started_ = true;
                ready({});
            } else if (s.uplink_fatal) {
                started_ = true;
                ready(failure("the daemon's uplink failed: " + s.uplink_reason));
            }
        });
        client_->connect([this, ready](const thingmux::result& r) {
            if (!r && !started_) {
                started_ = true;
                ready(failure(r.message + " (" + thingmux::to_string(r.code) + ")"));
            }
        });
        wait();
    }

    void publish(const std::string& topic, const std::string& payload, int qos, done_fn done) override {
        client_->publish({.topic = topic, .payload = payload, .qos = qos}, [done = std::move(done)](const thingmux::result& r) {
            if (!r) return done(failure(std::string(thingmux::to_string(r.code)) + ": " + r.message));
            done({});
        });
    }

    void subscribe(const std::string& filter, int qos, done_fn done) override {
        client_->subscribe(
            filter, qos,
            [this](const thingmux::message& m) {
                if (on_message) on_message(m.topic, m.payload);
            },
            [done = std::move(done)](const thingmux::result& r) {
                if (!r) return done(failure(std::string(thingmux::to_string(r.code)) + ": " + r.message));
                done({});
            });
    }

    void stop() override {
        if (stopped_) return;
        stopped_ = true;
        boost::system::error_code ignored;
        fd_.cancel(ignored);
        client_->close();
    }

private:
    void wait() {
        fd_.async_wait(asio::posix::stream_descriptor::wait_read, [this](boost::system::error_code ec) {
            if (ec || stopped_) return;
            client_->process();
            wait();
        });
    }

    std::unique_ptr<thingmux::client> client_;
    asio::posix::stream_descriptor fd_;
    bool started_ = false;
    bool stopped_ = false;
};

// An app's plain MQTT session to a broker on this machine (mqtt-face, bridge): only the socket
// differs, so the two paths compare the brokers, not the clients.
uplink::uplink_config local_app_config(const endpoints& e, unsigned index, uplink::transport_kind transport,
                                       std::string host, std::uint16_t port) {
    uplink::uplink_config cfg;
    cfg.thing_name = "bench-app-" + std::to_string(index);
    cfg.host = std::move(host);
    cfg.port = port;
    cfg.transport = transport;
    cfg.session.client_id = cfg.thing_name;
    cfg.session.clean_start = true;
    cfg.session.session_expiry = 0;
    cfg.session.max_inflight = e.inflight;
    return cfg;
}

uplink::uplink_config upstream_config(const endpoints& e, std::string client_id, std::string cert, std::string key) {
    uplink::uplink_config cfg;
    cfg.thing_name = client_id;
    cfg.host = e.host;
    cfg.port = e.port;
    cfg.tls = {.ca_file = e.ca, .cert_file = std::move(cert), .key_file = std::move(key)};
    cfg.session.client_id = std::move(client_id);
    cfg.session.clean_start = true;  // nothing from an earlier run may arrive in this one
    cfg.session.session_expiry = 0;
    cfg.session.max_inflight = e.inflight;
    return cfg;
}

}  // namespace

std::unique_ptr<client> make_client(asio::io_context& io, path p, const endpoints& e, unsigned index) {
    switch (p) {
    case path::direct:
        return std::make_unique<mqtt_client>(io, upstream_config(e, e.direct_thing, e.direct_cert, e.direct_key));
    case path::thingmux:
        return std::make_unique<library_client>(io, e, index);
    case path::mqtt_face:
        return std::make_unique<mqtt_client>(
            io, local_app_config(e, index, uplink::transport_kind::unix_socket, e.mqtt_socket, 0));
    case path::bridge:
        return std::make_unique<mqtt_client>(
            io, local_app_config(e, index, uplink::transport_kind::tcp, e.local_host, e.local_port));
    }
    return nullptr;
}

std::unique_ptr<client> make_observer(asio::io_context& io, const endpoints& e) {
    return std::make_unique<mqtt_client>(io, upstream_config(e, "bench-observer", e.observer_cert, e.observer_key));
}

}  // namespace thingmux::bench
