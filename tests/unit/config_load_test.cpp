// Configuration loading (docs/config.md): the shipped example, defaults, and one test per class
// of mistake with the exact file:line:column it is reported at.
#include "config/config.hpp"
#include "config/values.hpp"
#include "tests/unit/config_test_support.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace {

using namespace thingmux::config;
using namespace std::chrono_literals;

using namespace thingmux::config::test;

TEST(ConfigLoad, ShippedExampleLoads) {
    const auto r = parse(read_text(THINGMUX_EXAMPLE_CONFIG), "thingmux.example.yaml");
    ASSERT_TRUE(r.ok()) << all(r);
    EXPECT_TRUE(r.diagnostics.empty()) << all(r);
    const auto& c = *r.config;
    ASSERT_EQ(c.things.size(), 1U);
    const auto& t = c.things[0];
    EXPECT_EQ(t.name, "gateway-01");
    EXPECT_EQ(t.client_id, "gateway-01");
    EXPECT_EQ(t.port, 8883);
    EXPECT_TRUE(t.alpn.empty());
    EXPECT_EQ(t.cert, "/etc/thingmux/gateway-01.cert.pem");
    EXPECT_EQ(t.limits.inflight, 90);
    ASSERT_EQ(c.apps.size(), 2U);
    EXPECT_EQ(c.apps[0].name, "sensors");
    EXPECT_EQ(c.apps[0].match.unit, "sensor.service");
    EXPECT_EQ(c.apps[0].receive, c.apps[0].subscribe);
    EXPECT_EQ(c.apps[1].match.user, "admin");
    EXPECT_EQ(c.apps[1].match.group, "iot");
    EXPECT_EQ(c.ipc.mode, 0660U);
    EXPECT_TRUE(c.mqtt.enabled);
    EXPECT_EQ(c.mqtt.socket, "/run/thingmux/mqtt.sock");
    EXPECT_EQ(c.mqtt.thing, "gateway-01");
    EXPECT_EQ(c.spool.max_messages, 100000U);
}

TEST(ConfigLoad, Defaults) {
    const auto r = parse(minimal, "t.yaml");
    ASSERT_TRUE(r.ok()) << all(r);
    const auto& c = *r.config;
    const auto& t = c.things.at(0);
    EXPECT_EQ(t.where, (source_location{2, 5}));
    EXPECT_EQ(t.fields.at("cert"), (source_location{5, 11}));
    EXPECT_EQ(t.port, 8883);
    EXPECT_EQ(t.client_id, "gw");
    EXPECT_EQ(t.protocol, protocol_version::mqtt5);
    EXPECT_TRUE(t.alpn.empty());
    EXPECT_EQ(t.keep_alive, 60s);
    EXPECT_EQ(t.session_expiry, std::chrono::seconds{3600});
    EXPECT_EQ(t.backoff_base, 1s);
    EXPECT_EQ(t.backoff_cap, 2min);
    EXPECT_EQ(t.connect_timeout, 10s);
    EXPECT_EQ(t.limits.max_payload, 128U * 1024);
    EXPECT_EQ(t.limits.max_topic_length, 256U);
    EXPECT_EQ(t.limits.max_topic_levels, 8U);
    EXPECT_EQ(t.limits.qos2, qos2_policy::refuse);
    EXPECT_EQ(t.limits.retain, retain_policy::allow);
    EXPECT_EQ(t.limits.publishes_per_second, 100U);
    EXPECT_EQ(t.limits.bytes_per_second, 512U * 1024);
    EXPECT_EQ(t.limits.subscriptions, 50U);
    EXPECT_EQ(t.limits.subscriptions_per_second, 50U);
    EXPECT_EQ(t.limits.inflight, 90);
    EXPECT_EQ(t.limits.filters_per_subscribe, 8U);
    EXPECT_EQ(t.limits.overlap, overlap_copies::per_subscription);
    EXPECT_EQ(t.limits.retained_messages, 1000U);
    EXPECT_EQ(t.limits.retained_bytes, 1024U * 1024);
    EXPECT_TRUE(c.apps.empty());
    EXPECT_EQ(c.ipc.socket, "/run/thingmux/thingmux.sock");
    EXPECT_EQ(c.ipc.mode, 0660U);
    EXPECT_EQ(c.ipc.group, "thingmux");
    EXPECT_EQ(c.ipc.max_clients, 1024U);
    EXPECT_EQ(c.ipc.client_queue, 8U * 1024 * 1024);
    EXPECT_EQ(c.ipc.client_queue_total, 64U * 1024 * 1024);
    EXPECT_EQ(c.ipc.hello_timeout, 10s);
    EXPECT_EQ(c.spool.path, "/var/lib/thingmux/spool.db");
    EXPECT_EQ(c.spool.max_bytes, 64U * 1024 * 1024);
    EXPECT_EQ(c.spool.overflow, spool_overflow::reject);
    EXPECT_EQ(c.spool.qos0, offline_qos0::drop);
    EXPECT_EQ(c.log.level, log_level::info);
    EXPECT_EQ(c.log.target, log_target::automatic);
}

TEST(ConfigLoad, ValuesAndUnlimited) {
    const auto r = parse(minimal + "    port: 443\n"
                                   "    client_id: gw-main\n"
                                   "    protocol: mqtt311\n"
                                   "    keep_alive: 2m\n"
                                   "    backoff: {base: 500ms, cap: 1h}\n"
                                   "    limits:\n"
                                   "      max_payload: unlimited\n"
                                   "      max_topic_levels: unlimited\n"
                                   "      publishes_per_second: unlimited\n"
                                   "      subscriptions_per_second: unlimited\n"
                                   "      bytes_per_second: 8 MiB\n"
                                   "      qos2: downgrade\n"
                                   "      inflight: 500\n"
                                   "      overlap_copies: one\n"
                                   "      retained_messages: 0\n"
                                   "      retained_bytes: 64KiB\n"
                                   "  - name: other\n"
                                   "    endpoint: 10.0.0.1\n"
                                   "    port: 443\n"
                                   "    alpn: []\n"
                                   "    session_expiry: unlimited\n"
                                   "    ca: /a\n    cert: /b\n    key: /c\n"
                                   "ipc: {client_queue: 1MiB, client_queue_total: 2MiB}\n"
                                   "log: {level: debug, target: stderr}\n",
                         "t.yaml");
    ASSERT_TRUE(r.ok()) << all(r);
    const auto& t = r.config->things.at(0);
    EXPECT_EQ(t.alpn, std::vector<std::string>{"x-amzn-mqtt-ca"});
    EXPECT_EQ(t.client_id, "gw-main");
    EXPECT_EQ(t.protocol, protocol_version::mqtt311);
    EXPECT_EQ(t.keep_alive, 120s);
    EXPECT_EQ(t.backoff_base, 500ms);
    EXPECT_EQ(t.backoff_cap, 1h);
    EXPECT_EQ(t.limits.max_payload, std::nullopt);
    EXPECT_EQ(t.limits.max_topic_levels, std::nullopt);
    EXPECT_EQ(t.limits.publishes_per_second, std::nullopt);
    EXPECT_EQ(t.limits.subscriptions_per_second, std::nullopt);
    EXPECT_EQ(t.limits.bytes_per_second, 8U * 1024 * 1024);
    EXPECT_EQ(t.limits.qos2, qos2_policy::downgrade);
    EXPECT_EQ(t.limits.inflight, 500);  // not an AWS endpoint: no warning
    EXPECT_EQ(t.limits.overlap, overlap_copies::one);
    EXPECT_EQ(t.limits.retained_messages, 0U);
    EXPECT_EQ(t.limits.retained_bytes, 64U * 1024);
    const auto& o = r.config->things.at(1);
    EXPECT_TRUE(o.alpn.empty());
    EXPECT_EQ(o.session_expiry, std::nullopt);
    EXPECT_EQ(r.config->log.level, log_level::debug);
    EXPECT_EQ(r.config->log.target, log_target::stderr_stream);
    EXPECT_EQ(r.config->ipc.client_queue, 1024U * 1024);
    EXPECT_EQ(r.config->ipc.client_queue_total, 2U * 1024 * 1024);
    EXPECT_TRUE(r.diagnostics.empty()) << all(r);
}

