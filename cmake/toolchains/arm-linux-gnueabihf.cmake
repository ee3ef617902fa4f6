# Cross-compiles ota for 32-bit ARM, hard-float (Debian armhf: ARMv7-A, VFPv3-D16,
# Thumb-2) with Debian's cross toolchain and the :armhf -dev packages installed
# through dpkg multiarch (scripts/cross-test.sh installs both):
#   cmake -S . -B build-armhf -G Ninja -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/arm-linux-gnueabihf.cmake
# Test programs run under qemu-user (no binfmt_misc needed): ctest and
# gtest_discover_tests go through CMAKE_CROSSCOMPILING_EMULATOR.
set(OTA_CROSS_TRIPLET arm-linux-gnueabihf)
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR armv7l)
set(OTA_CROSS_QEMU qemu-arm)
# GCC's notes that std::vector<...>'s argument passing changed in GCC 7.1 on
# ARM (-Wpsabi) concern mixing objects built by GCC < 7 and >= 7: not our case.
set(CMAKE_CXX_FLAGS_INIT -Wno-psabi)
include(${CMAKE_CURRENT_LIST_DIR}/debian-multiarch.cmake)
