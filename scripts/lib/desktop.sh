# Sourced by the scripts that run the desktop app (run.sh, e2e-desktop.sh, bench-desktop.sh):
# a free port, a virtual display, and a desktop session (D-Bus, keyring, notification daemon).
# The caller keeps a `pids` array of background processes to end.

# A TCP port free on 127.0.0.1 now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# virtual_display N: Xvfb on :N (unless one runs there already), waited for, and exported as
# DISPLAY.
virtual_display() {
    local n=$1
    if [[ ! -e /tmp/.X11-unix/X$n ]]; then
        Xvfb ":$n" -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 & pids+=($!)
        for _ in $(seq 1 50); do [[ -e /tmp/.X11-unix/X$n ]] && break; sleep 0.1; done
    fi
    export DISPLAY=:$n
}

# desktop_session CMD [ARG...]: runs CMD inside a fresh D-Bus session with an unlocked
# gnome-keyring (the app keeps API keys there; use a fresh XDG_DATA_HOME, an old keyring with
# another password would prompt) and dunst (its log to $DUNST_LOG, default nowhere; its config
# $DUNST_CONFIG, default dunst's own).
desktop_session() {
    dbus-run-session -- bash -c '
        printf fleetdeck | gnome-keyring-daemon --unlock --components=secrets >/dev/null
        dunst ${DUNST_CONFIG:+-config "$DUNST_CONFIG"} >"${DUNST_LOG:-/dev/null}" 2>&1 & dunst=$!
        rc=0; "$@" || rc=$?
        kill $dunst 2>/dev/null || true
        exit $rc
    ' _ "$@"
}