// transport: websocket: port 443 unless written, and no ALPN offered there (AWS IoT Core tells
// WebSocket by the HTTP upgrade).
TEST(ConfigLoad, WebSocketTransportDefaultsToPort443WithoutAlpn) {
    auto r = parse(minimal + "    transport: websocket\n", "t.yaml");
    ASSERT_TRUE(r.ok()) << all(r);
    const auto& t = r.config->things.at(0);
    EXPECT_EQ(t.transport, transport_mode::websocket);
    EXPECT_EQ(t.port, 443);
    EXPECT_TRUE(t.alpn.empty());
    EXPECT_STREQ(to_string(t.transport), "websocket");

    r = parse(minimal + "    transport: websocket\n    port: 8443\n", "t.yaml");
    ASSERT_TRUE(r.ok()) << all(r);
    EXPECT_EQ(r.config->things.at(0).port, 8443);

    r = parse(minimal, "t.yaml");
    ASSERT_TRUE(r.ok()) << all(r);
    EXPECT_EQ(r.config->things.at(0).transport, transport_mode::mqtt);
    EXPECT_EQ(r.config->things.at(0).port, 8883);
}

TEST(ConfigLoad, UnknownTransportIsAnError) {
    const auto r = parse(minimal + "    transport: wss\n", "t.yaml");
    EXPECT_FALSE(r.ok());
    EXPECT_NE(all(r).find("things[0].transport"), std::string::npos) << all(r);
}

TEST(ConfigLoad, WrongType) {
    expect_error(parse(minimal + "    port: [1]\n", "t.yaml"), "things[0].port", 7, 11, "expected a whole number, got a list");
}

TEST(ConfigLoad, UnknownKeyWithSuggestion) {
    const auto r = parse(minimal + "    keepalive: 60s\n", "t.yaml");
    expect_error(r, "things[0].keepalive", 7, 5, "unknown key 'keepalive'", "did you mean 'keep_alive'?");
    EXPECT_EQ(to_string(r.diagnostics.at(0)),
              "t.yaml:7:5: things[0].keepalive: unknown key 'keepalive' (did you mean 'keep_alive'?)");
}

TEST(ConfigLoad, UnknownTopLevelKey) {
    expect_error(parse(minimal + "loggin: {level: info}\n", "t.yaml"), "loggin", 7, 1, "unknown key", "did you mean 'log'?");
}

TEST(ConfigLoad, MissingRequired) {
    expect_error(parse("things:\n  - name: gw\n    ca: /a\n    cert: /b\n    key: /c\n", "t.yaml"), "things[0].endpoint", 2, 5,
                 "missing required key 'endpoint'");
    expect_error(parse("log: {level: info}\n", "t.yaml"), "things", 1, 1, "missing required key 'things'");
    expect_error(parse("things: []\n", "t.yaml"), "things", 1, 1, "at least one Thing");
    expect_error(parse("", "t.yaml"), "", 1, 1, "empty");
}

TEST(ConfigLoad, OutOfRange) {
    expect_error(parse(minimal + "    port: 70000\n", "t.yaml"), "things[0].port", 7, 11, "out of range: 70000", "1..65535");
    expect_error(parse(minimal + "    port: -1\n", "t.yaml"), "things[0].port", 7, 11, "out of range: -1");
    expect_error(parse(minimal + "    backoff: {base: 10s, cap: 2s}\n", "t.yaml"), "things[0].backoff.cap", 7, 31, "larger than cap");
    expect_error(parse(minimal + "    backoff: {cap: 2h}\n", "t.yaml"), "things[0].backoff.cap", 7, 20, "out of range: 2h", "1ms..1h");
    expect_error(parse(minimal + "ipc: {client_queue: unlimited}\n", "t.yaml"), "ipc.client_queue", 7, 21, "'unlimited' is not allowed");
    expect_error(parse(minimal + "ipc: {client_queue_total: 64KiB}\n", "t.yaml"), "ipc.client_queue_total", 7, 27,
                 "out of range: 64KiB");
    expect_error(parse(minimal + "    limits: {subscriptions_per_second: 0}\n", "t.yaml"),
                 "things[0].limits.subscriptions_per_second", 7, 40, "out of range: 0");
    expect_error(parse(minimal + "    client_id: " + std::string(129, 'c') + "\n", "t.yaml"), "things[0].client_id", 7, 16,
                 "129 bytes", "128");
}

TEST(ConfigLoad, AllClientQueuesTogetherHoldAtLeastOneClientQueue) {
    // Written total too small: reported at the total.
    expect_error(parse(minimal + "ipc: {client_queue: 8MiB, client_queue_total: 4MiB}\n", "t.yaml"), "ipc.client_queue_total", 7,
                 47, "must hold at least one client's queue", "raise ipc.client_queue_total or lower ipc.client_queue");
    // Only the per-client queue written, above the default total: reported there.
    expect_error(parse(minimal + "ipc: {client_queue: 128MiB}\n", "t.yaml"), "ipc.client_queue", 7, 21,
                 "must hold at least one client's queue");
    const auto r = parse(minimal + "ipc: {client_queue: 128MiB, client_queue_total: 128MiB}\n", "t.yaml");
    EXPECT_TRUE(r.ok()) << all(r);
}

TEST(ConfigLoad, KeepAliveOutsideAwsRangeIsAWarning) {
    const auto r = parse(minimal + "    keep_alive: 10\n", "t.yaml");
    ASSERT_TRUE(r.ok()) << all(r);
    ASSERT_EQ(r.diagnostics.size(), 1U);
    EXPECT_TRUE(r.diagnostics[0].warning);
    EXPECT_EQ(to_string(r.diagnostics[0]),
              "t.yaml:7:17: warning: things[0].keep_alive: AWS IoT Core clamps keep-alive to 30s..1200s "
              "(fine for other brokers; AWS IoT Core will use the nearest bound)");
    EXPECT_EQ(r.config->things[0].keep_alive, 10s);
    expect_error(parse(minimal + "    keep_alive: 1500ms\n", "t.yaml"), "things[0].keep_alive", 7, 17, "whole seconds");
}

TEST(ConfigLoad, BadEnum) {
    expect_error(parse(minimal + "    protocol: mqtt3.1.1\n", "t.yaml"), "things[0].protocol", 7, 15,
                 "'mqtt3.1.1' is not one of mqtt5, mqtt311");
    expect_error(parse(minimal + "log:\n  level: warning\n", "t.yaml"), "log.level", 8, 10, "not one of", "did you mean 'warn'?");
    expect_error(parse(minimal + "    limits: {overlap_copies: once}\n", "t.yaml"), "things[0].limits.overlap_copies",
                 7, 30, "'once' is not one of per_subscription, one");
    expect_error(parse(minimal + "    limits: {retained_messages: unlimited}\n", "t.yaml"),
                 "things[0].limits.retained_messages", 7, 33, "'unlimited' is not allowed here");
}

TEST(ConfigLoad, DuplicateNames) {
    const auto dup = minimal + "  - name: gw\n    endpoint: b.example.com\n    ca: /a\n    cert: /b\n    key: /c\n";
    expect_error(parse(dup, "t.yaml"), "things[1].name", 7, 11, "duplicate Thing name 'gw'", "line 2");
    const auto dup_id = minimal + "  - name: gw2\n    client_id: gw\n    endpoint: b.example.com\n    ca: /a\n    cert: /b\n    key: /c\n";
    expect_error(parse(dup_id, "t.yaml"), "things[1].client_id", 8, 16, "duplicate client id 'gw'");
    const auto dup_rule = minimal + "apps:\n"
                                    "  - name: a\n    match: {uid: 1}\n    publish: [x]\n"
                                    "  - name: a\n    match: {uid: 2}\n    publish: [y]\n";
    expect_error(parse(dup_rule, "t.yaml"), "apps[1].name", 11, 11, "duplicate rule name 'a'");
    expect_error(parse(minimal + "    port: 1\n    port: 2\n", "t.yaml"), "things[0].port", 8, 5, "given twice", "line 7");
}

