// The buffer every local connection (IPC and MQTT face) reads into: one per thread, so that an
// idle connection holds no read buffer of its own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

namespace thingmux::hub {

// Bytes one read() may return.
inline constexpr std::size_t read_chunk = 64 * 1024;

// Left uninitialized: a read touches only the pages it fills, so a daemon whose clients send
// small frames never makes all of it resident.
[[nodiscard]] inline std::span<std::uint8_t> read_scratch() {
    static thread_local const std::unique_ptr<std::uint8_t[]> buffer =
        std::make_unique_for_overwrite<std::uint8_t[]>(read_chunk);
    return {buffer.get(), read_chunk};
}

}  // namespace thingmux::hub
