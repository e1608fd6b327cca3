#!/usr/bin/env bash
# Install doorbell from this checkout as a systemd service on a Raspberry Pi running
# Raspberry Pi OS Bookworm or Trixie. Run as root; safe to run again: a second run
# changes nothing and says so, a run after `git pull` upgrades in place. The owner's
# config is never overwritten.
#
#   sudo scripts/install.sh [--dry-run] [--root DIR] [--force]
#   sudo scripts/install.sh --uninstall [--purge] [--dry-run] [--root DIR]
#
#   --dry-run    print each command ("+ ...") and run none; the decisions are the
#                same as a real run's, taken from the same files
#   --root DIR   install into the file tree at DIR instead of / (see below)
#   --force      go on although the OS is not Bookworm or Trixie
#   --uninstall  stop and remove the service and /opt/doorbell; keep the encrypted
#                clips and keys (/var/lib/doorbell) and the config (/etc/doorbell)
#   --purge      with --uninstall: delete those too, and the user doorbell
#
# It installs: Debian's python3-venv python3-picamera2 python3-lgpio age; the system
# user doorbell (in the groups video and gpio, where they exist); a venv in
# /opt/doorbell/venv (--system-site-packages: it uses Debian's picamera2 and lgpio)
# holding the locked dependencies (requirements.lock, hashes checked: the versions CI
# tested; on Bookworm and Trixie it pins Debian's own numpy, so pip keeps the one
# Debian's picamera2 and simplejpeg are built against) and this checkout, built from a
# copy so that root leaves nothing in it;
# /etc/doorbell/doorbell.toml from doorbell/default.toml if there is none; the unit
# systemd/doorbell.service, enabled and started (restarted when something changed),
# and the README its Documentation= names, in /opt/doorbell/systemd.
#
# The rule for --root DIR: every file the script reads or writes is under DIR
# (etc/os-release, etc/passwd, etc/group, var/lib/dpkg, etc/doorbell,
# etc/systemd/system, opt/doorbell, var/lib/doorbell) and every decision comes from
# those files. What acts on the running system instead of on files (apt-get, useradd,
# usermod, userdel, chown, systemctl), and the venv steps (a venv works only at the
# path it was made at), are printed as "+ (skipped under --root) ..." and never run.
# Under --root it needs no root privileges; tests/test_install.py runs it so.
set -euo pipefail

usage() { sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; }
say() { echo "install: $*"; }
die() { echo "install: $*" >&2; exit 1; }

dry_run=0 root=/ force=0 uninstall=0 purge=0
while [ $# -gt 0 ]; do
  case $1 in
    --dry-run) dry_run=1 ;;
    --root) [ $# -ge 2 ] || { echo "install: --root needs a directory" >&2; exit 2; }
            root=$2; shift ;;
    --force) force=1 ;;
    --uninstall) uninstall=1 ;;
    --purge) purge=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install: unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ "$purge" = 0 ] || [ "$uninstall" = 1 ] || die "--purge only goes with --uninstall"
[ -d "$root" ] || die "--root $root: no such directory"
R=$(cd "$root" && pwd)
R=${R%/}  # "" for /: every path below is "$R/..."
src=$(cd "$(dirname "$0")/.." && pwd)
[ -n "$R" ] || [ "$dry_run" = 1 ] || [ "$(id -u)" -eq 0 ] ||
  die "run me as root: sudo $0 (or see what I would do with --dry-run)"

# run CMD...: print it, then run it unless --dry-run.
run() {
  printf '+'; printf ' %q' "$@"; echo
  [ "$dry_run" = 1 ] || "$@"
}
# live CMD...: a command on the running system, only printed under --root.
live() {
  if [ -n "$R" ]; then
    printf '+ (skipped under --root)'; printf ' %q' "$@"; echo
  else
    run "$@"
  fi
}
has_user() { grep -q "^$1:" "$R/etc/passwd" 2>/dev/null; }
has_group() { grep -q "^$1:" "$R/etc/group" 2>/dev/null; }
in_group() { grep -Eq "^$1:[^:]*:[^:]*:(.*,)?$2(,|\$)" "$R/etc/group" 2>/dev/null; }
# is-active/is-enabled ask the running systemd: never under --root
unit_is() { [ -z "$R" ] && systemctl "is-$1" --quiet doorbell 2>/dev/null; }

venv=/opt/doorbell/venv
unit=$R/etc/systemd/system/doorbell.service
conf=$R/etc/doorbell/doorbell.toml
data=$R/var/lib/doorbell
[ "$dry_run" = 0 ] || say "dry run: printing what would run, running nothing"

if [ "$uninstall" = 1 ]; then
  if [ -e "$unit" ]; then
    live systemctl disable --now doorbell
    run rm -f "$unit"
    live systemctl daemon-reload
  else
    say "no unit $unit: nothing to stop"
  fi
  if [ -e "$R/opt/doorbell" ]; then run rm -rf "$R/opt/doorbell"; else say "no $R/opt/doorbell"; fi
  if [ "$purge" = 0 ]; then
    say "keeping $data (the encrypted clips and the keys) and $R/etc/doorbell (the config)"
    say "to delete them and the user doorbell too: --uninstall --purge"
    exit 0
  fi
  say "--purge deletes, for good:"
  [ ! -e "$data" ] || say "  $data: the encrypted clips and the keys (keys/identity.age opens them)"
  [ ! -e "$R/etc/doorbell" ] || say "  $R/etc/doorbell: the config"
  ! has_user doorbell || say "  the user doorbell"
  for path in "$data" "$R/etc/doorbell"; do
    [ ! -e "$path" ] || run rm -rf "$path"
  done
  ! has_user doorbell || live userdel doorbell
  say "Debian's packages (python3-picamera2, python3-lgpio, age) stay installed"
  exit 0
