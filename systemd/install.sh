#!/usr/bin/env bash
# Installs this checkout as the site's services (run by `sudo ./setup.sh --install`; `--uninstall` removes
# them). Idempotent; run again after `git pull` to upgrade: a backup of the database first, then the code,
# the migrations, the units, and a restart.
#   /opt/sitekeeper          the code and its .venv
#   /etc/sitekeeper          sitekeeper.toml (root:sitekeeper 0640), written once from a template
#   /var/lib/sitekeeper      the database, its backups, the local API tokens (sitekeeper 0750)
set -euo pipefail
SRC="$(cd "$(dirname "$0")/.." && pwd)"
PREFIX=/opt/sitekeeper ETC=/etc/sitekeeper STATE=/var/lib/sitekeeper UNITS=/etc/systemd/system
JOURNALD=/etc/systemd/journald.conf.d/50-sitekeeper.conf
CONFIG="$ETC/sitekeeper.toml"
say() { printf '\033[1minstall:\033[0m %s\n' "$*"; }
[ "$(id -u)" -eq 0 ] || { echo "install: run as root (sudo ./setup.sh --install)" >&2; exit 2; }
systemd_runs() { [ -d /run/systemd/system ]; }
as_service() { runuser -u sitekeeper -- "$@"; }

uninstall() {
  local purge="${1:-}"
  if systemd_runs; then
    systemctl disable --now sitekeeper-kiosk sitekeeper-sync sitekeeper-edge 2>/dev/null || true
  fi
  rm -rf "$UNITS"/sitekeeper-*.service "$UNITS"/sitekeeper-*.service.d "$JOURNALD"
  systemd_runs && systemctl daemon-reload && systemctl restart systemd-journald
  rm -rf "$PREFIX"
  if [ "$purge" = "--purge" ]; then
    rm -rf "$ETC" "$STATE"
    userdel sitekeeper-kiosk 2>/dev/null || true
    userdel sitekeeper 2>/dev/null || true
    say "removed the services, the code, the config and the data"
  else
    say "removed the services and the code; kept $ETC and $STATE (the data): --uninstall --purge removes them"
  fi
}

if [ "${1:-}" = "--uninstall" ]; then uninstall "${2:-}"; exit 0; fi

# -- users: the service's, with the hardware groups this machine has; the kiosk's own ------------------------
getent passwd sitekeeper >/dev/null || useradd --system --user-group --home-dir "$STATE" --no-create-home \
  --shell /usr/sbin/nologin sitekeeper
