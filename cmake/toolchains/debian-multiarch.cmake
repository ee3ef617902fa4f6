# Shared part of the Debian cross toolchain files (aarch64-linux-gnu.cmake,
# arm-linux-gnueabihf.cmake), which set OTA_CROSS_TRIPLET, CMAKE_SYSTEM_NAME,
# CMAKE_SYSTEM_PROCESSOR and OTA_CROSS_QEMU before including it.
#
# Debian's cross compilers (crossbuild-essential-<arch>) keep the target's C
# library in /usr/<triplet>; the -dev packages of the libraries (libzstd-dev:arm64, ...)
# install into the multiarch directories /usr/lib/<triplet> and /usr/include
# (headers are shared, or arch-qualified under /usr/include/<triplet>).
set(CMAKE_C_COMPILER ${OTA_CROSS_TRIPLET}-gcc)
set(CMAKE_CXX_COMPILER ${OTA_CROSS_TRIPLET}-g++)
# The multiarch library directory (/usr/lib/<triplet>) for find_library and
# find_package(... CONFIG): CMake also derives it from the compiler, set it anyway.
set(CMAKE_LIBRARY_ARCHITECTURE ${OTA_CROSS_TRIPLET})

# The target's own root first (libc.a, libstdc++), then / (multiarch): the
# host's /usr/lib/x86_64-linux-gnu is never searched because
# CMAKE_LIBRARY_ARCHITECTURE selects /usr/lib/<triplet>. Programs (ninja,
# python3, the peers of the tests) are the build machine's.
set(CMAKE_FIND_ROOT_PATH /usr/${OTA_CROSS_TRIPLET})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

# pkg-config: only the target's .pc files (and the architecture-independent ones).
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/${OTA_CROSS_TRIPLET}/pkgconfig:/usr/share/pkgconfig)
set(ENV{PKG_CONFIG_PATH} "")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "")

# Programs built for the target run under qemu-user. -L makes it load the
# target's dynamic loader from the cross toolchain's root (/usr/<triplet>/lib),
# and LD_LIBRARY_PATH the C library of the same build beside it, the one the
# programs were linked against: the multiarch libc6:<arch> in /usr/lib/<triplet>
# (a dependency of the :<arch> -dev packages) is a different Debian revision,
# and glibc's loader and libc of different builds must not be mixed (a cross
# ld.so 2.36-8 with libc.so.6 2.36-9+deb12u14 loops for ever in
# pthread_create's stack cache). The other shared libraries come from
# /usr/lib/<triplet> (multiarch). Host programs that the tests start (tar,
# zstd, sh) skip the foreign libraries in LD_LIBRARY_PATH.
find_program(OTA_CROSS_QEMU_PATH NAMES ${OTA_CROSS_QEMU} ${OTA_CROSS_QEMU}-static)
if(OTA_CROSS_QEMU_PATH)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${OTA_CROSS_QEMU_PATH} -L /usr/${OTA_CROSS_TRIPLET}
                                    -E LD_LIBRARY_PATH=/usr/${OTA_CROSS_TRIPLET}/lib)
endif()
