#!/usr/bin/env bash
# sitekeeper's one install script.
#   ./setup.sh          runtime: Python packages into .venv (a Pi or any Debian machine)
#   ./setup.sh --dev    also everything the tests need: dev Python packages, Node.js + the npm test peers,
#                       mosquitto (+ clients), openssl, the virtual smart-card reader (vsmartcard-vpcd) and
#                       Chromium for the page tests
#   ./setup.sh --hardware-tests   on a Pi: also pytest, to run hardware_tests/ (nothing of the CI machine's)
#   sudo ./setup.sh --install     the site's services: /opt/sitekeeper, the sitekeeper user, /etc/sitekeeper,
#                       the hardened systemd units, started (systemd/install.sh); again after git pull upgrades
#   sudo ./setup.sh --uninstall [--purge]   removes the services and the code (--purge: the data too)
# Idempotent: what is already present is skipped. Debian packages are installed with apt-get (as root, or
# through sudo when it is available).
set -euo pipefail
cd "$(dirname "$0")"

DEV=0
HW=0
case "${1:-}" in
  --install) exec "$(dirname "$0")/systemd/install.sh" ;;
  --uninstall) exec "$(dirname "$0")/systemd/install.sh" --uninstall "${2:-}" ;;
esac
for arg in "$@"; do
  case "$arg" in
    --dev) DEV=1 ;;
    --hardware-tests) HW=1 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $arg (use --dev, --hardware-tests or nothing)" >&2; exit 2 ;;
  esac
done

say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
APT_UPDATED=0
apt_install() {  # install the Debian packages among "$@" that are not installed yet
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup.sh: please install ${missing[*]} (no apt-get on this machine)" >&2; exit 1
  fi
  if [ $APT_UPDATED -eq 0 ]; then $SUDO apt-get update -qq || true; APT_UPDATED=1; fi
  say "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# -- Python ------------------------------------------------------------------------------------------
PY=""
for cand in python3.11 python3.12 python3.13 python3; do
  if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    PY="$(command -v "$cand")"; break
  fi
done
if [ -z "$PY" ]; then
  apt_install python3 python3-venv
  PY="$(command -v python3)"
fi
if ! "$PY" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  apt_install python3-venv
fi
if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $PY"
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
# the PC/SC card reader (ACR1252U / ACR122U): the pcscd service, and what pyscard needs to build from source
# (it has no Linux wheels): the PC/SC headers, swig, a C compiler and Python's headers
apt_install pcscd libpcsclite-dev swig gcc python3-dev pkg-config
# the kiosk's fonts: Noto Sans (English, Filipino, the peso sign) and Noto Sans CJK (Chinese)
apt_install fonts-noto-core fonts-noto-cjk
if [ $DEV -eq 1 ]; then
  say "installing sitekeeper with its dev and test packages into .venv"
  .venv/bin/python -m pip install -q -e '.[dev]'
elif [ $HW -eq 1 ]; then
  say "installing sitekeeper and pytest (for hardware_tests/) into .venv"
  .venv/bin/python -m pip install -q -e '.[hardware-tests]'
else
  say "installing sitekeeper into .venv"
  .venv/bin/python -m pip install -q -e .
fi

# -- a Raspberry Pi: SPI card reader (RC522) and GPIO feedback drivers ------------------------------------
if grep -qs "Raspberry Pi" /proc/device-tree/model; then
  say "Raspberry Pi: installing the SPI/GPIO drivers (spidev, lgpio, rpi-lgpio, mfrc522)"
  apt_install gcc python3-dev
  .venv/bin/python -m pip install -q -e '.[pi]'
  # mfrc522 requires RPi.GPIO, which fails on a Pi 5; rpi-lgpio provides the same API on every Pi
  .venv/bin/python -m pip install -q --no-deps mfrc522==0.0.7
  if .venv/bin/python -m pip show -q RPi.GPIO >/dev/null 2>&1; then
    .venv/bin/python -m pip uninstall -q -y RPi.GPIO
    .venv/bin/python -m pip install -q --force-reinstall --no-deps rpi-lgpio
  fi
fi

# -- test peers (dev only) ---------------------------------------------------------------------------
if [ $DEV -eq 1 ]; then
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    apt_install nodejs npm
  fi
  # a real MQTT broker for the cloud_sync tests (they start their own mosquitto on a free port; the
  # system's mosquitto service is not needed) and openssl for the tests' throwaway CA
  apt_install mosquitto mosquitto-clients openssl
  # the PC/SC tests' virtual reader: a pcscd driver whose stock config listens on all interfaces, so it is
  # for test machines only, never a Pi (the tests run their own pcscd in a private network namespace,
  # which iproute2 gives its loopback interface)
  apt_install vsmartcard-vpcd iproute2
  # the store-safety tests make a database unwritable (chattr +i) and check as another user (runuser)
  apt_install e2fsprogs util-linux
  # the page tests: Playwright drives Debian's Chromium (Playwright cannot download a browser here)
  apt_install chromium
  # the pay tests read the printed QR stickers back with a real QR decoder; the unit tests ask systemd-analyze
  apt_install zbar-tools systemd
  # bench/writes.py counts the pages the edge writes by following its writes with strace
  apt_install strace
  # the install test boots a Debian 12 made by debootstrap under a real systemd (systemd-nspawn)
  apt_install systemd-container debootstrap
  if [ ! -d tests/node/node_modules/ocpp-rpc ]; then
    say "installing the npm test peer (ocpp-rpc)"
    (cd tests/node && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi

say "done. Start a demo site with: .venv/bin/sitekeeper run"
[ $DEV -eq 1 ] && say "run the tests with: .venv/bin/pytest"
exit 0
