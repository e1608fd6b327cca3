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
# It installs: Debian's python3-venv python3-picamera2 python3-lgpio age nodejs npm;
# the system user doorbell (in the groups video and gpio, where they exist); a venv in
# /opt/doorbell/venv (--system-site-packages: it uses Debian's picamera2 and lgpio)
# holding the locked dependencies (requirements.lock, hashes checked: the versions CI
# tested; on Bookworm and Trixie it pins Debian's own numpy, so pip keeps the one
# Debian's picamera2 and simplejpeg are built against) and this checkout, built from a
# copy of the files git tracks (an identity.txt or other untracked file in the
# checkout never reaches /opt; the copy, /opt/doorbell/doorbell-src*.tar, is root's,
# mode 0600) so that root leaves nothing in the checkout; the browser's age library
# (package-lock.json, `npm ci`, no install scripts) in /opt/doorbell/node_modules,
# which the service serves to the owner's browser; /etc/doorbell/doorbell.toml from
# doorbell/default.toml if there is none; the unit systemd/doorbell.service, enabled
# and started (restarted when something changed), and the README its Documentation=
# names, in /opt/doorbell/systemd. While no owner is paired it ends by printing the
# setup code and the page to type it in.
#
# What the browser library costs on the Pi (measured on Bookworm, amd64 lists; arm64
# is alike): Debian's nodejs and npm with --no-install-recommends are about 356
# packages, 22 MiB to download and 324 MiB installed (nodejs 187 MiB, libnode108
# 45 MiB, npm's own node-* packages the rest); node_modules itself (age-encryption
# 0.3.1 and its @noble and @scure packages) is 6 MiB.
#
# The rule for --root DIR: every file the script reads or writes is under DIR
# (etc/os-release, etc/passwd, etc/group, var/lib/dpkg, etc/doorbell,
# etc/systemd/system, opt/doorbell, var/lib/doorbell) and every decision comes from
# those files. What acts on the running system instead of on files (apt-get, useradd,
# usermod, userdel, chown, systemctl, runuser), the venv steps (a venv works only at
# the path it was made at) and npm ci (it fetches from the npm registry) are printed
# as "+ (skipped under --root) ..." and never run.
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
# private CMD...: as run, with umask 077: what it creates is its user's (root's) alone.
private() {
  printf '+ (umask 077)'; printf ' %q' "$@"; echo
  [ "$dry_run" = 1 ] || (umask 077 && "$@")
}
# into FILE CMD...: as private, with CMD's output written to FILE.
into() {
  local file=$1
  shift
  printf '+ (umask 077)'; printf ' %q' "$@"; printf ' > %q\n' "$file"
  [ "$dry_run" = 1 ] || (umask 077 && "$@" > "$file")
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
  say "Debian's packages (python3-picamera2, python3-lgpio, age, nodejs, npm) stay installed"
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
for f in doorbell/default.toml systemd/doorbell.service requirements.lock package.json \
         package-lock.json; do
  [ -f "$src/$f" ] || die "$src/$f is missing: run me from a complete checkout"
done

# 2. Debian's packages
missing=()
for pkg in python3-venv python3-picamera2 python3-lgpio age nodejs npm; do
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
# The copy holds only the files git tracks (listed in doorbell-src.files): a key
# exported into the checkout, or anything else untracked, never reaches /opt. Every
# doorbell-src* file is root's, mode 0600.
git_src() { git -c safe.directory="$src" -C "$src" "$@"; }
tracked=0
if command -v git >/dev/null 2>&1 &&
   [ "$(git_src rev-parse --show-toplevel 2>/dev/null)" = "$(cd "$src" && pwd -P)" ]; then
  tracked=1
else
  say "warning: $src is not a git checkout: packing every file in it but dot-files, build leftovers and node_modules (a key left there would be packed too, for root's eyes only)"
fi
# source_files: the files to pack, NUL-separated: those git tracks and that exist (not
# folders: a submodule is not packed), or, outside a git checkout, every file but the
# excluded ones.
source_files() {
  if [ "$tracked" = 1 ]; then
    git_src ls-files -z | while IFS= read -r -d '' f; do
      [ -d "$src/$f" ] || [ ! -e "$src/$f" ] || printf '%s\0' "$f"
    done
  else
    (cd "$src" && find . -mindepth 1 \( -name '.*' -o -name build -o -name '*.egg-info' \
       -o -name __pycache__ -o -name node_modules \) -prune -o ! -type d -print0 | LC_ALL=C sort -z)
  fi
}
pack=(tar -C "$src" --null --no-recursion --mtime=@946684800 --owner=0 --group=0 --numeric-owner)  # content only
installed=$R/opt/doorbell/doorbell-src.tar
staged=$R/opt/doorbell/doorbell-src.new.tar  # pip wants a name ending in .tar
listed=$R/opt/doorbell/doorbell-src.files
if [ -x "$R$venv/bin/python" ]; then
  say "venv $R$venv exists"
else
  live python3 -m venv --system-site-packages "$R$venv"
  changed=1
fi
if [ -f "$installed" ] && source_files | "${pack[@]}" -T - -cf - | cmp -s - "$installed"; then
  say "the venv has this checkout already"
else
  [ -d "$R/opt/doorbell" ] || run install -d -m 0755 "$R/opt/doorbell"
  [ ! -e "$staged" ] || run rm -f "$staged"  # left by a run that failed: tar keeps a mode
  into "$listed" source_files
  private "${pack[@]}" -T "$listed" -cf "$staged"
  live "$R$venv/bin/python" -m pip install --quiet --require-hashes --requirement "$src/requirements.lock"
  live "$R$venv/bin/python" -m pip install --quiet --no-deps "$staged"
  live mv "$staged" "$installed"
  changed=1
fi
for f in "$R"/opt/doorbell/doorbell-src*; do  # made by an older install.sh, or by another umask
  if [ -f "$f" ] && [ "$(stat -c %a "$f")" != 600 ]; then run chmod 0600 "$f"; fi
done

# 4b. the browser's age library: the pages decrypt clips with age-encryption and the
# @noble and @scure packages it needs, which the service serves from
# /opt/doorbell/node_modules (the unit's DOORBELL_NODE_MODULES). npm ci installs exactly
# what package-lock.json says (integrity hashes checked) and runs no install scripts.
# Public library code: root's, world-readable. Skipped when the lock did not change.
npm_home=$R/opt/doorbell
npm_done=$npm_home/node_modules.lock  # the lock node_modules was installed from
if [ -d "$npm_home/node_modules" ] && cmp -s "$src/package-lock.json" "$npm_done"; then
  say "node_modules has this package-lock.json already"
else
  run install -D -m 0644 "$src/package.json" "$npm_home/package.json"
  run install -D -m 0644 "$src/package-lock.json" "$npm_home/package-lock.json"
  live npm ci --prefix "$npm_home" --ignore-scripts --omit=dev --no-audit --no-fund
  live chmod -R u=rwX,go=rX "$npm_home/node_modules"
  live install -m 0644 "$src/package-lock.json" "$npm_done"
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

# 7. where to go next: while no owner is paired, the setup code and the page to type it in
name=$(cat "$R/etc/hostname" 2>/dev/null || true)
[ -n "$name" ] || [ -n "$R" ] || name=$(hostname)
paired=0
python3 -c 'import json, sys; sys.exit(0 if json.load(open(sys.argv[1])).get("owners") else 1)' \
  "$data/keys/owners.json" 2>/dev/null && paired=1
page=""
if [ "$paired" = 1 ]; then
  say "open the doorbell in a browser on the home network:"
else
  page=setup
  say "pair the first owner: open one of these in a browser on the home network and type the setup code below:"
fi
if [ -z "$R" ]; then
  for addr in $(hostname -I 2>/dev/null); do
    case $addr in *:*) addr="[$addr]" ;; esac
    say "  https://$addr:8443/$page"
  done
fi
say "  https://${name:-raspberrypi}.local:8443/$page"
if [ "$paired" = 0 ]; then
  live runuser -u doorbell -- "$venv/bin/doorbell" setup-code --data-dir /var/lib/doorbell ||
    say "no setup code yet: once the service runs, sudo -u doorbell $venv/bin/doorbell setup-code"
fi
say "the browser will warn that the certificate is self-signed: check that its fingerprint is the one \`journalctl -u doorbell\` shows"