TEST(ConfigLoad, BadFilters) {
    const auto app = [](const std::string& filters) {
        return parse(minimal + "apps:\n  - name: a\n    match: {uid: 1000}\n    publish: " + filters + "\n", "t.yaml");
    };
    expect_error(app("[\"ok/#\", \"a/#/b\"]"), "apps[0].publish[1]", 10, 23, "'#' must be the last level");
    expect_error(app("[\"a/b+\"]"), "apps[0].publish[0]", 10, 15, "not a valid MQTT topic filter");
    expect_error(app("[\"dt/${foo}/x\"]"), "apps[0].publish[0]", 10, 15, "unknown variable '${foo}'");
    expect_error(app("[\"dt/${thng}/x\"]"), "apps[0].publish[0]", 10, 15, "unknown variable", "did you mean '${thing}'?");
    expect_error(app("[\"dt/${thing\"]"), "apps[0].publish[0]", 10, 15, "without a closing");
    expect_error(app("[\"\"]"), "apps[0].publish[0]", 10, 15, "must not be empty");
    expect_error(app("dt/#"), "apps[0].publish", 10, 14, "expected a list");
    EXPECT_TRUE(app("[\"dt/${thing}/#\", \"$aws/things/${thing}/shadow/+\", \"u/${uid}-${user}/+/x\"]").ok());
}

TEST(ConfigLoad, AppRuleProblems) {
    const auto r = parse(minimal + "apps:\n"
                                   "  - name: a\n"         // 8
                                   "    match: {}\n"       // 9
                                   "    publish: [x]\n"    // 10
                                   "  - name: b\n"         // 11
                                   "    match: {uid: 1, usr: x}\n"  // 12
                                   "    things: [gw, gw3]\n"        // 13
                                   "    subscribe: [x]\n"           // 14
                                   "  - match: {gid: 4294967295}\n",  // 15
                         "t.yaml");
    expect_error(r, "apps[0].match", 9, 12, "at least one of unit, user, uid, group, gid");
    expect_error(r, "apps[1].match.usr", 12, 21, "unknown key", "did you mean 'user'?");
    expect_error(r, "apps[1].things[1]", 13, 18, "no Thing named 'gw3'", "did you mean 'gw'?");
    expect_error(r, "apps[2].name", 15, 5, "missing required key 'name'");
    expect_error(r, "apps[2].match.gid", 15, 18, "out of range");
}

// docs/config.md "admin": an admin-only rule is valid and grants something (no warning); the
// value must be a boolean, refused with file:line:col.
TEST(ConfigLoad, AdminGrant) {
    const auto ok = parse(minimal + "apps:\n"
                                    "  - name: ops\n"              // 8
                                    "    match: {group: ops}\n"    // 9
                                    "    admin: true\n"            // 10
                                    "  - name: sensor\n"           // 11
                                    "    match: {uid: 1000}\n"     // 12
                                    "    publish: [x]\n"           // 13
                                    "    admin: false\n",          // 14
                          "t.yaml");
    ASSERT_TRUE(ok.ok()) << all(ok);
    EXPECT_TRUE(ok.diagnostics.empty()) << all(ok);
    ASSERT_EQ(ok.config->apps.size(), 2U);
    EXPECT_TRUE(ok.config->apps[0].admin);
    EXPECT_TRUE(ok.config->apps[0].publish.empty());
    EXPECT_FALSE(ok.config->apps[1].admin);

    expect_error(parse(minimal + "apps:\n  - name: ops\n    match: {uid: 1}\n    admin: yes please\n", "t.yaml"),
                 "apps[0].admin", 10, 12, "'yes please' is not one of true, false");
    expect_error(parse(minimal + "apps:\n  - name: ops\n    match: {uid: 1}\n    admin: 1\n", "t.yaml"),
                 "apps[0].admin", 10, 12, "not one of true, false");
    expect_error(parse(minimal + "apps:\n  - name: ops\n    match: {uid: 1}\n    admin: [true]\n", "t.yaml"),
                 "apps[0].admin", 10, 12, "");

    // Without admin: and without filters the rule still grants nothing (a warning).
    const auto nothing = parse(minimal + "apps:\n  - name: idle\n    match: {uid: 1}\n", "t.yaml");
    EXPECT_TRUE(nothing.ok());
    ASSERT_EQ(nothing.diagnostics.size(), 1U) << all(nothing);
    EXPECT_TRUE(nothing.diagnostics[0].warning);
    EXPECT_NE(nothing.diagnostics[0].hint.find("admin: true"), std::string::npos);
}

TEST(ConfigLoad, BadDurationAndSize) {
    expect_error(parse(minimal + "    connect_timeout: 10 parsecs\n", "t.yaml"), "things[0].connect_timeout", 7, 22, "invalid duration");
    expect_error(parse(minimal + "    session_expiry: 1.5h\n", "t.yaml"), "things[0].session_expiry", 7, 21, "fraction");
    expect_error(parse(minimal + "    limits: {max_payload: 128KB}\n", "t.yaml"), "things[0].limits.max_payload", 7, 27,
                 "unknown size unit 'KB'", "did you mean 'KiB'");
    expect_error(parse(minimal + "    limits: {max_payload: lots}\n", "t.yaml"), "things[0].limits.max_payload", 7, 27, "not a size");
}

TEST(ConfigLoad, OtherSections) {
    const auto r = parse(minimal + "ipc:\n"
                                   "  socket: run/x.sock\n"   // 8
                                   "  mode: \"0996\"\n"       // 9
                                   "  max_clients: 0\n"       // 10
                                   "spool:\n"
                                   "  overflow: drop_oldest\n"  // 12
                                   "  max_bytes: 1KiB\n"        // 13
                                   "log: [info]\n",             // 14
                         "t.yaml");
    expect_error(r, "ipc.socket", 8, 11, "not an absolute path");
    expect_error(r, "ipc.mode", 9, 9, "not an octal file mode");
    expect_error(r, "ipc.max_clients", 10, 16, "out of range");
    expect_error(r, "spool.overflow", 12, 13, "not one of", "did you mean 'drop_oldest_qos0'?");
    expect_error(r, "spool.max_bytes", 13, 14, "out of range");
    expect_error(r, "log", 14, 6, "expected a mapping");
    const auto ok = parse(minimal + "ipc: {mode: 0600, group: \"\"}\n", "t.yaml");
    ASSERT_TRUE(ok.ok()) << all(ok);
    EXPECT_EQ(ok.config->ipc.mode, 0600U);
    EXPECT_EQ(ok.config->ipc.group, "");
}

// --- mqtt: the local MQTT broker face ---------------------------------------------------------

// Every field of the mqtt: settings, each compared on its own.
void expect_mqtt(const mqtt_settings& actual, const mqtt_settings& expected) {
    EXPECT_EQ(actual.enabled, expected.enabled);
    EXPECT_EQ(actual.socket, expected.socket);
    EXPECT_EQ(actual.mode, expected.mode);
    EXPECT_EQ(actual.group, expected.group);
    EXPECT_EQ(actual.max_clients, expected.max_clients);
    EXPECT_EQ(actual.client_queue, expected.client_queue);
    EXPECT_EQ(actual.max_packet, expected.max_packet);
    EXPECT_EQ(actual.receive_maximum, expected.receive_maximum);
    EXPECT_EQ(actual.max_inflight, expected.max_inflight);
    EXPECT_EQ(actual.topic_aliases, expected.topic_aliases);
    EXPECT_EQ(actual.max_keep_alive, expected.max_keep_alive);
    EXPECT_EQ(actual.connect_timeout, expected.connect_timeout);
    EXPECT_EQ(actual.thing, expected.thing);
}

// The defaults as docs/config.md lists them, written out, give what writing nothing gives.
TEST(ConfigLoadMqtt, Defaults) {
    const auto none = parse(minimal, "t.yaml");
    ASSERT_TRUE(none.ok()) << all(none);
    const auto written = parse(minimal +
                                   "mqtt: {enabled: true, socket: /run/thingmux/mqtt.sock, mode: \"0660\", group: thingmux,\n"
                                   "       max_clients: 1024, client_queue: 8MiB, max_packet: 266240, receive_maximum: 100,\n"
                                   "       max_inflight: 100, topic_aliases: 32, max_keep_alive: 0, connect_timeout: 10s,\n"
                                   "       thing: gw}\n",
                               "t.yaml");
    ASSERT_TRUE(written.ok()) << all(written);
    expect_mqtt(none.config->mqtt, written.config->mqtt);
    // An empty section is the defaults too.
    const auto empty = parse(minimal + "mqtt:\n", "t.yaml");
    ASSERT_TRUE(empty.ok()) << all(empty);
    EXPECT_EQ(empty.config->mqtt.socket, "/run/thingmux/mqtt.sock");
    EXPECT_EQ(empty.config->mqtt.thing, "gw");
}

