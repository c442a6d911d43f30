// The listeners: the Unix sockets local applications connect to (the IPC socket of libthingmux,
// the MQTT socket of unmodified MQTT clients), the loop that accepts them, and the open-file
// budget that bounds how many of them thingmuxd can hold. One class serves both sockets; its
// endpoint says which one it is, for the messages.
//
// - The socket is the one systemd passed (socket activation), or the configured path bound by
//   thingmuxd. thingmuxd never follows a symbolic link at that path: at startup a link, a file
//   of another kind or a socket another program answers on is an error that says what is there;
//   the mode and group are applied (at startup and on reload) only to the very file it bound
//   (same device and inode), through a descriptor that pins it, never by path.
// - Accepting pauses with a growing back-off when the process or the system is out of
//   descriptors (EMFILE, ENFILE) or memory: retrying at once would spin the only thread. The
//   pause and the recovery are logged through a rate limiter.
#pragma once

#include "config/config.hpp"
#include "daemon/logging.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>

#include <sys/resource.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

namespace thingmux {

// The group id of a socket's group setting (`setting`: "ipc.group", "mqtt.group"); throws
// std::runtime_error saying how to fix a missing group.
[[nodiscard]] gid_t socket_group_id(const std::string& name, std::string_view setting);

// Raises the soft open-file limit (RLIMIT_NOFILE) to the hard one and returns the soft limit in
// force afterwards. A refusal (a seccomp filter, a container) leaves the limit as it was.
[[nodiscard]] rlim_t raise_open_file_limit();

// How many clients (of both sockets together) fit in `open_files` descriptors when the rest of
// the daemon (uplinks of `things` Things, the spool, D-Bus, the journal, the event loop, the
// listening sockets) keeps its share. At least 1.
[[nodiscard]] std::size_t client_capacity(rlim_t open_files, std::size_t things) noexcept;

class listener {
public:
    using socket = boost::asio::local::stream_protocol::socket;

    // One socket as the configuration describes it.
    struct endpoint {
        std::filesystem::path path;
        unsigned mode = 0660;
        std::string group;    // empty: leave the group as created
        std::string name;     // "IPC", "MQTT": "the IPC socket", "cannot accept IPC clients"
        std::string section;  // "ipc", "mqtt": where its settings are ("set ipc.socket")
    };

    // Takes the socket systemd passed (`activated` >= 0), or binds the endpoint's path and
    // applies its mode and group. Throws std::runtime_error with a message for the user.
    listener(boost::asio::io_context& io, endpoint where, int activated);
    ~listener();
    listener(const listener&) = delete;
    listener& operator=(const listener&) = delete;

    // Accepts clients until close(), handing each to `on_client`.
    void start(std::function<void(socket)> on_client);
    // Stops accepting, and removes the socket file thingmuxd bound if it is still that file.
    void close();
    // Applies the mode and group of `access` (same socket, settings reloaded) to the socket file
    // thingmuxd bound. Returns "" or what is wrong, e.g. that the path no longer is that socket.
    // Nothing to do under socket activation: systemd owns that file.
    [[nodiscard]] std::string apply_access(const endpoint& access);

    // The socket file thingmuxd bound; empty when systemd passed the socket.
    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
    // The socket as configured at startup (under socket activation: the path systemd's matched).
    [[nodiscard]] const endpoint& where() const noexcept { return where_; }

private:
    void bind();
    void accept();
    void pause(const boost::system::error_code& ec);
    // "" when path_ still is the socket file thingmuxd bound, else what is there now.
    [[nodiscard]] std::string replaced() const;

    endpoint where_;
    boost::asio::local::stream_protocol::acceptor acceptor_;
    boost::asio::steady_timer retry_;
    std::function<void(socket)> on_client_;
    std::filesystem::path path_;
    int pinned_ = -1;  // O_PATH descriptor of the socket file thingmuxd bound
    dev_t device_ = 0;
    ino_t inode_ = 0;
    // While accepting fails: the current back-off, the attempts so far, and whether the pause
    // was logged (then its end is too).
    std::chrono::milliseconds backoff_{0};
    std::uint64_t failed_attempts_ = 0;
    bool pause_logged_ = false;
    logging::rate_limiter pause_log_{5, std::chrono::minutes(1)};
    bool closed_ = false;
};

// The endpoints of the configuration's sockets.
[[nodiscard]] listener::endpoint ipc_endpoint(const config::ipc_settings& ipc);
[[nodiscard]] listener::endpoint mqtt_endpoint(const config::mqtt_settings& mqtt);

}  // namespace thingmux