fi

# 1. the OS
codename=$(sed -n 's/^VERSION_CODENAME=//p' "$R/etc/os-release" 2>/dev/null | tr -d '"')
case ${codename:-unknown} in
  bookworm|trixie) say "OS: $codename" ;;
  *) [ "$force" = 1 ] ||
       die "this OS is '${codename:-unknown}' (from $R/etc/os-release), not Raspberry Pi OS Bookworm or Trixie: doorbell is made for those; to install anyway, add --force"
     say "warning: OS '${codename:-unknown}' is not Bookworm or Trixie; going on (--force)" ;;
esac
for f in doorbell/default.toml systemd/doorbell.service requirements.lock; do
  [ -f "$src/$f" ] || die "$src/$f is missing: run me from a complete checkout"
done

# 2. Debian's packages
missing=()
for pkg in python3-venv python3-picamera2 python3-lgpio age; do
  dpkg-query --admindir="$R/var/lib/dpkg" --status "$pkg" 2>/dev/null |
    grep -qx 'Status: install ok installed' || missing+=("$pkg")
done
changed=0
if [ ${#missing[@]} -eq 0 ]; then
  say "apt packages are installed"
else
  export DEBIAN_FRONTEND=noninteractive
  live apt-get update
  # --no-install-recommends: picamera2's recommends pull in a desktop
  live apt-get install -y --no-install-recommends "${missing[@]}"
  changed=1
fi

# 3. the user
if has_user doorbell; then
  say "user doorbell exists"
else
  live useradd --system --home-dir /var/lib/doorbell --shell /usr/sbin/nologin --user-group doorbell
  changed=1
fi
for group in video gpio; do
  if has_group "$group" && ! in_group "$group" doorbell; then
    live usermod --append --groups "$group" doorbell
    changed=1
  fi
done

# 4. the venv: the locked dependencies, then this checkout without dependencies of its
# own. pip builds in the tree it is given, so it gets a copy (a tar, kept as the record
# of what is installed, requirements.lock included): root leaves no build/ in the
# checkout, and no stale build/lib can reach the venv. To change the lock: scripts/lock.
copy=(tar -C "$src" --exclude='./.*' --exclude=./build --exclude='./*.egg-info' --exclude=__pycache__
      --sort=name --mtime=@946684800 --owner=0 --group=0 --numeric-owner -cf)  # content only
installed=$R/opt/doorbell/doorbell-src.tar
staged=$R/opt/doorbell/doorbell-src.new.tar  # pip wants a name ending in .tar
if [ -x "$R$venv/bin/python" ]; then
  say "venv $R$venv exists"
else
  live python3 -m venv --system-site-packages "$R$venv"
  changed=1
fi
if [ -f "$installed" ] && "${copy[@]}" - . | cmp -s - "$installed"; then
  say "the venv has this checkout already"
else
  live "${copy[@]}" "$staged" .
  live "$R$venv/bin/python" -m pip install --quiet --require-hashes --requirement "$src/requirements.lock"
  live "$R$venv/bin/python" -m pip install --quiet --no-deps "$staged"
  live mv "$staged" "$installed"
  changed=1
fi

# 5. the config: the owner's, once there is one
if [ -e "$conf" ]; then
  say "keeping $conf"
else
  run install -D -m 0640 "$src/doorbell/default.toml" "$conf"
  live chown root:doorbell "$conf"
  changed=1
fi
live "$R$venv/bin/doorbell" config check "$conf" ||
  die "doorbell config check failed (see above): fix what it names, then run me again"

# 6. the service
if cmp -s "$src/systemd/doorbell.service" "$unit"; then
  say "unit $unit is up to date"
else
  run install -D -m 0644 "$src/systemd/doorbell.service" "$unit"
  live systemctl daemon-reload
  changed=1
fi
readme=$R/opt/doorbell/systemd/README.md  # the unit's Documentation=
cmp -s "$src/systemd/README.md" "$readme" || run install -D -m 0644 "$src/systemd/README.md" "$readme"
if unit_is active && [ "$changed" = 1 ]; then
  live systemctl restart doorbell
elif ! unit_is active || ! unit_is enabled; then
  live systemctl enable --now doorbell
else
  say "doorbell is running and up to date: nothing changed"
fi

# 7. where to go next
name=$(cat "$R/etc/hostname" 2>/dev/null || true)
[ -n "$name" ] || [ -n "$R" ] || name=$(hostname)
say "first-run setup, in a browser on the home network:"
if [ -z "$R" ]; then
  for addr in $(hostname -I 2>/dev/null); do
    case $addr in *:*) addr="[$addr]" ;; esac
    say "  https://$addr:8443/"
  done
fi
say "  https://${name:-raspberrypi}.local:8443/"
say "the browser will warn that the certificate is self-signed: check that its fingerprint is the one \`journalctl -u doorbell\` shows"
