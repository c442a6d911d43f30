// metrics: (docs/config.md "metrics", docs/metrics.md): the socket next to ipc.socket by default,
// TCP off unless listen is written, non-loopback addresses only with allow_remote; errors at
// file:line:col.
#include "config/config.hpp"
#include "tests/unit/config_test_support.hpp"

#include <gtest/gtest.h>

#include <string>

namespace {

using namespace thingmux::config;
using namespace thingmux::config::test;

TEST(ConfigMetrics, DefaultsFollowTheIpcSocket) {
    const auto r = parse(minimal + "ipc:\n  socket: /tmp/x/thingmux.sock\n  mode: \"0600\"\n  group: \"\"\n", "t.yaml");
    ASSERT_TRUE(r.ok()) << all(r);
    const auto& m = r.config->metrics;
    EXPECT_TRUE(m.enabled);
    EXPECT_EQ(m.socket, "/tmp/x/metrics.sock");
    EXPECT_EQ(m.mode, 0600U);
    EXPECT_EQ(m.group, "");
    EXPECT_FALSE(m.listen);
    EXPECT_FALSE(m.allow_remote);
}

TEST(ConfigMetrics, DefaultPathIsRunThingmux) {
    const auto r = parse(minimal, "t.yaml");
    ASSERT_TRUE(r.ok()) << all(r);
    EXPECT_EQ(r.config->metrics.socket, "/run/thingmux/metrics.sock");
    EXPECT_EQ(r.config->metrics.mode, 0660U);
    EXPECT_EQ(r.config->metrics.group, "thingmux");
}

TEST(ConfigMetrics, EveryKey) {
    const auto r = parse(minimal + "metrics:\n  socket: /run/m.sock\n  mode: \"0640\"\n  group: adm\n  listen: \"127.0.0.1:9465\"\n",
                         "t.yaml");
    ASSERT_TRUE(r.ok()) << all(r);
    const auto& m = r.config->metrics;
    EXPECT_EQ(m.socket, "/run/m.sock");
    EXPECT_EQ(m.mode, 0640U);
    EXPECT_EQ(m.group, "adm");
    ASSERT_TRUE(m.listen);
    EXPECT_EQ(m.listen->host, "127.0.0.1");
    EXPECT_EQ(m.listen->port, 9465);
}

TEST(ConfigMetrics, Ipv6Loopback) {
    const auto r = parse(minimal + "metrics:\n  listen: \"[::1]:9465\"\n", "t.yaml");
    ASSERT_TRUE(r.ok()) << all(r);
    EXPECT_EQ(r.config->metrics.listen->to_string(), "[::1]:9465");
}

TEST(ConfigMetrics, Disabled) {
    const auto r = parse(minimal + "metrics:\n  enabled: false\n", "t.yaml");
    ASSERT_TRUE(r.ok()) << all(r);
    EXPECT_FALSE(r.config->metrics.enabled);
}

TEST(ConfigMetrics, RemoteAddressNeedsAllowRemote) {
    const auto r = parse(minimal + "metrics:\n  listen: \"0.0.0.0:9465\"\n", "t.yaml");
    expect_error(r, "metrics.listen", 8, 11, "is not a loopback address", "");
    EXPECT_NE(find(r, "metrics.listen")->message.find("metrics.allow_remote: true"), std::string::npos);

    const auto ok = parse(minimal + "metrics:\n  allow_remote: true\n  listen: \"0.0.0.0:9465\"\n", "t.yaml");
    ASSERT_TRUE(ok.ok()) << all(ok);
    EXPECT_EQ(ok.config->metrics.listen->host, "0.0.0.0");
    EXPECT_TRUE(ok.config->metrics.allow_remote);
}

TEST(ConfigMetrics, BadAddresses) {
    struct c {
        const char* value;
        const char* says;
    };
    for (const auto& [value, says] : {c{"127.0.0.1", "is not HOST:PORT"}, c{"127.0.0.1:0", "a port is a number from 1 to 65535"},
                                      c{"127.0.0.1:70000", "a port is a number"}, c{"localhost:9465", "is not an IP address"},
                                      c{"::1:9465", "IPv6 address goes in brackets"}}) {
        const auto r = parse(minimal + "metrics:\n  listen: \"" + value + "\"\n", "t.yaml");
        SCOPED_TRACE(value);
        expect_error(r, "metrics.listen", 8, 11, says);
    }
}

TEST(ConfigMetrics, UnknownKeyAndBadTypes) {
    expect_error(parse(minimal + "metrics:\n  listn: \"127.0.0.1:9465\"\n", "t.yaml"), "metrics.listn", 8, 3, "unknown key");
    expect_error(parse(minimal + "metrics:\n  socket: relative.sock\n", "t.yaml"), "metrics.socket", 8, 11, "");
    expect_error(parse(minimal + "metrics:\n  enabled: maybe\n", "t.yaml"), "metrics.enabled", 8, 12, "");
}

TEST(ConfigMetrics, SocketMustNotBeTheIpcSocket) {
    const auto r = parse(minimal + "metrics:\n  socket: /run/thingmux/thingmux.sock\n", "t.yaml");
    expect_error(r, "metrics.socket", 8, 11, "already the IPC socket");
}

}  // namespace
