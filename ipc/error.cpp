#include "ipc/error.hpp"

#include <string>

namespace thingmux::ipc {

namespace {

class category final : public std::error_category {
public:
    [[nodiscard]] const char* name() const noexcept override { return "thingmux.ipc"; }
    // "queue_full: the client read too slowly and was cut off"
    [[nodiscard]] std::string message(int value) const override {
        const auto code = static_cast<errc>(value);
        return std::string(to_string(code)) + ": " + describe(code);
    }
};

}  // namespace

const std::error_category& error_category() noexcept {
    static const category instance;
    return instance;
}

}  // namespace thingmux::ipc
