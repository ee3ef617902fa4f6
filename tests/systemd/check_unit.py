#!/usr/bin/env python3
"""Checks examples/systemd/ota-agent.service (security review, issue 14).

1. When systemd-analyze is installed: `systemd-analyze verify` on a copy whose
   ExecStart runs /bin/true (the agent need not be installed here); any error,
   or a warning about the unit (an unknown or ignored setting), fails.
2. Always: the sandbox leaves writable every place the agent writes: its
   state directory, the boot environments (GRUB's grubenv under /boot/grub
   and the EFI system partition, a U-Boot environment file under /boot, and
   the directories holding them: the agent renames a copy over the file),
   block devices (/dev), and the absolute paths in the given agent.json
   (state_dir, banks, boot.file / boot.env_file; relative ones are the
   build-tree demo, never run under systemd).

Usage: check_unit.py UNIT AGENT_JSON...
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile


def parse_unit(path):
    settings = {}
    section = None
    with open(path) as f:
        for raw in f:
            line = raw.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            key, _, value = line.partition("=")
            settings.setdefault((section, key.strip()), []).append(value.strip())
    return settings


def verify(unit):
    tool = shutil.which("systemd-analyze")
    if not tool:
        print("systemd-analyze not installed: skipping `systemd-analyze verify`")
        return []
    errors = []
    with tempfile.TemporaryDirectory() as d:
        copy = os.path.join(d, os.path.basename(unit))
        with open(unit) as f, open(copy, "w") as out:
            for line in f:
                if line.startswith("ExecStart="):
                    line = "ExecStart=/bin/true " + line.split(" ", 1)[1] if " " in line else "ExecStart=/bin/true\n"
                out.write(line)
        r = subprocess.run([tool, "verify", copy], capture_output=True, text=True)
        text = (r.stdout + r.stderr).strip()
        if r.returncode != 0:
            errors.append("systemd-analyze verify failed (%d): %s" % (r.returncode, text))
        for line in text.splitlines():
            if os.path.basename(unit) in line and ("Unknown" in line or "ignoring" in line or "rror" in line):
                errors.append("systemd-analyze verify: " + line)
    return errors


def writable_roots(settings):
    strict = settings.get(("Service", "ProtectSystem"), [""])[-1]
    if strict not in ("strict", "full", "yes", "true"):
        return None  # not sandboxed: everything writable
    roots = ["/dev", "/proc", "/sys", "/run"]
    if strict != "strict":  # full: only /usr, /boot, /efi, /etc are read-only
        roots += ["/var", "/home", "/srv", "/opt", "/tmp", "/mnt", "/media"]
    for value in settings.get(("Service", "ReadWritePaths"), []):
        roots += [p.lstrip("-+") for p in value.split()]
    for value in settings.get(("Service", "StateDirectory"), []):
        roots += ["/var/lib/" + p for p in value.split()]
    if settings.get(("Service", "PrivateTmp"), ["no"])[-1] in ("yes", "true"):
        roots += ["/tmp", "/var/tmp"]
    return roots


def covered(path, roots):
    path = os.path.normpath(path)
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def agent_paths(config_path):
    with open(config_path) as f:
        c = json.load(f)
    paths = []
    if "state_dir" in c:
        paths.append(c["state_dir"])
    for bank in c.get("banks", {}).values():
        paths.append(bank)
    boot = c.get("boot", {})
    for key in ("file", "env_file"):
        if key in boot:
            paths.append(boot[key])
            paths.append(os.path.dirname(boot[key]))  # the copy renamed over it
    return [p for p in paths if os.path.isabs(p)]


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    unit = sys.argv[1]
    errors = verify(unit)
    settings = parse_unit(unit)
    roots = writable_roots(settings)
    if roots is not None:
        must = [
            "/var/lib/ota/state.json",  # the state directory
            "/boot/grub/grubenv", "/boot/grub",  # GRUB (BIOS)
            "/boot/efi/EFI/debian/grubenv", "/boot/efi/EFI/debian",  # GRUB on the EFI system partition
            "/boot/uboot.env", "/boot",  # a U-Boot environment file
            "/dev/mmcblk0p2", "/dev/mmcblk0",  # block-device banks, U-Boot environment on eMMC
        ]
        for config in sys.argv[2:]:
            must += agent_paths(config)
        for p in must:
            if not covered(p, roots):
                errors.append("%s: the agent writes %s, which the sandbox leaves read-only (writable: %s)"
                              % (unit, p, " ".join(sorted(set(roots)))))
    for e in errors:
        print(e, file=sys.stderr)
    if not errors:
        print("%s: verified; the agent's paths are writable" % unit)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