groups=()
for g in gpio spi dialout; do getent group "$g" >/dev/null && groups+=("$g"); done
[ ${#groups[@]} -gt 0 ] && usermod -aG "$(IFS=,; echo "${groups[*]}")" sitekeeper
getent passwd sitekeeper-kiosk >/dev/null || useradd --system --user-group --no-create-home \
  --shell /usr/sbin/nologin sitekeeper-kiosk
kgroups=(sitekeeper)
for g in video render input; do getent group "$g" >/dev/null && kgroups+=("$g"); done
usermod -aG "$(IFS=,; echo "${kgroups[*]}")" sitekeeper-kiosk

# -- the data, and a backup before an upgrade ----------------------------------------------------------------
install -d -o sitekeeper -g sitekeeper -m 0750 "$STATE" "$STATE/backups"
if [ -x "$PREFIX/.venv/bin/sitekeeper" ] && [ -f "$STATE/sitekeeper.db" ] && [ -f "$CONFIG" ]; then
  backup="$STATE/backups/before-upgrade-$(date -u +%Y%m%dT%H%M%SZ).db"
  as_service "$PREFIX/.venv/bin/sitekeeper" --config "$CONFIG" backup "$backup"
  say "backed up the database to $backup"
fi

# -- the code and its .venv ----------------------------------------------------------------------------------
if [ "$SRC" != "$PREFIX" ]; then
  install -d -m 0755 "$PREFIX"
  (cd "$SRC" && tar cf - --exclude=./.venv --exclude=./.git --exclude=./test-artifacts --exclude='*.db' \
     --exclude='*.db-*' --exclude='__pycache__' --exclude='./bench-*' .) | (cd "$PREFIX" && tar xf - --no-same-owner)
  chmod 0755 "$PREFIX"  # tar gives it the checkout's own mode: a checkout in a private (0700) folder locked out the service
fi
(cd "$PREFIX" && ./setup.sh)

# -- the config, once ----------------------------------------------------------------------------------------
install -d -o root -g sitekeeper -m 0750 "$ETC"
if [ ! -f "$CONFIG" ]; then
  tz="$(timedatectl show -p Timezone --value 2>/dev/null || cat /etc/timezone 2>/dev/null || echo UTC)"
  id="site-$(hostname -s | tr -c 'A-Za-z0-9-\n' '-')-$(head -c 3 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  sed -e "s/@SITE_ID@/$id/" -e "s/@SITE_NAME@/$(hostname -s)/" -e "s|@TIMEZONE@|${tz:-UTC}|" \
    "$PREFIX/systemd/sitekeeper.toml.template" > "$CONFIG"
  say "wrote $CONFIG (site $id, time zone ${tz:-UTC}): look it over"
fi
chown root:sitekeeper "$CONFIG" && chmod 0640 "$CONFIG"
as_service "$PREFIX/.venv/bin/sitekeeper" --config "$CONFIG" init >/dev/null  # the database, its migrations

# -- the units ------------------------------------------------------------------------------------------------
install -m 0644 "$PREFIX"/systemd/sitekeeper-edge.service "$PREFIX"/systemd/sitekeeper-sync.service \
  "$PREFIX"/systemd/sitekeeper-kiosk.service "$UNITS/"
install -d "$UNITS/sitekeeper-edge.service.d"
{
  echo "# written by setup.sh --install: the hardware groups and devices this machine has"
  echo "[Service]"
  [ ${#groups[@]} -gt 0 ] && echo "SupplementaryGroups=${groups[*]}"
  for dev in /dev/spidev* /dev/gpiochip* /dev/ttyUSB* /dev/ttyACM*; do [ -e "$dev" ] && echo "DeviceAllow=$dev rw"; done
} > "$UNITS/sitekeeper-edge.service.d/hardware.conf"
# -- the logs: on an SD card, capped (a month at most, 64 MB on disk, 16 MB in RAM before a flush) ----------
install -d "$(dirname "$JOURNALD")"
cat > "$JOURNALD" <<'CONF'
# written by setup.sh --install: an SD card wears with every write; the site's logs stay small
[Journal]
SystemMaxUse=64M
SystemMaxFileSize=8M
RuntimeMaxUse=16M
MaxRetentionSec=1month
SyncIntervalSec=15m
CONF
if systemd_runs; then
  systemctl restart systemd-journald
  systemctl daemon-reload
  systemctl enable --now pcscd.socket 2>/dev/null || true
  systemctl enable sitekeeper-edge sitekeeper-sync
  systemctl restart sitekeeper-edge sitekeeper-sync
  if compgen -G "/dev/dri/card*" >/dev/null && grep -q '^\[kiosk\]' "$CONFIG"; then
    systemctl enable sitekeeper-kiosk && systemctl restart sitekeeper-kiosk
  fi
  say "services running: $(systemctl is-active sitekeeper-edge sitekeeper-sync | tr '\n' ' ')"
else
  say "systemd does not run here: the units are in $UNITS; start them where it does"
fi
ip="$(hostname -I 2>/dev/null | awk '{print $1}')"
say "next:"
say "  sudo -u sitekeeper $PREFIX/.venv/bin/sitekeeper --config $CONFIG admin add <name> --role owner"
say "  the owner's pages: http://${ip:-<this Pi>}:8080/   chargers: ws://${ip:-<this Pi>}:9000/ocpp/<charger-id>"
say "  check the site: sudo -u sitekeeper $PREFIX/.venv/bin/sitekeeper --config $CONFIG doctor"
