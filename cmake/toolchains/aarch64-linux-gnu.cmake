# Cross-compiles ota for 64-bit ARM (Debian arm64) with Debian's cross toolchain
# and the :arm64 -dev packages installed through dpkg multiarch
# (scripts/cross-test.sh installs both):
#   cmake -S . -B build-arm64 -G Ninja -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake
# Test programs run under qemu-user (no binfmt_misc needed): ctest and
# gtest_discover_tests go through CMAKE_CROSSCOMPILING_EMULATOR.
set(OTA_CROSS_TRIPLET aarch64-linux-gnu)
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(OTA_CROSS_QEMU qemu-aarch64)
include(${CMAKE_CURRENT_LIST_DIR}/debian-multiarch.cmake)
