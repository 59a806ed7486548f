#!/usr/bin/env bash
# Install the ward-kiosk units (`make install`): creates the service user, renders the units with
# this checkout as @PREFIX@, and enables the agent. Run as root on the kiosk.
# WITH_SCREEN=1 also installs the Chromium kiosk-mode screen unit (needs the cage package).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dest=${SYSTEMD_DIR:-/etc/systemd/system}
screen=${WITH_SCREEN:-0}

[ "$(id -u)" = 0 ] || { echo "install.sh: run as root (sudo make install)" >&2; exit 1; }
[ -x "$here/.venv/bin/kiosk" ] || { echo "install.sh: $here/.venv is missing: run make deps first" >&2; exit 1; }

id ward-kiosk >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin --groups video,audio ward-kiosk
install -d -m 0750 -o root -g ward-kiosk /etc/ward-kiosk
install -d -m 0700 -o root -g root /etc/ward-kiosk/credentials

render() { sed "s|@PREFIX@|$here|g" "$here/systemd/$1.in" > "$dest/$1"; chmod 0644 "$dest/$1"; }
render kiosk-agent.service
if [ "$screen" = 1 ]; then
    id ward-kiosk-screen >/dev/null 2>&1 || useradd --system --create-home --shell /usr/sbin/nologin \
        --groups video,audio,input,render ward-kiosk-screen
    render kiosk-screen.service
fi
systemctl daemon-reload
systemctl enable kiosk-agent.service
if [ "$screen" = 1 ]; then systemctl enable kiosk-screen.service; fi
echo "installed. Enrol with: $here/.venv/bin/kiosk provision --config-dir /etc/ward-kiosk"
echo "then: systemctl start kiosk-agent && journalctl -fu kiosk-agent"
