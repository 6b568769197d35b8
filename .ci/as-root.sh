# Sourced first by the scripts in .ci/ (they install packages, start dockerd, use network
# namespaces): as root nothing happens; otherwise the script runs again through sudo, or, on a
# host without sudo (a fresh Debian root shell has none), stops and says how to run it as root.
if [ "$(id -u)" != 0 ]; then
    script=$(readlink -f "$0")
    if command -v sudo >/dev/null 2>&1; then
        exec sudo --preserve-env=PYTHON,EGRESS_MESH_BENCH,EGRESS_MESH_REQUIRE_ALL,NO_COLOR,COLUMNS,TERM \
            "$script" "$@"
    fi
    echo "$(basename "$0"): needs root and there is no sudo here; as root run: $script $*" >&2
    exit 1
fi
