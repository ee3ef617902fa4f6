# Every dependency is a Debian package (scripts/install-deps.sh installs them).
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(tl-expected REQUIRED)
find_package(CLI11 REQUIRED)
find_package(zstd REQUIRED)
find_package(nlohmann_json 3 REQUIRED)
find_package(BZip2 REQUIRED)
pkg_check_modules(DIVSUFSORT REQUIRED IMPORTED_TARGET libdivsufsort libdivsufsort64)
pkg_check_modules(SODIUM REQUIRED IMPORTED_TARGET libsodium)
# liblzma-dev: the LZMA2 entropy stage of delta patches (libota/src/delta/codec/lzma.cpp).
pkg_check_modules(LZMA REQUIRED IMPORTED_TARGET liblzma)
# zlib1g-dev: deflate streams re-encoded by delta format version 6 (libota/src/delta/codec/xz.cpp).
find_package(ZLIB REQUIRED)
pkg_check_modules(LIBARCHIVE REQUIRED IMPORTED_TARGET libarchive)
# libubootenv-dev: the U-Boot environment (libota/src/device/boot/uboot_env.cpp).
pkg_check_modules(UBOOTENV REQUIRED IMPORTED_TARGET libubootenv)
# libcurl4-openssl-dev: the agent's HTTP(S) bundle source (libota/src/device/fetch/fetch.cpp).
pkg_check_modules(CURL REQUIRED IMPORTED_TARGET libcurl)
# The device-side code paths (ota patch, later ota-agent) have a whole-process
# memory budget of a few MiB; every shared library costs resident pages for its
# relocations and data. Link the Debian static archives of libsodium and bzip2
# where they exist. libdivsufsort ships no archive; zstd stays shared because
# libzstd.a carries its own incompatible `divsufsort` symbol (zdict).
option(OTA_STATIC_DEPS "Link libsodium, bzip2, liblzma and zlib statically when Debian ships the archives" ON)
set(OTA_ZSTD zstd::libzstd_shared)
set(OTA_SODIUM PkgConfig::SODIUM)
set(OTA_BZIP2 BZip2::BZip2)
set(OTA_LZMA PkgConfig::LZMA)
set(OTA_ZLIB ZLIB::ZLIB)
if(OTA_STATIC_DEPS)
  find_library(OTA_SODIUM_ARCHIVE NAMES libsodium.a)
  if(OTA_SODIUM_ARCHIVE)
    set(OTA_SODIUM ${OTA_SODIUM_ARCHIVE})
  endif()
  # libarchive.so pulls libxml2, ICU, nettle, lzma and more (4 MiB of resident
  # pages at start-up); ota only renders tar headers, and Debian's libarchive.a
  # links that part with no further dependency. Used by the ota binary only
  # (tools/CMakeLists.txt); tests and other targets keep the shared library.
  find_library(OTA_LIBARCHIVE_ARCHIVE NAMES libarchive.a)
  find_library(OTA_BZIP2_ARCHIVE NAMES libbz2.a)
  if(OTA_BZIP2_ARCHIVE)
    set(OTA_BZIP2 ${OTA_BZIP2_ARCHIVE})
  endif()
  find_library(OTA_LZMA_ARCHIVE NAMES liblzma.a)
  if(OTA_LZMA_ARCHIVE)
    set(OTA_LZMA ${OTA_LZMA_ARCHIVE})
  endif()
  find_library(OTA_ZLIB_ARCHIVE NAMES libz.a)
  if(OTA_ZLIB_ARCHIVE)
    set(OTA_ZLIB ${OTA_ZLIB_ARCHIVE})
  endif()
endif()
if(NOT TARGET ${OTA_ZSTD})
  set(OTA_ZSTD zstd::libzstd_static)
endif()
if(OTA_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(OTA_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()
