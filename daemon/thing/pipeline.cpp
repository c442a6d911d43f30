#include "daemon/thing/pipeline.hpp"

namespace thingmux::thing {

namespace {
shaper_limits publish_limits(const config::thing_limits& l) {
    return {.messages_per_second = l.publishes_per_second, .bytes_per_second = l.bytes_per_second};
}
retained_limits cache_limits(const config::thing_limits& l) {
    return {.messages = l.retained_messages, .bytes = l.retained_bytes};
}
}  // namespace

pipeline::pipeline(config::thing settings, session_rules rules, shared_parts shared, upstream& up, clock& clk)
    : settings_(std::move(settings)), rules_(rules), shared_(std::move(shared)), up_(up), clock_(clk),
      shaper_(publish_limits(settings_.limits), clk.now()),
      filters_(settings_.limits.subscriptions_per_second, clk.now()), retained_(cache_limits(settings_.limits)),
      started_(clk.now()) {
    (void)table_.set_coverage(settings_.coverage);
}

pipeline::~pipeline() = default;

void pipeline::reconfigure(config::thing settings, session_rules rules) {
    settings_ = std::move(settings);
    rules_ = rules;
    const auto now = clock_.now();
    shaper_.set_limits(publish_limits(settings_.limits), now);
    filters_.set_rate(settings_.limits.subscriptions_per_second, now);
    retained_.set_limits(cache_limits(settings_.limits));
    if (!settings_.services.shadow_cache) shadows_ = {};
    release_publishes();
    release_subscription_changes();
    // New coverage filters are subscribed, and acknowledged, before what they replace goes (and
    // the other way round when one is removed); what no longer fits the quota is refused.
    if (table_.set_coverage(settings_.coverage)) sync_upstream(table_flow);
}

void pipeline::attach(std::shared_ptr<local_session> s) {
    const auto flow = s->flow();
    sessions_.insert_or_assign(flow, std::move(s));
}

pipeline::detached pipeline::detach(session_id id) {
    std::vector<shared_leftover> leftovers;
    if (const auto it = sessions_.find(id); it != sessions_.end()) leftovers = it->second->take_shared_leftovers();
    sessions_.erase(id);
    detached d;
    d.dropped = shaper_.remove_client(id).size();
    pending_.erase(id);
    table_.remove_client(id);
    local_table_.remove_client(id);
    retained_recipients_.forget(id);
    echoes_.forget(id);
    no_local_sessions_.erase(id);
    (void)requests_.forget(id);  // answers still due are late ones now: counted unrouted
    release_groups(groups_.leave_all(id));
    for (auto it = waiting_.begin(); it != waiting_.end();) {
        std::erase_if(it->second, [&](const waiter& w) { return w.request->owner->flow() == id; });
        it = it->second.empty() ? waiting_.erase(it) : std::next(it);
    }
    d.released = sync_upstream(id);
    hand_on(std::move(leftovers));
    return d;
}

void pipeline::on_link(ipc::state s) {
    copies_.reset();  // copies still due of a message from the last connection will not come
    retained_recipients_.reset();  // re-sends of retained messages after a reconnect are for nobody
    link_ = std::move(s);
    for (const auto& [id, session] : sessions_) session->link_changed(link_);
    if (online()) {
        release_publishes();
        release_subscription_changes();
    }
}

void pipeline::on_message(const mqtt::publish& msg, std::optional<mqtt::inbound_ticket> ticket) {
    // A broker that sends a copy per matching subscription sends one for each upstream filter
    // that matches: the sessions already have the first.
    if (settings_.limits.overlap == config::overlap_copies::per_subscription &&
        copies_.is_copy(msg, table_.upstream_copies(msg.topic))) {
        if (ticket) up_.acknowledge(*ticket);
        return;
    }
    from_broker(msg);
    // Every recipient has it queued: only now may the broker forget it.
    if (ticket) up_.acknowledge(*ticket);
}

void pipeline::on_timer() {
    expire_requests();
    release_publishes();
    release_subscription_changes();
    schedule(clock_.now());  // the next deadline, also while offline (the releases ask only online)
}

void pipeline::schedule(clock_type::time_point now) {
    std::optional<clock_type::time_point> at = requests_.next_deadline();
    if (releasing()) {
        auto wait = shaper_.next_ready(now);
        if (const auto f = filters_.next_ready(now); f && (!wait || *f < *wait)) wait = f;
        if (wait && (!at || now + *wait < *at)) at = now + *wait;
    }
    if (at) clock_.wake_at(*at);
}

void pipeline::stop_accepting() {
    stopping_ = true;
    release_publishes();
}

pipeline_status pipeline::status() const {
    pipeline_status s;
    s.upstream_filters = table_.upstream_filters();
    s.at_upstream = at_upstream_.size();
    s.waiting = shaper_.queued_total();
    for (const auto& [flow, n] : pending_) s.waiting_bytes += shaper_.queued_bytes(flow);
    if (shared_.spool != nullptr) {
        // Spool rows count until the broker acknowledged them; those already in the shaper once.
        s.waiting = shaper_.queued_total() - shaper_.queued(spool_flow) + shared_.spool->count(settings_.name);
        s.waiting_bytes += shared_.spool->bytes(settings_.name);
    }
    s.spool_rejected = spool_rejected_;
    s.offline_dropped = offline_dropped_;
    s.shared_dropped = shared_dropped_;
    s.retained_messages = retained_.size();
    s.retained_bytes = retained_.bytes();
    s.retained_dropped = retained_.dropped();
    s.service_requests = requests_.size();
    s.service_timeouts = service_timeouts_;
    s.cached_shadows = shadows_.size();
    s.throttle_waits = throttle_waits_;
    s.suback_failures = suback_failures_;
    for (const auto& [id, session] : sessions_) s.local_subscriptions += table_.filters_held(id) + local_table_.filters_held(id);
    if (shared_.spool != nullptr) {
        s.spool_messages = shared_.spool->count(settings_.name);
        s.spool_bytes = shared_.spool->bytes(settings_.name);
        if (s.spool_messages > 0) {
            // Rows of an earlier run have no time of their own here: they are at least as old as this run.
            const auto since = s.spool_messages > spool_times_.size() || spool_times_.empty() ? started_ : spool_times_.begin()->second;
            s.spool_oldest_age = std::chrono::duration_cast<std::chrono::seconds>(clock_.now() - since);
        }
    }
    s.round_trip = round_trip_;
    return s;
}

}  // namespace thingmux::thing
