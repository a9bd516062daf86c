#!/bin/sh
# Install or uninstall city-telemetry the way deploy/systemd/city-telemetry.service expects it
# (docs/operations.md, "Install"). Called by `make install` / `make uninstall`; usable alone:
#
#   deploy/install.sh install   [PREFIX=/opt/city-telemetry] [DESTDIR=/staging] ...
#   deploy/install.sh uninstall [PURGE=1]
#
# Settings (environment or VAR=value arguments):
#   PREFIX     where the virtual environment goes (default /opt/city-telemetry); the unit's paths follow it
#   DESTDIR    stage everything under this folder instead of / (packaging, tests): then no user is
#              created, nothing is chowned and systemctl is not called
#   SYSCONFDIR default /etc           -> $SYSCONFDIR/city-telemetry/collector.toml (never overwritten)
#   STATEDIR   default /var/lib       -> $STATEDIR/city-telemetry (owned by the service user)
#   UNITDIR    default /etc/systemd/system (the collector's unit and the bridges')
#   BINDIR     default /usr/local/bin -> $BINDIR/city-telemetry, a link to $PREFIX/bin/city-telemetry,
#              so that the commands of the documentation run as written
#   DOCDIR     default /usr/share/doc/city-telemetry
#   PYTHON     default python3 (3.11 or newer)
#   PIP_ARGS   extra arguments for pip (e.g. --no-index --find-links /path/to/wheels on a host offline)
#   PURGE=1    uninstall also removes the config, the state (spool, dead letters, KPI state) and the user
set -eu

ACTION=${1:-}
[ $# -gt 0 ] && shift
for arg in "$@"; do
    case "$arg" in
    *=*) export "${arg?}" ;;
    *) echo "install.sh: unknown argument '$arg' (expected VAR=value)" >&2; exit 2 ;;
    esac
done

PREFIX=${PREFIX:-/opt/city-telemetry}
DESTDIR=${DESTDIR:-}
SYSCONFDIR=${SYSCONFDIR:-/etc}
STATEDIR=${STATEDIR:-/var/lib}
UNITDIR=${UNITDIR:-/etc/systemd/system}
BINDIR=${BINDIR:-/usr/local/bin}
DOCDIR=${DOCDIR:-/usr/share/doc/city-telemetry}
PYTHON=${PYTHON:-python3}
PIP_ARGS=${PIP_ARGS:-}
PURGE=${PURGE:-0}
USER_NAME=city-telemetry
UNIT=city-telemetry.service
# Every unit of deploy/systemd: the collector's, then the bridges' (installed, enabled by the operator).
UNITS=$(cd "$(dirname "$0")/systemd" && ls -- *.service)
SRC=$(cd "$(dirname "$0")/.." && pwd)

CONF_DIR="$SYSCONFDIR/city-telemetry"
STATE_DIR="$STATEDIR/city-telemetry"

say() { echo "city-telemetry: $*"; }

