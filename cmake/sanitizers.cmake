# THINGMUX_SANITIZE=ON: AddressSanitizer + UndefinedBehaviorSanitizer on every target.
# THINGMUX_FUZZ=ON: code is built with -fsanitize=fuzzer-no-link so fuzz targets get coverage.
if(THINGMUX_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
  # Tests that measure the daemon's own allocator (RSS returned to the system) say so and skip:
  # ASan's allocator keeps freed memory in quarantine and pads every block.
  add_compile_definitions(THINGMUX_SANITIZED=1)
endif()
if(THINGMUX_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "THINGMUX_FUZZ=ON needs clang: cmake -DCMAKE_CXX_COMPILER=clang++ -DTHINGMUX_FUZZ=ON ...")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()
