// The durable spool in a Thing's pipeline: QoS 1 publishes accepted while the Thing is offline
// (or behind earlier spooled ones, to keep each app's order) are stored, answered "spooled", and
// moved into the publish shaper a bounded batch at a time once the Thing is connected. A row is
// deleted once the broker answered it; a row the daemon stopped before sending stays for the next
// start.
#include "daemon/thing/outcome.hpp"
#include "daemon/thing/pipeline.hpp"
#include "daemon/thing/spool_message.hpp"

#include <spdlog/spdlog.h>

namespace thingmux::thing {

namespace {

constexpr std::size_t spool_batch = 64;  // spooled messages held in memory at once per Thing

}  // namespace

std::optional<ipc::result> pipeline::maybe_spool(const ipc::publish& m) {
    auto* spool = shared_.spool;
    if (spool == nullptr || m.qos != 1) return std::nullopt;
    if (online() && spool->count(settings_.name) == 0) return std::nullopt;
    const auto r = spool->append(settings_.name, to_spool_message(m), m.topic.size() + m.payload.size());
    if (r.error == spool::failure::none) {
        ++shared_.counters.spooled;
        spool_times_.emplace(r.id, clock_.now());
        return ipc::result{.code = ipc::errc::spooled, .mqtt_reason_code = 0, .message = {}};
    }
    ++shared_.counters.spool_refused;
    ++spool_rejected_;
    if (r.error == spool::failure::full) return fail(ipc::errc::spool_full, r.message);
    // A full disk fails every append: one line per 10 s, with how many failed meanwhile.
    if (auto note = shared_.spool_error_log.admit())
        spdlog::error("thing {}: cannot write the spool: {}{}", settings_.name, r.message, *note);
    return fail(ipc::errc::spool_full, "the durable spool could not store the message: " + r.message);
}

void pipeline::drain_spool() {
    auto* spool = shared_.spool;
    if (spool == nullptr || stopping_ || !online() || spool_loaded_ >= spool_batch / 2) return;
    // The in-memory count spares a query when every row is already loaded.
    if (spool->count(settings_.name) <= spool_loaded_) return;
    // Publishes accepted before the spool began (held in the shaper while the link was down) go
    // first: every later publish of the same app was spooled behind them.
    if (shaper_.queued_total() > shaper_.queued(spool_flow)) return;
    auto loaded = spool->load(settings_.name, spool_cursor_, spool_batch - spool_loaded_);
    // Rows the spool could not read are in its quarantine table now, named here.
    if (!loaded.error.empty()) spdlog::error("thing {}: cannot read the spool: {}", settings_.name, loaded.error);
    for (auto& row : loaded.rows) {
        spool_cursor_ = row.id;
        ++spool_loaded_;
        enqueue({.msg = to_mqtt(from_spool_message(std::move(row.message))),
                 .owner = {.session = nullptr, .flow = spool_flow, .request_id = 0, .spool_id = row.id}});
    }
    if (!loaded.rows.empty()) release_again_ = true;  // the batch may go out at once
}

void pipeline::spooled_done(std::int64_t id, const ipc::result& r) {
    --spool_loaded_;
    // Kept only when the daemon stopped before the broker answered: sent again after restart.
    if (r.code == ipc::errc::daemon_shutting_down) return;
    if (!ipc::accepted(r.code))
        spdlog::warn("thing {}: spooled message {} refused: {}; dropping it", settings_.name, id, logging::escaped(r.message));
    spool_times_.erase(id);
    std::string error;
    if (!shared_.spool->remove(id, error))
        spdlog::error("thing {}: cannot delete spooled message {}: {}", settings_.name, id, error);
}

}  // namespace thingmux::thing
