#!/bin/sh
# Entrypoint of the vectorflow-api image: makes the Docker socket usable by the API's unprivileged
# user without asking the operator for the socket's group id, then runs the API as that user.
#
# Run as root (compose sets `user: root` for this), it reads the group of the mounted socket
# (`stat -c %g`), adds the user to a group with that gid (creating the group when the image has
# none), and drops to the user with setpriv before exec'ing the API: the server itself never runs
# as root. Run as another user (the image's default), it only checks that the socket is usable and
# says how to fix it when not.
#
# Arguments: none or flags (`--vf-port 9000`) run vectorflow-api with them; anything else is run in
# its place (`docker run IMAGE id -G`), after the same socket step: that is how the step is tested.
#
# Settings (environment): DOCKER_HOST (unix:///var/run/docker.sock by default; tcp:// needs no
# socket step), VF_RUNTIME=process (no socket needed), VF_RUN_AS (the user to run as: vectorflow),
# VF_API_BIN (the API binary: /usr/local/bin/vectorflow-api).
set -eu

run_as=${VF_RUN_AS:-vectorflow}
api_bin=${VF_API_BIN:-/usr/local/bin/vectorflow-api}

fail() {
    echo "vectorflow-api entrypoint: $*" >&2
    exit 2
}

if [ $# -eq 0 ] || [ "${1#-}" != "$1" ]; then
    set -- "$api_bin" "$@"
fi

# --help and --version read no socket: answer them on any host.
needs_socket=yes
case "${2:-}" in -h | --help | --version) [ "$1" = "$api_bin" ] && needs_socket=no ;; esac
[ "${VF_RUNTIME:-}" = process ] && needs_socket=no
docker_host=${DOCKER_HOST:-unix:///var/run/docker.sock}
case "$docker_host" in
    unix://*) sock=${docker_host#unix://} ;;
    *) needs_socket=no ;;  # tcp:// or http://: reached over the network, no file permissions involved
esac

# Whether the user can open the socket for reading and writing (connect(2) needs write access).
usable_by() {
    if [ "$(id -u)" = 0 ]; then
        setpriv --reuid="$1" --regid="$1" --init-groups -- sh -c 'test -r "$1" && test -w "$1"' sh "$sock"
    else
        test -r "$sock" && test -w "$sock"
    fi
}

if [ "$needs_socket" = yes ]; then
    if [ ! -S "$sock" ]; then
        fail "no Docker socket at $sock (DOCKER_HOST=$docker_host). Mount the host's socket into the" \
            "container (compose: \`volumes: [\"/var/run/docker.sock:/var/run/docker.sock\"]\`," \
            "docker run: \`-v /var/run/docker.sock:/var/run/docker.sock\`), or set DOCKER_HOST to the" \
            "engine's address."
    fi
    gid=$(stat -c %g "$sock") || fail "cannot read the group of $sock"
    if [ "$(id -u)" = 0 ]; then
        id "$run_as" >/dev/null 2>&1 || fail "no user $run_as in this image (VF_RUN_AS)"
        group=$(getent group "$gid" | cut -d: -f1) || true
        if [ -z "$group" ]; then
            # The host's docker group has a gid the image does not know: give it a name here.
            group="dockersock$gid"
            groupadd --gid "$gid" "$group" || fail "cannot create a group with gid $gid for $sock"
        fi
        # Membership through /etc/group, so that --init-groups (and `id`) see it.
        case ",$(getent group "$group" | cut -d: -f4)," in
            *",$run_as,"*) ;;
            *) usermod -a -G "$group" "$run_as" || fail "cannot add $run_as to group $group (gid $gid)" ;;
        esac
        usable_by "$run_as" || fail "$run_as cannot open $sock even in its group $gid: the socket's" \
            "mode is $(stat -c %A "$sock"); it must be readable and writable by its group (chmod 660)."
    elif ! usable_by "$(id -u)"; then
        fail "user $(id -un 2>/dev/null || id -u) cannot open the Docker socket $sock (group $gid," \
            "mode $(stat -c %A "$sock")). Run the container as root, and this entrypoint joins the" \
            "socket's group and drops to $run_as itself (compose: \`user: root\`; docker run:" \
            "\`--user root\`), or add the group yourself: \`--group-add $gid\` (compose: \`group_add: [\"$gid\"]\`)."
    fi
fi

if [ "$(id -u)" = 0 ]; then
    HOME=$(getent passwd "$run_as" | cut -d: -f6) && export HOME
    # --init-groups: the user's groups from /etc/group, now including the socket's.
    exec setpriv --reuid="$run_as" --regid="$run_as" --init-groups -- "$@"
fi
exec "$@"
