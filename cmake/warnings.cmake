# thingmux_warnings: an interface target every project target links, so the warning set and
# -Werror are stated once.
add_library(thingmux_warnings INTERFACE)
target_compile_options(thingmux_warnings INTERFACE -Wall -Wextra -Wpedantic -Werror
  -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align -Woverloaded-virtual
  -Wconversion -Wsign-conversion -Wno-missing-field-initializers)
# 32-bit ARM (armhf): GCC notes at every std::vector or std::map of some types that their
# parameter passing changed in GCC 7.1, an ABI note about code built with GCC 6 and older, which
# nothing here links with. Hundreds of lines that say nothing about this project.
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^arm")
  target_compile_options(thingmux_warnings INTERFACE -Wno-psabi)
endif()
# GCC 12 at -O3 (CMake's Release) warns that std::string's operator+ may copy overlapping memory
# (GCC bugs 105329 and 105651, fixed in GCC 13): a false positive inside libstdc++ that -Werror
# would turn into a failed Release build.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
  target_compile_options(thingmux_warnings INTERFACE -Wno-restrict)
endif()