TEST(ConfigLoadMqtt, EveryKey) {
    const auto r = parse(minimal + "  - name: second\n"
                                   "    endpoint: 10.0.0.1\n"
                                   "    ca: /a\n    cert: /b\n    key: /c\n"
                                   "mqtt:\n"
                                   "  enabled: false\n"
                                   "  socket: /run/mq/broker.sock\n"
                                   "  mode: \"0600\"\n"
                                   "  group: \"\"\n"
                                   "  max_clients: 7\n"
                                   "  client_queue: 64KiB\n"
                                   "  max_packet: 1KiB\n"
                                   "  receive_maximum: 65535\n"
                                   "  max_inflight: 1\n"
                                   "  topic_aliases: 0\n"
                                   "  max_keep_alive: 2m\n"
                                   "  connect_timeout: 100ms\n"
                                   "  thing: second\n",
                         "t.yaml");
    ASSERT_TRUE(r.ok()) << all(r);
    EXPECT_TRUE(r.diagnostics.empty()) << all(r);
    expect_mqtt(r.config->mqtt, {.enabled = false,
                                 .socket = "/run/mq/broker.sock",
                                 .mode = 0600,
                                 .group = "",
                                 .max_clients = 7,
                                 .client_queue = 64 * 1024,
                                 .max_packet = 1024,
                                 .receive_maximum = 65535,
                                 .max_inflight = 1,
                                 .topic_aliases = 0,
                                 .max_keep_alive = 120s,
                                 .connect_timeout = 100ms,
                                 .thing = "second"});
    const auto largest = parse(minimal + "mqtt: {max_packet: 268435460, max_keep_alive: 65535}\n", "t.yaml");
    ASSERT_TRUE(largest.ok()) << all(largest);
    EXPECT_EQ(largest.config->mqtt.max_packet, 268435460U);
    EXPECT_EQ(largest.config->mqtt.max_keep_alive, 65535s);
}

TEST(ConfigLoadMqtt, TcpIsOffByDefaultAndTakesLoopbackAddresses) {
    const auto none = parse(minimal, "t.yaml");
    ASSERT_TRUE(none.ok()) << all(none);
    EXPECT_TRUE(none.config->mqtt.tcp.empty());
    EXPECT_TRUE(none.config->mqtt.passwords.empty());
    const auto r =
        parse(minimal + "mqtt:\n  tcp: [\"127.0.0.1:1883\", \"127.8.9.10:2000\", \"[::1]:1883\"]\n", "t.yaml");
    ASSERT_TRUE(r.ok()) << all(r);
    const auto& tcp = r.config->mqtt.tcp;
    ASSERT_EQ(tcp.size(), 3U);
    EXPECT_EQ(tcp[0].host, "127.0.0.1");
    EXPECT_EQ(tcp[0].port, 1883);
    EXPECT_EQ(tcp[1].to_string(), "127.8.9.10:2000");
    EXPECT_EQ(tcp[2].host, "::1");
    EXPECT_EQ(tcp[2].to_string(), "[::1]:1883");
}

TEST(ConfigLoadMqtt, TcpRefusesAnythingButLoopbackAndSaysWhy) {
    const auto mqtt_tcp = [](const std::string& address) {
        return minimal + "mqtt:\n  tcp:\n    - \"" + address + "\"\n";
    };
    for (const auto* address :
         {"0.0.0.0:1883", "192.168.1.10:1883", "[::]:1883", "[fe80::1]:1883", "[::ffff:127.0.0.1]:1883"}) {
        SCOPED_TRACE(address);
        expect_error(parse(mqtt_tcp(address), "t.yaml"), "mqtt.tcp[0]", 9, 7,
                     "is not a loopback address: the MQTT face has no TLS");
    }
    expect_error(parse(mqtt_tcp("localhost:1883"), "t.yaml"), "mqtt.tcp[0]", 9, 7,
                 "not an IP address (host names are not resolved)");
    expect_error(parse(mqtt_tcp("127.0.0.1"), "t.yaml"), "mqtt.tcp[0]", 9, 7, "is not HOST:PORT");
    expect_error(parse(mqtt_tcp("::1:1883"), "t.yaml"), "mqtt.tcp[0]", 9, 7, "goes in brackets");
    expect_error(parse(mqtt_tcp("[::1]1883"), "t.yaml"), "mqtt.tcp[0]", 9, 7, "goes in brackets");
    expect_error(parse(mqtt_tcp("127.0.0.1:0"), "t.yaml"), "mqtt.tcp[0]", 9, 7, "a port is a number from 1 to 65535");
    expect_error(parse(mqtt_tcp("127.0.0.1:65536"), "t.yaml"), "mqtt.tcp[0]", 9, 7,
                 "a port is a number from 1 to 65535");
    expect_error(parse(mqtt_tcp("127.0.0.1:x"), "t.yaml"), "mqtt.tcp[0]", 9, 7, "a port is a number");
    expect_error(parse(minimal + "mqtt:\n  tcp: [\"127.0.0.1:1883\", \"127.0.0.1:1883\"]\n", "t.yaml"), "mqtt.tcp[1]",
                 8, 27, "listed twice");
    expect_error(parse(minimal + "mqtt:\n  tcp: \"127.0.0.1:1883\"\n", "t.yaml"), "mqtt.tcp", 8, 8, "expected a list");
}

TEST(ConfigLoadMqtt, PasswordsIsAnAbsolutePath) {
    const auto r = parse(minimal + "mqtt: {passwords: /etc/thingmux/mqtt.passwd}\n", "t.yaml");
    ASSERT_TRUE(r.ok()) << all(r);
    EXPECT_EQ(r.config->mqtt.passwords, "/etc/thingmux/mqtt.passwd");
    EXPECT_EQ(r.config->mqtt.passwords_where.line, 7);
    EXPECT_FALSE(parse(minimal + "mqtt: {passwords: mqtt.passwd}\n", "t.yaml").ok());
}

TEST(ConfigLoadApps, MqttUserIsAMatchKey) {
    const auto r =
        parse(minimal + "apps:\n  - name: web\n    match: {mqtt_user: dashboard}\n    publish: [\"dt/#\"]\n", "t.yaml");
    ASSERT_TRUE(r.ok()) << all(r);
    ASSERT_EQ(r.config->apps.size(), 1U);
    EXPECT_EQ(r.config->apps[0].match.mqtt_user, "dashboard");
    EXPECT_FALSE(r.config->apps[0].match.user);
}

TEST(ConfigLoadMqtt, SocketDefaultsToTheDirectoryAndAccessOfTheIpcSocket) {
    const auto moved = parse(minimal + "ipc: {socket: /srv/tm/ipc.sock}\n", "t.yaml");
    ASSERT_TRUE(moved.ok()) << all(moved);
    EXPECT_EQ(moved.config->mqtt.socket, "/srv/tm/mqtt.sock");
    const auto at_root = parse(minimal + "ipc: {socket: /ipc.sock}\n", "t.yaml");
    ASSERT_TRUE(at_root.ok()) << all(at_root);
    EXPECT_EQ(at_root.config->mqtt.socket, "/mqtt.sock");
    // Mode and group follow ipc: too, unless written.
    const auto access = parse(minimal + "ipc: {mode: \"0600\", group: \"\"}\n", "t.yaml");
    ASSERT_TRUE(access.ok()) << all(access);
    EXPECT_EQ(access.config->mqtt.mode, 0600U);
    EXPECT_EQ(access.config->mqtt.group, "");
    const auto own = parse(minimal + "ipc: {mode: \"0600\", group: \"\"}\nmqtt: {mode: \"0666\", group: mqttusers}\n", "t.yaml");
    ASSERT_TRUE(own.ok()) << all(own);
    EXPECT_EQ(own.config->mqtt.mode, 0666U);
    EXPECT_EQ(own.config->mqtt.group, "mqttusers");
    // Written, it wins; the order of the sections does not matter.
    const auto written = parse(minimal + "mqtt: {socket: /run/other/m.sock}\nipc: {socket: /srv/tm/ipc.sock}\n", "t.yaml");
    ASSERT_TRUE(written.ok()) << all(written);
    EXPECT_EQ(written.config->mqtt.socket, "/run/other/m.sock");
}

