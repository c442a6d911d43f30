# CMake toolchain for a cross build against a sysroot made by `scripts/bootstrap.sh --cross ARCH`
# (docs/packaging.md). packaging/build-deb.sh --arch and scripts/cross-test.sh use it, with
# THINGMUX_SYSROOT, THINGMUX_CROSS_TRIPLET and THINGMUX_CROSS_QEMU set by scripts/lib/cross.sh.
foreach(var THINGMUX_SYSROOT THINGMUX_CROSS_TRIPLET THINGMUX_CROSS_QEMU)
  if("$ENV{${var}}" STREQUAL "")
    message(FATAL_ERROR "cmake/cross-sysroot.cmake: ${var} is not set; build through "
      "packaging/build-deb.sh --arch ARCH or scripts/cross-test.sh ARCH")
  endif()
endforeach()
set(triplet $ENV{THINGMUX_CROSS_TRIPLET})

set(CMAKE_SYSTEM_NAME Linux)
string(REGEX MATCH "^[^-]+" CMAKE_SYSTEM_PROCESSOR "${triplet}")
# The same names debhelper gives for a cross build, so that both builds share ccache entries.
set(CMAKE_C_COMPILER ${triplet}-gcc)
set(CMAKE_CXX_COMPILER ${triplet}-g++)
set(CMAKE_LIBRARY_ARCHITECTURE ${triplet})
set(CMAKE_SYSROOT $ENV{THINGMUX_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# Tests (add_test, gtest_discover_tests) run the target's programs under qemu-user, whose -L
# makes the target's dynamic loader and libraries come from the sysroot.
set(CMAKE_CROSSCOMPILING_EMULATOR /usr/bin/$ENV{THINGMUX_CROSS_QEMU} -L ${CMAKE_SYSROOT})

# pkg-config (libsystemd) reads the sysroot's .pc files and prefixes their paths with it.
# debhelper names /usr/bin/${triplet}-pkg-config, which Debian 12 ships only with a package this
# build does not need; the plain pkg-config does the same with these two variables.
set(PKG_CONFIG_EXECUTABLE /usr/bin/pkg-config CACHE FILEPATH "pkg-config for the sysroot" FORCE)
set(ENV{PKG_CONFIG_LIBDIR} "${CMAKE_SYSROOT}/usr/lib/${triplet}/pkgconfig:${CMAKE_SYSROOT}/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "${CMAKE_SYSROOT}")
