// The examples of <thingmux/client.hpp> and docs/libthingmux.md, as an app outside the tree
// compiles them (with -Wall -Wextra -Werror and no -std flag of its own). With --self-test it
// only checks what needs no daemon.
#include <thingmux/client.hpp>

#include <chrono>
#include <cstring>
#include <iostream>
#include <stop_token>

namespace {

int run() {
    thingmux::client c;  // default socket, default Thing
    c.start();           // the library's own thread runs the I/O
    if (auto r = c.connect().get(); !r) {
        std::cerr << r.message << '\n';
        return 3;
    }
    c.subscribe("cmd/gateway-01/#", 1, [](const thingmux::message& m) { std::cout << m.topic << '\n'; }).get();
    auto r = c.publish({.topic = "dt/gateway-01/temperature", .payload = "21.5", .qos = 1}).get();

    // A deadline and a way to cancel.
    using namespace std::chrono_literals;
    std::stop_source stop;
    auto f = c.subscribe("cmd/gateway-01/reboot", 1, nullptr, {.timeout = 5s, .cancel = stop.get_token()});
    auto h = c.publish({.topic = "dt/gateway-01/t", .payload = "1", .qos = 1}, {.timeout = 2s},
                       [](const thingmux::result& res) { std::cout << thingmux::to_string(res.code) << '\n'; });
    h.cancel();
    c.on_subscription_lost([](const std::string& filter, const thingmux::result& res) {
        std::cerr << filter << ": " << res.message << '\n';
    });
    auto reg = c.subscribe("cmd/gateway-01/#", 1, [](const thingmux::message&) {},
                           {.timeout = 5s, .complete_at = thingmux::subscribe_completion::registered})
                   .get();
    c.add_state_listener([](const thingmux::state& s) { std::cout << thingmux::to_string(s.uplink) << '\n'; });
    c.add_message_listener([](const thingmux::message& m) { std::cout << m.topic << '\n'; }, thingmux::message_scope::all);

    // Pull-style reading.
    c.start_consuming({.capacity = 100});
    while (auto m = c.consume(1s)) {
        std::cout << m->topic << '\n';
    }
    return f.get() && r && reg ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc > 1 && std::strcmp(argv[1], "--self-test") == 0) {
        // Linked and loadable: the library's names resolve, without a daemon.
        std::cout << thingmux::to_string(thingmux::error_code::cancelled) << '\n';
        return std::strcmp(thingmux::to_string(thingmux::error_code::timed_out), "timed_out") == 0 ? 0 : 1;
    }
    return run();
}