TEST(ConfigLoadMqtt, SocketMustNotBeTheIpcSocket) {
    expect_error(parse(minimal + "mqtt: {socket: /run/thingmux/thingmux.sock}\n", "t.yaml"), "mqtt.socket", 7, 16,
                 "is the IPC socket's path (ipc.socket)", "give the MQTT socket a path of its own");
    // The default clashes when ipc.socket is itself called mqtt.sock: reported where ipc.socket is.
    expect_error(parse(minimal + "ipc: {socket: /run/x/mqtt.sock}\n", "t.yaml"), "mqtt.socket", 7, 15,
                 "defaults to mqtt.sock next to ipc.socket, which is ipc.socket itself", "set mqtt.socket");
    const auto own = parse(minimal + "ipc: {socket: /run/x/mqtt.sock}\nmqtt: {socket: /run/x/broker.sock}\n", "t.yaml");
    EXPECT_TRUE(own.ok()) << all(own);
    // A face that is off uses no socket.
    const auto off = parse(minimal + "ipc: {socket: /run/x/mqtt.sock}\nmqtt: {enabled: false}\n", "t.yaml");
    EXPECT_TRUE(off.ok()) << all(off);
}

TEST(ConfigLoadMqtt, DerivedSocketPathMustFitASocketAddress) {
    // A short ipc.socket file name in a long directory: mqtt.sock next to it is longer.
    const auto ipc_in = [](std::size_t dir_bytes) { return "/" + std::string(dir_bytes - 1, 'd') + "/i"; };
    const auto fits = parse(minimal + "ipc: {socket: " + ipc_in(97) + "}\n", "t.yaml");
    ASSERT_TRUE(fits.ok()) << all(fits);
    EXPECT_EQ(fits.config->mqtt.socket.native().size(), 107U);
    expect_error(parse(minimal + "ipc: {socket: " + ipc_in(98) + "}\n", "t.yaml"), "mqtt.socket", 7, 15,
                 "defaults to mqtt.sock next to ipc.socket, 108 bytes long", "shorter than 108 bytes: set mqtt.socket");
    const auto written = parse(minimal + "ipc: {socket: " + ipc_in(98) + "}\nmqtt: {socket: /run/m.sock}\n", "t.yaml");
    EXPECT_TRUE(written.ok()) << all(written);
}

// One wrong value per key, each reported at its position with its message.
TEST(ConfigLoadMqtt, BadValues) {
    struct bad {
        std::string key;
        std::string value;
        std::string message;
        std::string hint;
    };
    const std::vector<bad> cases{
        {"enabled", "yes", "'yes' is not one of true, false", ""},
        {"enabled", "[true]", "expected one of true, false, got a list", ""},
        {"socket", "run/m.sock", "not an absolute path", "starting with '/'"},
        {"socket", "/" + std::string(107, 's'), "is 108 bytes long", "shorter than 108 bytes"},
        {"mode", "\"0999\"", "'0999' is not an octal file mode", "write it quoted"},
        {"mode", "\"10000\"", "'10000' is not an octal file mode", ""},
        {"group", "[a]", "expected a string, got a list", ""},
        {"max_clients", "0", "out of range: 0", "allowed: 1..65535"},
        {"max_clients", "65536", "out of range: 65536", "allowed: 1..65535"},
        {"client_queue", "1KiB", "out of range: 1KiB", "allowed: 65536..1073741824 bytes"},
        {"client_queue", "unlimited", "'unlimited' is not allowed", "every client-controlled resource needs a limit"},
        {"client_queue", "8MB", "unknown size unit 'MB'", "did you mean 'MiB'"},
        {"max_packet", "1023", "out of range: 1023", "allowed: 1024..268435460 bytes"},
        {"max_packet", "268435461", "out of range: 268435461", "allowed: 1024..268435460 bytes"},
        {"max_packet", "unlimited", "'unlimited' is not allowed", ""},
        {"receive_maximum", "0", "out of range: 0", "allowed: 1..65535"},
        {"receive_maximum", "65536", "out of range: 65536", "allowed: 1..65535"},
        {"max_inflight", "0", "out of range: 0", "allowed: 1..65535"},
        {"max_inflight", "65536", "out of range: 65536", "allowed: 1..65535"},
        {"topic_aliases", "65536", "out of range: 65536", "allowed: 0..65535"},
        {"topic_aliases", "-1", "out of range: -1", "allowed: 0..65535"},
        {"max_keep_alive", "65536", "out of range: 65536", "allowed: 0s..65535s"},
        {"max_keep_alive", "1500ms", "must be whole seconds", "MQTT counts this in seconds"},
        {"connect_timeout", "50ms", "out of range: 50ms", "allowed: 100ms..10m"},
        {"connect_timeout", "soon", "invalid duration", ""},
        {"thing", "gx", "no Thing named 'gx'", "did you mean 'gw'?"},
        {"thing", "\"\"", "must not be empty", ""},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.key + ": " + c.value);
        const auto r = parse(minimal + "mqtt: {" + c.key + ": " + c.value + "}\n", "t.yaml");
        expect_error(r, "mqtt." + c.key, 7, static_cast<int>(std::string("mqtt: {").size() + c.key.size() + 3), c.message,
                     c.hint);
        EXPECT_EQ(error_count(r), 1U);
    }
}

TEST(ConfigLoadMqtt, UnknownKeysAndWrongShape) {
    expect_error(parse(minimal + "mqtt: {max_client: 5}\n", "t.yaml"), "mqtt.max_client", 7, 8, "unknown key 'max_client'",
                 "did you mean 'max_clients'?");
    expect_error(parse(minimal + "mqtt: {tls: true}\n", "t.yaml"), "mqtt.tls", 7, 8, "unknown key 'tls'");
    expect_error(parse(minimal + "mqtt: [socket]\n", "t.yaml"), "mqtt", 7, 7, "expected a mapping");
    expect_error(parse(minimal + "mqt: {}\n", "t.yaml"), "mqt", 7, 1, "unknown key 'mqt'", "did you mean 'mqtt'?");
}

TEST(ConfigLoadMqtt, ModeOnlyTheOwnerCannotUseIsAWarning) {
    const auto r = parse(minimal + "mqtt: {mode: \"0440\"}\n", "t.yaml");
    ASSERT_TRUE(r.ok()) << all(r);
    ASSERT_EQ(r.diagnostics.size(), 1U) << all(r);
    EXPECT_TRUE(r.diagnostics[0].warning);
    EXPECT_EQ(r.diagnostics[0].path, "mqtt.mode");
    EXPECT_EQ(r.diagnostics[0].message, "the owner cannot read and write the socket");
    EXPECT_EQ(r.config->mqtt.mode, 0440U);
}

TEST(ConfigLoad, YamlSyntaxError) {
    const auto r = parse("things:\n  - name: gw\n    endpoint: [a, b\n", "t.yaml");
    ASSERT_FALSE(r.ok());
    ASSERT_EQ(r.diagnostics.size(), 1U);
    const auto& d = r.diagnostics[0];
    EXPECT_EQ(d.path, "");
    EXPECT_EQ(d.line, 4);
    EXPECT_EQ(d.column, 1);
    EXPECT_NE(d.message.find("YAML syntax error"), std::string::npos) << d.message;
    const auto tab = parse("things:\n  - name: gw\n\t endpoint: x\n", "t.yaml");
    ASSERT_EQ(tab.diagnostics.size(), 1U) << all(tab);
    EXPECT_EQ(tab.diagnostics[0].line, 3);
    const auto two = parse(minimal + "---\nthings: []\n", "t.yaml");
    expect_error(two, "", 7, 1, "more than one YAML document");  // at the "---"
}

TEST(ConfigLoad, ControlCharactersAndInvalidUtf8AreRefused) {
    // yaml-cpp loops forever on some of these (fuzz finding), so they never reach it.
    static constexpr char with_nul[] = "    port: 1\0\0\n";
    const auto nul = parse(minimal + std::string(with_nul, sizeof with_nul - 1), "t.yaml");
    ASSERT_EQ(nul.diagnostics.size(), 1U);
    EXPECT_EQ(to_string(nul.diagnostics[0]),
              "t.yaml:7:12: the file contains control character 0x00 (a configuration file is UTF-8 text; is this the right file?)");
    const auto bad = parse("things:\n  - name: \xfd\n", "t.yaml");
    ASSERT_EQ(bad.diagnostics.size(), 1U);
    EXPECT_EQ(bad.diagnostics[0].line, 2);
    EXPECT_EQ(bad.diagnostics[0].column, 11);
    EXPECT_TRUE(parse(minimal + "    client_id: \"gw-\xc3\xa9\"\r\n", "t.yaml").ok());
}

