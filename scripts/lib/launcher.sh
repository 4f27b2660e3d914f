# What scripts/start_vllm.sh and scripts/start_router.sh share: messages, option checks, and running one
# server in the foreground (systemd-friendly: signals forwarded) or detached (log and pid files), waiting
# for its /health and stopping a detached one. Sourced, not run.
#
# The sourcing script sets PROG (its name, for messages) and SERVER (what it starts, e.g. "vLLM"), and
# before start_server: server_cmd (and optionally server_env), detach, log_file, pid_file, port, root_url,
# health_timeout, and print_ready (called once healthy). Hooks it may define: on_output_line LINE (each line
# of the server's output, foreground), on_poll (each second while waiting for /health).

say() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}

# need_value FLAG "$@": FLAG is followed by a value, not by another flag.
need_value() { [[ $# -ge 2 && -n $2 && $2 != --* ]] || die "$1 needs a value (see --help)"; }

# valid_port FLAG VALUE
valid_port() { [[ $2 =~ ^[0-9]+$ ]] && (($2 >= 1 && $2 <= 65535)) || die "$1 must be 1-65535 (got '$2')"; }

# port_busy PORT: something listens on 127.0.0.1:PORT.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# http_ok URL: a 2xx within 3 s (curl, or the Python of the server's environment where curl is missing).
http_ok() {
    if command -v curl >/dev/null 2>&1; then
        curl -fsS -o /dev/null -m 3 "$1" 2>/dev/null
    else
        "${python_bin:-python3}" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=3)" \
            "$1" 2>/dev/null
    fi
}

# print_command WORD...: the words shell-quoted on one line (what --dry-run prints).
print_command() {
    local line="" word
    for word in "$@"; do line+="$(printf '%q' "$word") "; done
    printf '%s\n' "${line% }"
}

# stop_detached: end the process group started with --detach on this port (its pid file), TERM then KILL.
stop_detached() {
    [[ -f $pid_file ]] || die "no pid file $pid_file: nothing started with --detach on port $port"
    local pid
    pid=$(<"$pid_file")
    if kill -0 -- "-$pid" 2>/dev/null; then
        say "stopping $SERVER (pid $pid)"
        kill -TERM -- "-$pid" 2>/dev/null || true
        # Wait for the whole process group (e.g. vLLM's API server, engine core and workers).
        for _ in $(seq 1 60); do
            kill -0 -- "-$pid" 2>/dev/null || break
            sleep 0.5
        done
        if kill -0 -- "-$pid" 2>/dev/null; then
            say "still running after 30 s: killing it"
            kill -KILL -- "-$pid" 2>/dev/null || true
        fi
    else
        say "pid $pid is not running"
    fi
    rm -f "$pid_file"
}

on_output_line() { :; }
on_poll() { :; }

# start_server: run "${server_env[@]}" "${server_cmd[@]}", detached (setsid: its own process group, so
# --stop ends all of it) or in the foreground (output passed through on_output_line; TERM/INT forwarded).
start_server() {
    local env_words=("${server_env[@]+"${server_env[@]}"}")
    if ((detach)); then
        mkdir -p "$(dirname "$log_file")" "$(dirname "$pid_file")"
        : >"$log_file"
        env "${env_words[@]}" setsid "${server_cmd[@]}" >>"$log_file" 2>&1 </dev/null &
        server_pid=$!
        printf '%s\n' "$server_pid" >"$pid_file"
        say "started $SERVER in the background (pid $server_pid, log $log_file); waiting for $root_url/health"
    else
        env "${env_words[@]}" "${server_cmd[@]}" > >(while IFS= read -r line; do
            printf '%s\n' "$line"
            on_output_line "$line"
        done) 2>&1 &
        server_pid=$!
        trap _forward_signal TERM INT
        say "starting $SERVER (pid $server_pid); waiting for $root_url/health"
    fi
}

_forward_signal() {
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    exit 143
}

# wait_healthy EXITED_HINT TIMEOUT_HINT: poll /health each second; if the server exits or the time runs out,
# say so (with the end of the detach log) and fail, adding the hint.
wait_healthy() {
    local started_at=$SECONDS next_note=$((SECONDS + 60)) deadline=$((SECONDS + health_timeout)) status
    until http_ok "$root_url/health"; do
        on_poll
        if ! kill -0 "$server_pid" 2>/dev/null; then
            status=0
            wait "$server_pid" || status=$?
            if ((detach)); then
                on_poll
                say "last lines of $log_file:"
                tail -n 25 "$log_file" >&2
                rm -f "$pid_file"
            fi
            die "$SERVER exited (status $status) before answering /health; $1"
        fi
        if ((SECONDS > next_note)); then
            say "still starting after $((SECONDS - started_at)) s"
            next_note=$((SECONDS + 60))
        fi
        if ((SECONDS > deadline)); then
            if ((detach)); then
                say "still not healthy; it keeps running (pid $server_pid): scripts/$PROG --stop --port $port"
            else
                kill -TERM "$server_pid" 2>/dev/null || true
            fi
            die "$SERVER did not answer $root_url/health within ${health_timeout}s; $2"
        fi
        sleep 1
    done
}

# serve EXITED_HINT TIMEOUT_HINT: start the server, wait until healthy, print_ready; then return at once
# when detached, else stay with the server and exit with its status.
serve() {
    start_server
    wait_healthy "$1" "$2"
    print_ready
    ((detach)) && exit 0
    local status=0
    wait "$server_pid" || status=$?
    exit "$status"
}
