# make install, find_package(ota), pkg-config and Debian packages (CPack).
#   cmake --install build --prefix /usr       (or DESTDIR=... for staging)
#   cpack --config build/CPackConfig.cmake    -> ota, ota-agent, ota-modules, libota-dev .deb
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set_target_properties(ota_bootenv PROPERTIES EXPORT_NAME bootenv)
install(TARGETS ota ota_bootenv ota_warnings ota_sanitizers EXPORT otaTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY libota/include/ota DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev)
install(EXPORT otaTargets NAMESPACE ota:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/ota COMPONENT dev)
configure_package_config_file(cmake/otaConfig.cmake.in ${CMAKE_CURRENT_BINARY_DIR}/otaConfig.cmake
                              INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/ota)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/otaConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/otaConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/otaConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/ota COMPONENT dev)
# Relocatable: the prefix is found from where the .pc file is (DESTDIR, --prefix).
file(RELATIVE_PATH OTA_PC_RELATIVE_PREFIX "${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig" "${CMAKE_INSTALL_PREFIX}")
configure_file(cmake/ota.pc.in ${CMAKE_CURRENT_BINARY_DIR}/ota.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/ota.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT dev)

install(FILES completion/ota.bash DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME ota
        COMPONENT cli)
install(FILES completion/ota.bash DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME ota-agent
        COMPONENT agent)
install(FILES examples/systemd/ota-agent.service DESTINATION lib/systemd/system COMPONENT agent)
install(FILES examples/agent.json DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples COMPONENT agent)

set(CPACK_PACKAGE_NAME ota)
set(CPACK_PACKAGE_VENDOR "ota")
set(CPACK_PACKAGE_CONTACT "ota maintainers <ota@example.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Signed, delta-compressed firmware updates")
set(CPACK_GENERATOR DEB)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL cli agent modules dev)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_ENABLE_COMPONENT_DEPENDS ON)
set(CPACK_DEBIAN_CLI_PACKAGE_NAME ota)
set(CPACK_DEBIAN_AGENT_PACKAGE_NAME ota-agent)
set(CPACK_DEBIAN_MODULES_PACKAGE_NAME ota-modules)
set(CPACK_DEBIAN_DEV_PACKAGE_NAME libota-dev)
set(CPACK_DEBIAN_CLI_PACKAGE_SECTION utils)
set(CPACK_DEBIAN_AGENT_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_MODULES_PACKAGE_SECTION libs)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_COMPONENT_CLI_DESCRIPTION "ota: diff, patch, keys, build, sign, verify, publish and drive staged campaigns")
set(CPACK_COMPONENT_AGENT_DESCRIPTION "ota-agent: verified A/B installs over HTTP(S) and MQTT campaigns, commit or roll back")
set(CPACK_COMPONENT_MODULES_DESCRIPTION "ota's HTTP (libcurl, libmicrohttpd), MQTT (libmosquitto) and PKCS#11 (p11-kit) modules, loaded on first use")
set(CPACK_COMPONENT_DEV_DESCRIPTION "libota: headers, static library, CMake package and pkg-config file")
set(CPACK_COMPONENT_CLI_DEPENDS modules)
set(CPACK_COMPONENT_AGENT_DEPENDS modules)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS
    "libsodium-dev, libzstd-dev, libdivsufsort-dev, libarchive-dev, libbz2-dev, libexpected-dev, nlohmann-json3-dev, libubootenv-dev, pkg-config")
include(CPack)
