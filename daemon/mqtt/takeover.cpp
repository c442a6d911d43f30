#include "daemon/mqtt/takeover.hpp"

namespace thingmux::mqtt {

void takeover_detector::on_connected(time_point now) noexcept {
    connected_at_ = now;
    if (attempts_ > 1) row_ = 0;  // the broker refused or missed a reconnect: it was away, not taken
    attempts_ = 0;
}

bool takeover_detector::on_end(time_point now, end_kind kind) noexcept {
    if (!connected_at_) return false;
    const bool short_lived = now - *connected_at_ < cfg_.stable_after;
    connected_at_.reset();
    attempts_ = 0;
    if (kind == end_kind::taken_over) return true;
    row_ = kind == end_kind::closed && short_lived ? row_ + 1 : 0;
    return row_ >= cfg_.threshold;
}

}  // namespace thingmux::mqtt
