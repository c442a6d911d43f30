// Symbol visibility of libthingmux. The library is built with hidden visibility; only what is
// marked THINGMUX_API is part of its ABI.
#pragma once

#if defined(__GNUC__) || defined(__clang__)
#define THINGMUX_API __attribute__((visibility("default")))
#else
#define THINGMUX_API
#endif