# rm -rf is run on these: refuse anything that is not a folder of our own.
for folder in "$PREFIX" "$DOCDIR" "$CONF_DIR" "$STATE_DIR"; do
    case "$folder" in
    /*/*) ;;
    *) echo "install.sh: '$folder' is not an absolute path at least two levels deep" >&2; exit 2 ;;
    esac
    case "$folder" in
    /usr | /usr/local | /opt | /etc | /var | /var/lib | /home | /usr/share | /usr/share/doc) echo "install.sh: refusing '$folder'" >&2; exit 2 ;;
    esac
done

live() { [ -z "$DESTDIR" ]; }  # installing onto this machine (not staging)

have_systemd() { live && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; }

need_root() {
    if live && [ "$(id -u)" != 0 ]; then
        echo "install.sh: $ACTION onto this machine needs root (or set DESTDIR= to stage it)" >&2
        exit 1
    fi
}

install_venv() {
    venv="$DESTDIR$PREFIX"
    say "virtual environment in $venv"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
        echo "install.sh: $PYTHON is older than 3.11" >&2; exit 1; }
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv"
    # shellcheck disable=SC2086 # PIP_ARGS is a list of arguments
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-compile $PIP_ARGS "$SRC"
    # Byte-code compiled now (the service user cannot write there), naming the final paths.
    if [ -n "$DESTDIR" ]; then
        "$venv/bin/python" -m compileall -q -s "$DESTDIR" "$venv/lib" >/dev/null || true
    else
        "$venv/bin/python" -m compileall -q "$venv/lib" >/dev/null || true
    fi
    if [ -n "$DESTDIR" ]; then
        # Scripts and activate files name the staging path; they will run from $PREFIX.
        grep -rlI -- "$venv" "$venv/bin" "$venv/pyvenv.cfg" 2>/dev/null | while read -r file; do
            sed -i "s#$venv#$PREFIX#g" "$file"
        done
    fi
}

install_files() {
    install -d -m 0755 "$DESTDIR$CONF_DIR" "$DESTDIR$UNITDIR" "$DESTDIR$DOCDIR" "$DESTDIR$DOCDIR/docs" \
        "$DESTDIR$DOCDIR/examples"
    install -d -m 0750 "$DESTDIR$STATE_DIR"
    if [ -e "$DESTDIR$CONF_DIR/collector.toml" ]; then
        say "keeping the existing $CONF_DIR/collector.toml (the shipped one is in $DOCDIR/examples)"
    else
        install -m 0640 "$SRC/deploy/collector.toml" "$DESTDIR$CONF_DIR/collector.toml"
        say "config $CONF_DIR/collector.toml (edit it, then: city-telemetry check-config -c ...)"
    fi
    for unit in $UNITS; do
        sed -e "s#/opt/city-telemetry#$PREFIX#g" \
            -e "s#/etc/city-telemetry#$CONF_DIR#g" \
            -e "s#/var/lib/city-telemetry#$STATE_DIR#g" \
            -e "s#/usr/share/doc/city-telemetry#$DOCDIR#g" \
            "$SRC/deploy/systemd/$unit" >"$DESTDIR$UNITDIR/$unit"
        chmod 0644 "$DESTDIR$UNITDIR/$unit"
        say "unit $UNITDIR/$unit"
    done
    install -d -m 0755 "$DESTDIR$BINDIR"
    ln -sfn "$PREFIX/bin/city-telemetry" "$DESTDIR$BINDIR/city-telemetry"
    say "command $BINDIR/city-telemetry -> $PREFIX/bin/city-telemetry"
    install -m 0644 "$SRC/README.md" "$DESTDIR$DOCDIR/README.md"
    install -m 0644 "$SRC"/docs/*.md "$DESTDIR$DOCDIR/docs/"
    install -m 0644 "$SRC/deploy/collector.toml" "$DESTDIR$DOCDIR/examples/collector.toml"
    install -m 0644 "$SRC/deploy/influxdb-notes.md" "$DESTDIR$DOCDIR/examples/influxdb-notes.md"
    cp -R "$SRC/deploy/mosquitto" "$DESTDIR$DOCDIR/examples/mosquitto"
    # The template unit for several collectors (docs/scaling.md): an example, enabled by hand.
    install -d -m 0755 "$DESTDIR$DOCDIR/examples/systemd"
    install -m 0644 "$SRC/deploy/systemd/SCALING.md" "$DESTDIR$DOCDIR/examples/systemd/SCALING.md"
    sed -e "s#/opt/city-telemetry#$PREFIX#g" \
        -e "s#/etc/city-telemetry#$CONF_DIR#g" \
        -e "s#/var/lib/city-telemetry#$STATE_DIR#g" \
        -e "s#/usr/share/doc/city-telemetry#$DOCDIR#g" \
        "$SRC/deploy/systemd/city-telemetry@.service" >"$DESTDIR$DOCDIR/examples/systemd/city-telemetry@.service"
    if [ -d "$SRC/deploy/grafana" ]; then
        cp -R "$SRC/deploy/grafana" "$DESTDIR$DOCDIR/examples/grafana"
    fi
    install -d -m 0755 "$DESTDIR$DOCDIR/examples/bridges"
    for vendor in unifi meraki; do
        install -m 0644 "$SRC/collector/bridges/$vendor/sample.toml" "$DESTDIR$DOCDIR/examples/bridges/bridge-$vendor.toml"
    done
    say "documentation in $DOCDIR"
}

create_user() {
    if ! live; then
        say "staged: the system user '$USER_NAME' is created at install time on the target (not in DESTDIR)"
        return
    fi
    if ! getent passwd "$USER_NAME" >/dev/null; then
        useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
            --shell /usr/sbin/nologin --comment "city-telemetry collector" "$USER_NAME"
        say "system user $USER_NAME created"
    fi
    chown "$USER_NAME:$USER_NAME" "$STATE_DIR"
    chown "root:$USER_NAME" "$CONF_DIR" "$CONF_DIR/collector.toml"
    chmod 0750 "$CONF_DIR"
}

do_install() {
    need_root
    was_running=""
    for unit in $UNITS; do
        if have_systemd && systemctl is-active --quiet "$unit"; then
            # Its environment is about to be replaced under it. Stopping flushes and acknowledges what
            # was received; the broker queues the rest until the start below.
            say "stopping $unit for the upgrade"
            systemctl stop "$unit"
            was_running="$was_running $unit"
        fi
    done
    install_venv
    install_files
    create_user
    if have_systemd; then
        systemctl daemon-reload
        if [ -n "$was_running" ]; then
            for unit in $was_running; do
                say "starting $unit again"
                systemctl start "$unit" || {
                    echo "install.sh: $unit did not start: journalctl -u $unit; check its config (--check)" >&2
                    exit 1
                }
            done
        else
            say "installed; start with: systemctl enable --now $UNIT"
        fi
    else
        say "installed (systemctl not called)"
    fi
}

do_uninstall() {
    need_root
    for unit in $UNITS; do
        if have_systemd; then
            systemctl disable --now "$unit" 2>/dev/null || true
        fi
        rm -f "$DESTDIR$UNITDIR/$unit"
    done
    # the command's link, if it is ours
    if [ -L "$DESTDIR$BINDIR/city-telemetry" ] && [ "$(readlink "$DESTDIR$BINDIR/city-telemetry")" = "$PREFIX/bin/city-telemetry" ]; then
        rm -f "$DESTDIR$BINDIR/city-telemetry"
    fi
    rm -rf "$DESTDIR$PREFIX" "$DESTDIR$DOCDIR"
    if have_systemd; then
        systemctl daemon-reload
    fi
    if [ "$PURGE" = 1 ]; then
        rm -rf "$DESTDIR$CONF_DIR" "$DESTDIR$STATE_DIR"
        if live && getent passwd "$USER_NAME" >/dev/null; then
            userdel "$USER_NAME"
        fi
        say "removed, with the config, the state and the user (PURGE=1)"
    else
        say "removed; kept $CONF_DIR and $STATE_DIR (spool, dead letters, KPI state) and the user: PURGE=1 removes them"
    fi
}

case "$ACTION" in
install) do_install ;;
uninstall) do_uninstall ;;
*) echo "usage: deploy/install.sh install|uninstall [PREFIX=...] [DESTDIR=...] [PURGE=1]" >&2; exit 2 ;;
esac
