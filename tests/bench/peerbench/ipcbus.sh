# peerbench server side for ipcbus.  Sourced by run.sh; see README.md.
# IPCBUS_BUILD: an ipcbus build tree (default: the one this file came from).
IPCBUS_BUILD=${IPCBUS_BUILD:?set IPCBUS_BUILD to an ipcbus build directory}
PB_SERVER_NAME=ipcbusd
PB_PKGS=""
PB_TRANSPORTS="unix"          # tcp:// comes in a later version
PB_PORT=${PB_IPCBUS_PORT:-15222}

pb_server_version() { "$IPCBUS_BUILD/broker/ipcbusd" -V | awk '{print $2}'; }

pb_server_config() {
    local dir=$1
    # built-in defaults, only the socket moved into the run's folder
    PB_SERVER_CMD=("$IPCBUS_BUILD/broker/ipcbusd" -l "unix://$dir/ipcbus.sock")
    PB_ENDPOINT=unix://$dir/ipcbus.sock
}
