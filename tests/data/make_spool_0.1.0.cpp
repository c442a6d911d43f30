// Writes the spool fixtures of thingmux 0.1.0 (spool schema 1: one IPC `publish` frame per row)
// with that release's own code: spool::store::append() and ipc::encode(), exactly as
// hub::maybe_spool() called them. Built and run by make-spool-0.1.0.sh against commit 9ddd1ee;
// it does not build against later sources, whose spool has another interface.
//
//   make_spool_0.1.0 DIR   ->  DIR/spool-0.1.0.sqlite, DIR/spool-0.1.0-unreadable-rows.sqlite
#include "daemon/spool/spool.hpp"
#include "ipc/codec.hpp"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace {

using namespace thingmux;

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "make_spool_0.1.0: %s\n", what.c_str());
    std::exit(1);
}

std::string every_byte_value() {
    std::string out;
    for (int i = 0; i < 300; ++i) out.push_back(static_cast<char>(i % 256));
    return out;
}

// The publishes of the fixture, in the order they are spooled.
struct entry {
    const char* thing;
    ipc::publish message;
};

std::vector<entry> publishes() {
    ipc::publish plain{.request_id = 1, .topic = "dt/gateway-01/temperature", .payload = "21.5", .qos = 1};

    ipc::publish all_properties{
        .request_id = 2, .topic = "dt/gateway-01/status", .payload = R"({"ok":true})", .qos = 1};
    all_properties.props.payload_format_indicator = 1;
    all_properties.props.message_expiry_interval = 3600;
    all_properties.props.content_type = "application/json";
    all_properties.props.response_topic = "dt/gateway-01/status/accepted";
    all_properties.props.correlation_data = std::string("\x00\x01\xfe\xff", 4);
    all_properties.props.user_properties = {{"unit", "celsius"}, {"unit", "kelvin"}, {"trace-id", ""}};

    ipc::publish sensor_binary{
        .request_id = 3, .topic = "dt/sensor-02/raw", .payload = every_byte_value(), .qos = 1, .retain = true};
    sensor_binary.props.payload_format_indicator = 0;

    ipc::publish sensor_some_properties{
        .request_id = 4, .topic = "dt/sensor-02/event", .payload = "door open", .qos = 1};
    sensor_some_properties.props.message_expiry_interval = 0;
    sensor_some_properties.props.user_properties = {{"source", "gpio 17"}};

    ipc::publish empty_payload{.request_id = 5, .topic = "dt/gateway-01/heartbeat", .payload = "", .qos = 1};

    return {{"gateway-01", plain},
            {"gateway-01", all_properties},
            {"sensor-02", sensor_binary},
            {"sensor-02", sensor_some_properties},
            {"gateway-01", empty_payload}};
}

std::unique_ptr<spool::store> create(const std::filesystem::path& path) {
    std::filesystem::remove(path);
    std::vector<std::string> notices;
    std::string error;
    auto s = spool::store::open(path, {}, notices, error);
    if (!s) die(error);
    if (!notices.empty()) die(notices.front());
    return s;
}

std::int64_t append(spool::store& s, const std::string& thing, std::span<const std::uint8_t> blob,
                    std::uint64_t bytes) {
    const auto r = s.append(thing, blob, bytes);
    if (r.error != spool::failure::none) die(r.message);
    return r.id;
}

// As hub::maybe_spool() stored it: the encoded frame, counted as topic + payload bytes.
std::int64_t spool_publish(spool::store& s, const entry& e) {
    if (auto problem = ipc::encode_problem(ipc::client_message{e.message})) die(*problem);
    return append(s, e.thing, ipc::encode(ipc::client_message{e.message}),
                  e.message.topic.size() + e.message.payload.size());
}

// Acknowledged by the broker and removed: the next id stays above it, also after a migration.
void spool_and_remove_one(spool::store& s) {
    const ipc::publish gone{.request_id = 6, .topic = "dt/gateway-01/acknowledged", .payload = "gone", .qos = 1};
    const auto id = spool_publish(s, {"gateway-01", gone});
    std::string error;
    if (!s.remove(id, error)) die(error);
}

void write_readable(const std::filesystem::path& path) {
    auto s = create(path);
    for (const auto& e : publishes()) spool_publish(*s, e);
    spool_and_remove_one(*s);
}

// Two rows that are not publish frames between readable ones: bytes of no frame at all, and a
// publish frame cut short (as a bit flip in the length prefix would leave it).
void write_with_unreadable_rows(const std::filesystem::path& path) {
    auto s = create(path);
    const auto all = publishes();
    spool_publish(*s, all[0]);
    const std::vector<std::uint8_t> garbage{0xde, 0xad, 0xbe, 0xef, 0x00, 0x42};
    append(*s, "gateway-01", garbage, 17);
    spool_publish(*s, all[2]);
    auto cut = ipc::encode(ipc::client_message{all[3].message});
    cut.resize(cut.size() - 3);
    append(*s, "sensor-02", cut, all[3].message.topic.size() + all[3].message.payload.size());
    spool_publish(*s, all[4]);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) die("usage: make_spool_0.1.0 DIR");
    const std::filesystem::path dir = argv[1];
    write_readable(dir / "spool-0.1.0.sqlite");
    write_with_unreadable_rows(dir / "spool-0.1.0-unreadable-rows.sqlite");
    // Closing a store checkpoints its WAL into the file and deletes it: each fixture is one file.
    for (const char* name : {"spool-0.1.0.sqlite", "spool-0.1.0-unreadable-rows.sqlite"}) {
        if (std::filesystem::exists(dir / (std::string{name} + "-wal"))) die(std::string{name} + "-wal was left");
    }
    return 0;
}
