# U-Boot boot script for ota's A/B scheme (mkimage -T script -d boot.cmd boot.scr).
# Needs CONFIG_BOOTCOUNT_LIMIT and CONFIG_BOOTCOUNT_ENV. The variables are the
# ones ota-agent reads and writes (libota/include/ota/device/boot.hpp):
#   ota_slot          a or b: the bank to boot
#   upgrade_available 1 during a trial (bootcount counts only then)
#   bootcount, bootlimit   U-Boot's counters; past bootlimit, altbootcmd runs
# The agent sets ota_slot to the new bank and upgrade_available=1 for a trial;
# `ota-agent boot-check` (or `run`) commits (upgrade_available=0,
# bootcount=0) or rolls back.
setenv bootlimit 3
if test "${ota_slot}" = "b"; then setenv rootpart 3; else setenv rootpart 2; fi
# ota.slot= is the boot evidence: the agent commits a trial only when the
# kernel command line names the trial slot, and never writes the slot named.
setenv bootargs "root=/dev/mmcblk0p${rootpart} rootwait ro ota.slot=${ota_slot}"
load mmc 0:${rootpart} ${kernel_addr_r} /boot/Image
load mmc 0:${rootpart} ${fdt_addr_r} /boot/board.dtb
booti ${kernel_addr_r} - ${fdt_addr_r}

# altbootcmd (run by U-Boot when bootcount > bootlimit): the trial failed to
# come up; go back to the other bank.
#   setenv altbootcmd 'if test "${ota_slot}" = "b"; then setenv ota_slot a; else setenv ota_slot b; fi; setenv upgrade_available 0; setenv bootcount 0; saveenv; run bootcmd'
