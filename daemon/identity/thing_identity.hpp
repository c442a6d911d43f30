// The identity of one Thing through its life (docs/identity.md), the daemon's side of it:
//
// - start: finishes a commit a crash interrupted (identity_files.hpp), then either lets the
//   Thing's own uplink start, or, with `provisioning:` and no certificate yet, provisions first:
//   a connection of its own with the claim certificate (uplink_channel.hpp), one enrollment
//   (CreateCertificateFromCsr + RegisterThing), the new key and certificate committed, the claim
//   connection closed, and only then the Thing's uplink. Failures are retried with back-off.
// - rotation: before the certificate expires (`rotation.before_expiry`) or when asked (D-Bus
//   RotateCertificate), one enrollment over the Thing's own session, as a local session of its
//   pipeline (pipeline_channel.hpp); on success the uplink reconnects with the new pair. Apps stay
//   connected to thingmuxd and keep their publishes (the pipeline and the uplink carry them over).
//   On failure the old pair stays, and the error is shown.
// - expiry: the certificate's notAfter is read at start and after each change, shown on D-Bus
//   and by thingmuxctl, and logged as a warning when 30, 7 and 1 days are left.
//
// Runs on the daemon's one io_context; logs (it is daemon code) once per event.
#pragma once

#include "config/config.hpp"
#include "daemon/identity/enrollment_runner.hpp"
#include "daemon/identity/pipeline_channel.hpp"
#include "daemon/identity/uplink_channel.hpp"
#include "daemon/thing/pipeline.hpp"
#include "daemon/uplink/uplink.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace thingmux::identity {

// What D-Bus and thingmuxctl show of a Thing's identity.
struct identity_status {
    // "installed" (a certificate, nothing going on), "provisioning", "rotating", "unknown" (the
    // certificate is not a file thingmuxd reads: a token's, or a credential it cannot inspect).
    std::string state = "unknown";
    std::optional<std::chrono::system_clock::time_point> not_after;
    std::string certificate_id;  // the SHA-256 of the certificate's DER, as AWS IoT names it
    std::string last_error;      // of the last provisioning or rotation; empty when it succeeded
    std::string progress;        // while provisioning or rotating: the step
};

class thing_identity {
public:
    struct hooks {
        // Provisioning is over: the Thing's own uplink may start.
        std::function<void()> provisioned;
        // A rotation committed a new pair: reconnect with it.
        std::function<void(const std::string& why)> rotated;
        // While provisioning: the state apps and D-Bus see instead of the Thing's own link's.
        std::function<void(const uplink::state_event&)> show_state;
        // A new local session id for the rotation's channel.
        std::function<thing::session_id()> new_flow;
    };

    // `link`: the Thing's uplink settings (the claim connection copies them with the claim files).
    thing_identity(boost::asio::io_context& io, config::thing settings, uplink::uplink_config link,
                   std::shared_ptr<thing::pipeline> pipe, hooks h);
    ~thing_identity();
    thing_identity(const thing_identity&) = delete;
    thing_identity& operator=(const thing_identity&) = delete;

    // At start. True when the Thing's uplink may start now; false when provisioning comes first
    // (hooks.provisioned is called when it is done).
    [[nodiscard]] bool start();
    // A reload: new settings for the next enrollment; one that runs goes on with the old ones.
    void reconfigure(config::thing settings, uplink::uplink_config link);
    // The Thing's own link changed: a rotation that is due starts once it is up.
    void on_link(const uplink::state_event& ev);
    // Rotates now (D-Bus). `done` gets "" and the new certificate's id, or the error.
    using rotate_done = std::function<void(const std::string& error, const std::string& certificate_id)>;
    void rotate(rotate_done done);
    // Stops what runs (the claim connection: DISCONNECT), then `done`.
    void stop(std::function<void()> done);

    [[nodiscard]] bool provisioning() const noexcept { return claim_ != nullptr; }
    [[nodiscard]] const identity_status& status() const noexcept { return status_; }

private:
    void provision();
    void on_claim_state(const uplink::state_event& ev);
    void on_provisioned(enrollment_outcome outcome);
    void start_rotation(rotate_done done);
    void on_rotated(enrollment_outcome outcome);
    // Reads the certificate file: expiry, id; warns as thresholds pass; schedules the rotation.
    void inspect();
    void schedule_rotation();
    void retry_later(std::chrono::seconds delay, std::function<void()> what);
    [[nodiscard]] enrollment_options options_for(const config::enrollment_settings& e, enrollment_purpose purpose) const;
    [[nodiscard]] bool online() const noexcept { return link_up_; }

    boost::asio::io_context& io_;
    config::thing settings_;
    uplink::uplink_config link_;
    std::shared_ptr<thing::pipeline> pipe_;
    hooks hooks_;
    identity_status status_;

    // Provisioning: the claim connection and its channel, while it runs.
    std::shared_ptr<uplink::uplink> claim_;
    std::unique_ptr<uplink_channel> claim_channel_;
    // Rotation: the pipeline session while it runs, and who asked.
    std::shared_ptr<pipeline_channel> rotation_channel_;
    std::vector<rotate_done> waiting_;
    std::shared_ptr<enrollment_runner> runner_;

    boost::asio::steady_timer retry_timer_;
    boost::asio::steady_timer rotation_timer_;
    unsigned failures_ = 0;      // in a row, for the back-off
    bool link_up_ = false;
    bool rotation_due_ = false;  // waits for the link
    int warned_days_ = -1;       // the last expiry threshold logged for this certificate (30, 7, 1, 0)
    std::string warned_for_;     // the certificate those warnings were for
    bool stopping_ = false;
    // The certificate the last rotation installed: one that is due at once is not rotated again.
    std::string rotated_to_;
    bool short_lived_warned_ = false;
};

}  // namespace thingmux::identity
