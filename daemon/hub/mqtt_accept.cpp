// Connections accepted on the MQTT socket. A stand-in until the MQTT front end (the server side
// of daemon/mqtt's sessions, wired to the Things' pipelines) replaces this file: it logs the
// connection and closes it, so that a client sees the socket accept and hang up at once.
#include "daemon/hub/hub.hpp"

#include "daemon/hub/peer.hpp"
#include "daemon/logging.hpp"

#include <spdlog/spdlog.h>

namespace thingmux::hub {

void hub::add_mqtt_client(boost::asio::local::stream_protocol::socket s) {
    const auto peer = read_peer_credentials(s.native_handle());
    spdlog::debug("MQTT client ({}) accepted and closed: this build has no MQTT front end",
                  logging::escaped(peer.describe()));
    boost::system::error_code ignored;
    s.close(ignored);
}

}  // namespace thingmux::hub
