# peerbench server side for ipcbus.  Sourced by run.sh; see README.md.
# IPCBUS_BUILD: an ipcbus build tree (default: the one this file came from).
IPCBUS_BUILD=${IPCBUS_BUILD:?set IPCBUS_BUILD to an ipcbus build directory}
PB_SERVER_NAME=ipcbusd
PB_PKGS=""
PB_TRANSPORTS="unix tcp"
PB_PORT=${PB_IPCBUS_PORT:-15222}

pb_server_version() { "$IPCBUS_BUILD/broker/ipcbusd" -V | awk '{print $2}'; }

pb_server_config() {
    local dir=$1 tr=$2
    # built-in defaults, only the socket moved into the run's folder (or a
    # loopback TCP port; no token: the peers run without authentication too)
    if [ "$tr" = tcp ]; then
        PB_SERVER_CMD=("$IPCBUS_BUILD/broker/ipcbusd" -l "tcp://127.0.0.1:$PB_PORT")
        PB_ENDPOINT=tcp://127.0.0.1:$PB_PORT
    else
        PB_SERVER_CMD=("$IPCBUS_BUILD/broker/ipcbusd" -l "unix://$dir/ipcbus.sock")
        PB_ENDPOINT=unix://$dir/ipcbus.sock
    fi
}