TEST(ConfigLoad, EveryMistakeIsReportedAtOnce) {
    const auto r = parse("things:\n"
                         "  - name: gw 1\n"                     // 2: bad name
                         "    endpoint: mqtts://x.example.com\n"  // 3: scheme
                         "    port: http\n"                     // 4: not a number
                         "    cert: relative.pem\n"             // 5: not absolute
                         "    key: /k\n"
                         "    limts: {}\n"                      // 7: unknown key
                         "apps:\n"
                         "  - name: x\n"
                         "    match: {unit: a.service}\n"
                         "    subscribe: [\"${nope}\"]\n"       // 11
                         "log: {level: loud}\n",                // 12
                         "t.yaml");
    EXPECT_FALSE(r.ok());
    const std::vector<std::string> expected{"things[0].name", "things[0].endpoint", "things[0].port", "things[0].cert",
                                            "things[0].limts", "things[0].ca", "apps[0].subscribe[0]", "log.level"};
    for (const auto& p : expected) EXPECT_NE(find(r, p), nullptr) << p << "\n" << all(r);
    EXPECT_EQ(error_count(r), expected.size()) << all(r);
    // Sorted by position.
    EXPECT_TRUE(std::is_sorted(r.diagnostics.begin(), r.diagnostics.end(), [](const diagnostic& a, const diagnostic& b) {
        return std::pair{a.line, a.column} < std::pair{b.line, b.column};
    }));
}

TEST(ConfigLoad, DiagnosticToString) {
    EXPECT_EQ(to_string(diagnostic{"/etc/thingmux/thingmux.yaml", 7, 11, "things[0].cert", "file /etc/x.pem does not exist", "check", false}),
              "/etc/thingmux/thingmux.yaml:7:11: things[0].cert: file /etc/x.pem does not exist (check)");
    EXPECT_EQ(to_string(diagnostic{"f", 0, 0, "", "cannot open", "", false}), "f: cannot open");
    EXPECT_EQ(to_string(diagnostic{"f", 3, 0, "", "m", "h", true}), "f:3: warning: m (h)");
}

TEST(ConfigValues, DurationsAndSizes) {
    using detail::parse_duration;
    using detail::parse_size;
    EXPECT_EQ(parse_duration("500ms").value, 500ms);
    EXPECT_EQ(parse_duration("60").value, 60s);
    EXPECT_EQ(parse_duration("2m").value, 2min);
    EXPECT_EQ(parse_duration("1h30m").value, 90min);
    EXPECT_EQ(parse_duration("7d").value, std::chrono::hours{168});
    for (const auto* bad : {"", "-1s", "1.5s", "10 parsecs", "s", "1y", "99999999999999999999h", "10s5"}) {
        EXPECT_FALSE(parse_duration(bad).value) << bad;
    }
    EXPECT_EQ(parse_size("100").value, 100U);
    EXPECT_EQ(parse_size("512KiB").value, 512U * 1024);
    EXPECT_EQ(parse_size("8 MiB").value, 8U * 1024 * 1024);
    EXPECT_EQ(parse_size("1GiB").value, 1024U * 1024 * 1024);
    EXPECT_EQ(parse_size("7B").value, 7U);
    for (const auto* bad : {"", "-1", "1.5MiB", "1KB", "1k", "x", "99999999999999999999GiB"}) {
        EXPECT_FALSE(parse_size(bad).value) << bad;
    }
    EXPECT_EQ(detail::edit_distance("keepalive", "keep_alive"), 1U);
}

// --- file checks (load_file / check_files) ---

class ConfigFiles : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/thingmux-config-test-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        for (const auto* name : {"ca.pem", "cert.pem", "key.pem"}) std::ofstream(dir_ / name) << "x\n";
        std::filesystem::permissions(dir_ / "key.pem", std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    std::filesystem::path write_config(const std::string& ca, const std::string& cert, const std::string& key) {
        const auto p = dir_ / "thingmux.yaml";
        std::ofstream(p) << "things:\n  - name: gw\n    endpoint: broker.example.com\n    ca: " << ca << "\n    cert: " << cert
                         << "\n    key: " << key << "\n";
        return p;
    }

    std::filesystem::path dir_;
};

TEST_F(ConfigFiles, ReadableFilesLoad) {
    const auto r = load_file(write_config((dir_ / "ca.pem").string(), (dir_ / "cert.pem").string(), (dir_ / "key.pem").string()));
    EXPECT_TRUE(r.ok()) << all(r);
    EXPECT_TRUE(r.diagnostics.empty()) << all(r);
}

TEST_F(ConfigFiles, PasswordFileIsCheckedLineByLine) {
    const auto cfg =
        write_config((dir_ / "ca.pem").string(), (dir_ / "cert.pem").string(), (dir_ / "key.pem").string());
    const auto passwords = dir_ / "mqtt.passwd";
    std::ofstream(cfg, std::ios::app) << "mqtt:\n  passwords: " << passwords.string() << "\n";
    auto r = load_file(cfg);
    ASSERT_FALSE(r.ok());
    ASSERT_EQ(r.diagnostics.size(), 1U) << all(r);
    EXPECT_EQ(r.diagnostics[0].path, "mqtt.passwords");
    EXPECT_EQ(r.diagnostics[0].line, 8);
    EXPECT_NE(r.diagnostics[0].message.find("does not exist"), std::string::npos) << all(r);
    EXPECT_NE(r.diagnostics[0].hint.find("mosquitto_passwd -c"), std::string::npos) << all(r);

    const std::string hash =
        "$7$101$SvyIYQnC6qtgKwv5$V1U3DklmLKQQrYTZBqSbdHpyYG1ja79AAlCxc9TOwY/5T/nTS/"
        "WPFlFcqWMrFQUug1QAp09MtL8GBlSBvgnFgQ==";
    std::ofstream(passwords) << "alice:" << hash << "\n# a comment\nbob:plaintext\n\ncarol:$7$101$!!$x\n";
    r = load_file(cfg);
    ASSERT_FALSE(r.ok());
    ASSERT_EQ(r.diagnostics.size(), 2U) << all(r);
    EXPECT_TRUE(to_string(r.diagnostics[0]).starts_with(passwords.string() + ":3: mqtt.passwords: the hash is neither"))
        << all(r);
    EXPECT_TRUE(
        to_string(r.diagnostics[1]).starts_with(passwords.string() + ":5: mqtt.passwords: the salt is not base64"))
        << all(r);

    std::ofstream(passwords) << "alice:" << hash << "\n";
    r = load_file(cfg);
    EXPECT_TRUE(r.ok()) << all(r);
}

TEST_F(ConfigFiles, MissingFileAndDirectory) {
    const auto file = write_config((dir_ / "nope.pem").string(), dir_.string(), (dir_ / "key.pem").string());
    const auto r = load_file(file);
    ASSERT_FALSE(r.ok());
    ASSERT_EQ(r.diagnostics.size(), 2U) << all(r);
    EXPECT_TRUE(to_string(r.diagnostics[0]).starts_with(file.string() + ":4:9: things[0].ca: file " + (dir_ / "nope.pem").string()))
        << all(r);
    EXPECT_NE(r.diagnostics[0].message.find("does not exist"), std::string::npos);
    EXPECT_EQ(r.diagnostics[1].path, "things[0].cert");
    EXPECT_EQ(r.diagnostics[1].line, 5);
    EXPECT_NE(r.diagnostics[1].message.find("is a directory"), std::string::npos);
}

TEST_F(ConfigFiles, WorldReadableKeyIsAWarning) {
    std::filesystem::permissions(dir_ / "key.pem", std::filesystem::perms::others_read, std::filesystem::perm_options::add);
    const auto r = load_file(write_config((dir_ / "ca.pem").string(), (dir_ / "cert.pem").string(), (dir_ / "key.pem").string()));
    ASSERT_TRUE(r.ok()) << all(r);
    ASSERT_EQ(r.diagnostics.size(), 1U);
    EXPECT_TRUE(r.diagnostics[0].warning);
    EXPECT_EQ(r.diagnostics[0].path, "things[0].key");
}

