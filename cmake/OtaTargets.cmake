# Build policy as INTERFACE targets: link them, don't copy flags around.
add_library(ota_warnings INTERFACE)
target_compile_options(ota_warnings INTERFACE -Wall -Wextra -Wpedantic -Wshadow -Wconversion
                                              -Wno-sign-conversion)

add_library(ota_sanitizers INTERFACE)
if(OTA_SANITIZE)
  target_compile_options(ota_sanitizers INTERFACE -fsanitize=address,undefined
                                                  -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  target_link_options(ota_sanitizers INTERFACE -fsanitize=address,undefined)
endif()
if(OTA_FUZZ)
  target_compile_options(ota_sanitizers INTERFACE -fsanitize=fuzzer-no-link,address,undefined)
  target_link_options(ota_sanitizers INTERFACE -fsanitize=address,undefined)
endif()
