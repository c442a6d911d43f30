// Example: a controller that subscribes to commands and prints each one.
//
//   thingmux-example-controller --count 5            # cmd/THING/#, THING from the daemon
//   thingmux-example-controller --filter 'cmd/+/reboot'
//
// Runs the library inside the app's own event loop: poll() on client.fd(), then process().
// No library thread: the handlers run here, in main's thread.
#include <thingmux/client.hpp>

#include <CLI/CLI.hpp>

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>

#include <cstdint>
#include <iostream>
#include <string>

int main(int argc, char** argv) {
    CLI::App app{"Subscribes to cmd/THING/# (or a given filter) through thingmuxd and prints each message."};
    std::string filter;
    std::string socket;
    std::uint64_t count = 0;
    app.add_option("--filter", filter, "Topic filter [default: cmd/THING/#, THING from the daemon]");
    app.add_option("--count", count, "Exit after this many messages (0: until interrupted)")->capture_default_str();
    app.add_option("--socket", socket, "thingmuxd's socket [default: $THINGMUX_SOCKET or /run/thingmux/thingmux.sock]");
    CLI11_PARSE(app, argc, argv);

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
    const int sig_fd = signalfd(-1, &sigs, SFD_CLOEXEC);

    thingmux::options opts;
    opts.socket_path = socket;
    thingmux::client client(opts);

    bool running = true;
    int exit_code = 0;
    std::uint64_t received = 0;

    client.on_state([](const thingmux::state& s) {
        std::cerr << "state: daemon " << to_string(s.daemon) << ", uplink " << to_string(s.uplink)
                  << (s.daemon_reason.empty() ? "" : " (" + s.daemon_reason + ")") << '\n';
    });
    client.connect([&](const thingmux::result& r) {
        if (!r) {
            std::cerr << "cannot connect: " << r.message << '\n';
            exit_code = 3;
            running = false;
            return;
        }
        if (filter.empty()) {
            filter = "cmd/" + client.daemon().value_or(thingmux::daemon_info{}).thing + "/#";
        }
        client.subscribe(
            filter, 1,
            [&](const thingmux::message& m) {
                std::cout << m.topic << ' ' << m.payload << std::endl;
                if (count != 0 && ++received >= count) {
                    running = false;
                }
            },
            [&](const thingmux::result& sr) {
                if (!sr) {
                    std::cerr << "subscribe to " << filter << " refused: " << to_string(sr.code) << ": " << sr.message
                              << '\n';
                    exit_code = 1;
                    running = false;
                    return;
                }
                std::cerr << "listening on " << filter << '\n';
            });
    });

    // The app's event loop: the library's fd next to the app's own (here: signals).
    pollfd fds[2] = {{client.fd(), POLLIN, 0}, {sig_fd, POLLIN, 0}};
    while (running) {
        if (poll(fds, 2, -1) < 0) {
            continue;  // EINTR
        }
        if (fds[1].revents != 0) {
            break;
        }
        if (fds[0].revents != 0) {
            client.process();
        }
    }
    client.close();
    return exit_code;
}