// Group access to the key is for thingmuxd's own group (the one the check runs as); another group
// (here Debian's `users`, gid 100) lets other programs read it.
TEST_F(ConfigFiles, KeyReadableByAGroupThatIsNotTheDaemonsIsAWarningNamingTheGroup) {
    if (::geteuid() != 0 || ::getegid() != 0) GTEST_SKIP() << "needs root to give the key to another group";
    const auto key = dir_ / "key.pem";
    const auto cfg = write_config((dir_ / "ca.pem").string(), (dir_ / "cert.pem").string(), key.string());
    ASSERT_EQ(::chmod(key.c_str(), 0640), 0);
    auto r = load_file(cfg);
    ASSERT_TRUE(r.ok()) << all(r);
    EXPECT_TRUE(r.diagnostics.empty()) << "0640 with thingmuxd's own group: " << all(r);

    ASSERT_EQ(::chown(key.c_str(), static_cast<uid_t>(-1), 100), 0);
    r = load_file(cfg);
    ASSERT_TRUE(r.ok()) << all(r);
    ASSERT_EQ(r.diagnostics.size(), 1U) << all(r);
    EXPECT_EQ(to_string(r.diagnostics[0]), cfg.string() + ":6:10: warning: things[0].key: private key " + key.string() +
                                               " is readable by group users (gid 100), which thingmuxd does not run as "
                                               "(chmod 0600, or chgrp it to thingmuxd's group root (gid 0))");

    // Only the owner may read it: no warning, whatever the group.
    ASSERT_EQ(::chmod(key.c_str(), 0600), 0);
    r = load_file(cfg);
    EXPECT_TRUE(r.diagnostics.empty()) << all(r);
}

TEST_F(ConfigFiles, PermissionDeniedForAnotherUser) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to switch to uid 65534";
    const auto cfg = write_config((dir_ / "ca.pem").string(), (dir_ / "cert.pem").string(), (dir_ / "key.pem").string());
    ::chmod(dir_.c_str(), 0755);
    ::chmod(cfg.c_str(), 0644);
    const auto parsed = parse(read_text(cfg), cfg.string());
    ASSERT_TRUE(parsed.ok());
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        ::close(fds[0]);
        if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(2);
        std::vector<diagnostic> out;
        check_files(*parsed.config, out, cfg.string());
        std::string text;
        for (const auto& d : out) text += to_string(d) + "\n";
        (void)!::write(fds[1], text.data(), text.size());
        ::_exit(0);
    }
    ::close(fds[1]);
    std::string text;
    char buf[4096];
    for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) text.append(buf, static_cast<std::size_t>(n));
    ::close(fds[0]);
    int status = 0;
    ::waitpid(child, &status, 0);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    EXPECT_EQ(text, cfg.string() + ":6:10: things[0].key: file " + (dir_ / "key.pem").string() +
                        " not readable by thingmux: permission denied (check the path, and that the thingmux user may read the "
                        "file and every directory above it)\n");
}

TEST(ConfigLoadFile, MissingConfigFile) {
    const auto r = load_file("/nonexistent/thingmux.yaml");
    ASSERT_FALSE(r.ok());
    ASSERT_EQ(r.diagnostics.size(), 1U);
    EXPECT_EQ(to_string(r.diagnostics[0]).substr(0, 76),
              "/nonexistent/thingmux.yaml: cannot open the configuration file: no such file");
}

}  // namespace

namespace {

// A key may come from a systemd credential (LoadCredential=) instead of a file path.
TEST(ConfigCredentials, CredentialNamesAreAcceptedAndResolvedUnderCredentialsDirectory) {
    auto yaml = minimal;
    yaml.replace(yaml.find("/etc/key.pem"), 12, "credential:gw.key");
    const auto r = parse(yaml, "c.yaml");
    ASSERT_TRUE(r.ok()) << all(r);
    EXPECT_EQ(r.config->things.at(0).key, std::filesystem::path("credential:gw.key"));

    ::unsetenv("CREDENTIALS_DIRECTORY");
    EXPECT_TRUE(resolve_file("credential:gw.key").empty());
    EXPECT_EQ(resolve_file("/etc/key.pem"), std::filesystem::path("/etc/key.pem"));
    std::vector<diagnostic> out;
    check_files(*r.config, out, "c.yaml");
    const auto it = std::find_if(out.begin(), out.end(), [](const diagnostic& d) { return d.path == "things[0].key"; });
    ASSERT_NE(it, out.end());
    EXPECT_EQ(it->line, 6);
    EXPECT_NE(it->message.find("CREDENTIALS_DIRECTORY is not set"), std::string::npos) << it->message;

    const auto dir = std::filesystem::temp_directory_path() / ("thingmux-cred-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "gw.key") << "key";
    std::filesystem::permissions(dir / "gw.key", std::filesystem::perms::owner_read);
    ::setenv("CREDENTIALS_DIRECTORY", dir.c_str(), 1);
    EXPECT_EQ(resolve_file("credential:gw.key"), dir / "gw.key");
    out.clear();
    check_files(*r.config, out, "c.yaml");
    EXPECT_TRUE(std::none_of(out.begin(), out.end(), [](const diagnostic& d) { return d.path == "things[0].key"; }));
    ::unsetenv("CREDENTIALS_DIRECTORY");
    std::filesystem::remove_all(dir);
}

TEST(ConfigCredentials, ACredentialNameCannotLeaveTheDirectory) {
    for (const char* bad : {"credential:../etc/shadow", "credential:a/b", "credential:.."}) {
        auto yaml = minimal;
        yaml.replace(yaml.find("/etc/key.pem"), 12, bad);
        const auto r = parse(yaml, "t.yaml");
        expect_error(r, "things[0].key", 6, 10, "does not name a credential");
    }
}

}  // namespace

// things[].local_topics: filters with ${thing} expanded; other variables and shared
// subscriptions are refused where they are written.
TEST(ConfigLoadLocalTopics, ExpandsThingAndRefusesWhatCannotBeLocal) {
    const auto r = parse(minimal + "    local_topics: ['local/#', 'lan/${thing}/+']\n", "t.yaml");
    ASSERT_TRUE(r.ok()) << all(r);
    EXPECT_EQ(r.config->things[0].local_topics, (std::vector<std::string>{"local/#", "lan/gw/+"}));
    EXPECT_TRUE(parse(minimal, "t.yaml").config->things[0].local_topics.empty());
    expect_error(parse(minimal + "    local_topics: ['local/${unit}/#']\n", "t.yaml"), "things[0].local_topics", 7, 19,
                 "uses a variable other than ${thing}");
    expect_error(parse(minimal + "    local_topics: ['$share/g/local/#']\n", "t.yaml"), "things[0].local_topics", 7, 19,
                 "shared subscription");
    expect_error(parse(minimal + "    local_topics: ['local/#/x']\n", "t.yaml"), "things[0].local_topics[0]", 7, 20, "not a valid MQTT topic filter");
}

// session_expiry, session_queue, max_sessions and max_sessions_per_uid of mqtt: and ipc:: defaults, values, bounds.
TEST(ConfigLoadSessions, DefaultsValuesAndBoundsInEitherFrontEnd) {
    const auto d = parse(minimal, "t.yaml");
    ASSERT_TRUE(d.ok()) << all(d);
    for (const std::string section : {"mqtt", "ipc"}) {
        SCOPED_TRACE(section);
        const auto limits = [&](const thingmux::config::configuration& c) {
            return section == "mqtt" ? c.mqtt.sessions : c.ipc.sessions;
        };
        EXPECT_EQ(limits(*d.config).expiry, std::chrono::seconds{86'400});
        EXPECT_EQ(limits(*d.config).queue, 1024U * 1024U);
        EXPECT_EQ(limits(*d.config).max, 256U);
        EXPECT_EQ(limits(*d.config).max_per_uid, 64U);
        const auto r = parse(minimal + section +
                                 ":\n  session_expiry: 2h\n  session_queue: 64KiB\n  max_sessions: 0\n  max_sessions_per_uid: 3\n",
                             "t.yaml");
        ASSERT_TRUE(r.ok()) << all(r);
        EXPECT_EQ(limits(*r.config).expiry, std::chrono::seconds{7200});
        EXPECT_EQ(limits(*r.config).queue, 64U * 1024U);
        EXPECT_EQ(limits(*r.config).max, 0U);
        EXPECT_EQ(limits(*r.config).max_per_uid, 3U);
        // The other front end keeps its defaults.
        EXPECT_EQ(section == "mqtt" ? r.config->ipc.sessions : r.config->mqtt.sessions, thingmux::config::session_limits{});
        expect_error(parse(minimal + section + ":\n  session_expiry: 31d\n", "t.yaml"), section + ".session_expiry", 8, 19, "");
        expect_error(parse(minimal + section + ":\n  session_queue: 2GiB\n", "t.yaml"), section + ".session_queue", 8, 18, "");
        expect_error(parse(minimal + section + ":\n  max_sessions: 70000\n", "t.yaml"), section + ".max_sessions", 8, 17, "");
        EXPECT_FALSE(parse(minimal + section + ":\n  max_sessions: many\n", "t.yaml").ok());
        expect_error(parse(minimal + section + ":\n  max_sessions_per_uid: -1\n", "t.yaml"), section + ".max_sessions_per_uid", 8,
                     25, "");
    }
}

// things[].proxy, proxy_credentials, proxy_ca (docs/config.md, docs/connecting.md).
TEST(ConfigLoadProxy, DirectByDefault) {
    const auto r = parse(minimal, "t.yaml");
    ASSERT_TRUE(r.ok()) << all(r);
    EXPECT_EQ(r.config->things.at(0).proxy.mode, proxy_mode::direct);
}

TEST(ConfigLoadProxy, UrlCredentialsFileAndCa) {
    const auto r = parse(minimal + "    proxy: https://Proxy.Corp:3129\n"
                                   "    proxy_credentials: credential:proxy\n"
                                   "    proxy_ca: /etc/ssl/corp-proxy.pem\n",
                         "t.yaml");
    ASSERT_TRUE(r.ok()) << all(r);
    EXPECT_TRUE(r.diagnostics.empty()) << all(r);
    const auto& p = r.config->things.at(0).proxy;
    EXPECT_EQ(p.mode, proxy_mode::url);
    EXPECT_EQ(p.url.scheme, thingmux::proxy::scheme::https);
    EXPECT_EQ(p.url.host, "proxy.corp");
    EXPECT_EQ(p.url.port, 3129);
    EXPECT_FALSE(p.url.login);
    EXPECT_EQ(p.credentials, std::filesystem::path("credential:proxy"));
    EXPECT_EQ(p.ca, std::filesystem::path("/etc/ssl/corp-proxy.pem"));
}

TEST(ConfigLoadProxy, EnvTakesTheEnvironmentsProxy) {
    const auto r = parse(minimal + "    proxy: env\n    proxy_credentials: /etc/thingmux/proxy-login\n", "t.yaml");
    ASSERT_TRUE(r.ok()) << all(r);
    EXPECT_EQ(r.config->things.at(0).proxy.mode, proxy_mode::environment);
    EXPECT_EQ(r.config->things.at(0).proxy.credentials, std::filesystem::path("/etc/thingmux/proxy-login"));
}

TEST(ConfigLoadProxy, PasswordInTheUrlIsAcceptedWithAWarning) {
    const auto r = parse(minimal + "    proxy: http://alice:s3cret@proxy:3128\n", "t.yaml");
    ASSERT_TRUE(r.ok()) << all(r);
    ASSERT_EQ(r.diagnostics.size(), 1U) << all(r);
    const auto& d = r.diagnostics[0];
    EXPECT_TRUE(d.warning);
    EXPECT_EQ(d.path, "things[0].proxy");
    EXPECT_EQ(d.line, 7);
    EXPECT_EQ(d.column, 12);
    EXPECT_NE(d.hint.find("proxy_credentials"), std::string::npos) << d.hint;
    EXPECT_EQ(to_string(d).find("s3cret"), std::string::npos) << "the password is never repeated";
    const auto& url = r.config->things.at(0).proxy.url;
    ASSERT_TRUE(url.login);
    EXPECT_EQ(url.login->user, "alice");
    EXPECT_EQ(url.login->password, "s3cret");
}

TEST(ConfigLoadProxy, CredentialsInTheUrlAndInAFileAreOneTooMany) {
    const auto r = parse(minimal + "    proxy: http://alice:pw@proxy:3128\n    proxy_credentials: /etc/login\n", "t.yaml");
    expect_error(r, "things[0].proxy_credentials", 8, 24, "holds a user name and password already");
}

TEST(ConfigLoadProxy, AnUnusableUrlIsAnErrorThatNeverQuotesIt) {
    struct bad_url {
        const char* text;
        const char* problem;
    };
    for (const auto& [text, problem] : {bad_url{"socks5://alice:s3cret@proxy:1080", "scheme 'socks5'"},
                                        {"proxy.corp:3128", "no scheme"},
                                        {"http://proxy:70000", "1..65535"},
                                        {"http://proxy:3128/path", "path"},
                                        {"http://alice:s3cret%zz@proxy:3128", "'%'"}}) {
        SCOPED_TRACE(text);
        const auto r = parse(minimal + "    proxy: " + text + "\n", "t.yaml");
        expect_error(r, "things[0].proxy", 7, 12, problem, "https://HOST:PORT");
        EXPECT_EQ(all(r).find("s3cret"), std::string::npos) << all(r);
    }
    expect_error(parse(minimal + "    proxy: [a]\n", "t.yaml"), "things[0].proxy", 7, 12, "");
}

TEST(ConfigLoadProxy, KeysWithoutEffectAreErrors) {
    expect_error(parse(minimal + "    proxy_credentials: /etc/login\n", "t.yaml"), "things[0].proxy_credentials", 7, 24,
                 "has no effect without proxy:");
    expect_error(parse(minimal + "    proxy_ca: /etc/ca.pem\n", "t.yaml"), "things[0].proxy_ca", 7, 15,
                 "has no effect without proxy:");
    expect_error(parse(minimal + "    proxy: http://proxy:3128\n    proxy_ca: /etc/ca.pem\n", "t.yaml"),
                 "things[0].proxy_ca", 8, 15, "http:// proxy", "https://");
}

TEST(ConfigLoadProxy, FilesArePathsOrCredentials) {
    expect_error(parse(minimal + "    proxy: env\n    proxy_credentials: login.txt\n", "t.yaml"),
                 "things[0].proxy_credentials", 8, 24, "not an absolute path");
    expect_error(parse(minimal + "    proxy: env\n    proxy_ca: credential:../ca\n", "t.yaml"), "things[0].proxy_ca", 8,
                 15, "does not name a credential");
}

TEST_F(ConfigFiles, ProxyFilesAreCheckedAndAReadableCredentialsFileIsAWarning) {
    const auto cfg = write_config((dir_ / "ca.pem").string(), (dir_ / "cert.pem").string(), (dir_ / "key.pem").string());
    const auto login = dir_ / "proxy-login";
    std::ofstream(cfg, std::ios::app) << "    proxy: https://proxy:3129\n    proxy_credentials: " << login.string()
                                      << "\n    proxy_ca: " << (dir_ / "nope.pem").string() << "\n";
    auto r = load_file(cfg);
    ASSERT_FALSE(r.ok());
    ASSERT_EQ(r.diagnostics.size(), 2U) << all(r);
    EXPECT_EQ(r.diagnostics[0].path, "things[0].proxy_credentials");
    EXPECT_EQ(r.diagnostics[0].line, 8);
    EXPECT_NE(r.diagnostics[0].message.find("does not exist"), std::string::npos) << all(r);
    EXPECT_EQ(r.diagnostics[1].path, "things[0].proxy_ca");
    EXPECT_EQ(r.diagnostics[1].line, 9);

    std::ofstream(login) << "alice:pw\n";
    std::filesystem::permissions(login, std::filesystem::perms::others_read, std::filesystem::perm_options::add);
    std::ofstream(dir_ / "nope.pem") << "x\n";
    r = load_file(cfg);
    ASSERT_TRUE(r.ok()) << all(r);
    ASSERT_EQ(r.diagnostics.size(), 1U) << all(r);
    EXPECT_TRUE(r.diagnostics[0].warning);
    EXPECT_EQ(r.diagnostics[0].path, "things[0].proxy_credentials");
    EXPECT_NE(r.diagnostics[0].message.find("proxy credentials file"), std::string::npos) << all(r);
}
