#!/usr/bin/env bash
# Start vLLM's router (`vllm-router`, PyPI) in front of several vLLM servers, for ragchat to talk to as one.
#
# The router is the vLLM project's Rust load balancer: routing policies (cache_aware by default: a request
# goes to the worker whose prefix cache already holds most of its prompt), retries, a circuit breaker per
# worker, health checks and its own Prometheus metrics. ragchat sees it as one OpenAI-compatible server
# (/v1/models, /tokenize and streamed chat completions pass through). Run with --help for usage.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROG="start_router.sh"
ROUTER_PACKAGE="vllm-router==0.1.17"
POLICIES="cache_aware round_robin power_of_two consistent_hash random sticky_least_loaded kv_aware"
SERVER="the router"
# shellcheck source=lib/launcher.sh
source "$REPO_ROOT/scripts/lib/launcher.sh"

usage() {
    cat <<EOF
Usage: scripts/$PROG --workers URL [URL...] [OPTIONS] [-- EXTRA_ROUTER_ARGS...]

Install vLLM's router into its own virtual environment (once), start it in front of the given vLLM
servers, wait until its /health answers, and print the environment lines ragchat needs.

Options (each also settable by the environment variable shown):
  --workers URL [URL...]         the vLLM servers, e.g. http://10.0.0.5:8000 (their root, no /v1; a
                                 trailing /v1 is dropped)            RAGCHAT_ROUTER_WORKERS (space-separated)
  --policy NAME                  routing policy (default cache_aware): $POLICIES
                                                                      RAGCHAT_ROUTER_POLICY
  --host HOST                    bind address (default 127.0.0.1)     RAGCHAT_ROUTER_HOST
  --port PORT                    port (default 8001)                  RAGCHAT_ROUTER_PORT
  --metrics-port PORT            the router's own Prometheus metrics (default 29000)
                                                                      RAGCHAT_ROUTER_METRICS_PORT
  --health-check-interval SECONDS  how often the router probes each worker's /health (default 5; the
                                 router's own default is 60)          RAGCHAT_ROUTER_HEALTH_INTERVAL
  --failover-after N             failed attempts after which the router stops sending to a worker (its
                                 circuit breaker; default 2, the router's own is 10)
                                                                      RAGCHAT_ROUTER_FAILOVER_AFTER
  --retry-worker-after SECONDS   how long a failed worker is skipped before the router tries it again
                                 (default 10; the router's own is 60)  RAGCHAT_ROUTER_RETRY_WORKER_AFTER
  --venv DIR                     the router's virtual environment (default <repo>/router-env)
                                                                      RAGCHAT_ROUTER_VENV
  --detach                       run in the background: log to --log-file, pid in --pid-file, return
                                 once /health answers (prints only the env lines on stdout)
  --log-file FILE                detach log (default <repo>/.cache/run/router-PORT.log)
  --pid-file FILE                detach pid file (default <repo>/.cache/run/router-PORT.pid)
  --stop                         stop the router started with --detach on this port (pid file) and exit
  --health-timeout SECONDS       how long to wait for /health (default 120; the router answers only
                                 once every worker is healthy)
  --no-install                   fail instead of installing the router when missing
  --prepare-only                 install the router, then exit (for setup scripts and CI)
  --dry-run                      print the exact command and exit; starts nothing
  -h, --help                     this help
Anything after "--" is passed to vllm-router unchanged, e.g. -- --retry-max-retries 2

Examples:
  # two vLLM servers on one host (see scripts/start_vllm.sh --help, "Several workers"), then the router:
  scripts/start_vllm.sh --workers 2 --port 8002 --detach
  eval "\$(scripts/$PROG --workers http://127.0.0.1:8002 http://127.0.0.1:8003 --detach)"
  scripts/$PROG --workers http://gpu1:8000 http://gpu2:8000 --host 0.0.0.0 --policy round_robin
  scripts/$PROG --stop

Failover, as measured with vllm-router 0.1.17 and a worker killed: with the router's own defaults the
first requests after the kill failed (500, "Request failed: error sending request") until 10 attempts had
failed, and the router's health flag still said healthy. With --failover-after 2 the request that meets
the dead worker is retried on another one and succeeds; an answer that was streaming from the dead worker
ends (the connection is closed midway; ragchat turns that into an error event). A restarted worker gets
traffic again --retry-worker-after seconds later.

Each worker's /metrics stays the place for vLLM's figures (ragchat status reads them); the router's own
metrics (vllm_router_*) are on --metrics-port. Workers the router cannot reach at start make it wait
(up to --health-timeout); a worker that fails later is skipped until its health checks pass again.
EOF
}

# ---------------------------------------------------------------------------------------------------
# Options: flag > environment > default.
read -r -a workers <<<"${RAGCHAT_ROUTER_WORKERS:-}"
policy="${RAGCHAT_ROUTER_POLICY:-cache_aware}"
host="${RAGCHAT_ROUTER_HOST:-127.0.0.1}"
port="${RAGCHAT_ROUTER_PORT:-8001}"
metrics_port="${RAGCHAT_ROUTER_METRICS_PORT:-29000}"
health_interval="${RAGCHAT_ROUTER_HEALTH_INTERVAL:-5}"
failover_after="${RAGCHAT_ROUTER_FAILOVER_AFTER:-2}"
retry_after="${RAGCHAT_ROUTER_RETRY_WORKER_AFTER:-10}"
venv="${RAGCHAT_ROUTER_VENV:-$REPO_ROOT/router-env}"
detach=0
log_file=""
pid_file=""
stop=0
health_timeout=120
install=1
prepare_only=0
dry_run=0
extra_args=()

while [[ $# -gt 0 ]]; do
    case $1 in
    --workers)
        shift
        workers=()
        while [[ $# -gt 0 && $1 != --* ]]; do
            workers+=("$1")
            shift
        done
        ((${#workers[@]})) || die "--workers needs at least one URL (see --help)"
        ;;
    --policy) need_value "$@"; policy=$2; shift 2 ;;
    --host) need_value "$@"; host=$2; shift 2 ;;
    --port) need_value "$@"; port=$2; shift 2 ;;
    --metrics-port) need_value "$@"; metrics_port=$2; shift 2 ;;
    --health-check-interval) need_value "$@"; health_interval=$2; shift 2 ;;
    --failover-after) need_value "$@"; failover_after=$2; shift 2 ;;
    --retry-worker-after) need_value "$@"; retry_after=$2; shift 2 ;;
    --venv) need_value "$@"; venv=$2; shift 2 ;;
    --log-file) need_value "$@"; log_file=$2; shift 2 ;;
    --pid-file) need_value "$@"; pid_file=$2; shift 2 ;;
    --health-timeout) need_value "$@"; health_timeout=$2; shift 2 ;;
    --detach) detach=1; shift ;;
    --stop) stop=1; shift ;;
    --no-install) install=0; shift ;;
    --prepare-only) prepare_only=1; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; extra_args=("$@"); break ;;
    *) die "unknown option '$1' (see --help; pass vllm-router's own flags after --)" ;;
    esac
done

valid_port --port "$port"
valid_port --metrics-port "$metrics_port"
((port != metrics_port)) || die "--port and --metrics-port must differ (both $port)"
[[ $health_interval =~ ^[0-9]+$ ]] && ((health_interval >= 1)) || die "--health-check-interval must be whole seconds >= 1 (got '$health_interval')"
[[ $failover_after =~ ^[0-9]+$ ]] && ((failover_after >= 1)) || die "--failover-after must be a whole number >= 1 (got '$failover_after')"
[[ $retry_after =~ ^[0-9]+$ ]] && ((retry_after >= 1)) || die "--retry-worker-after must be whole seconds >= 1 (got '$retry_after')"
[[ $health_timeout =~ ^[0-9]+$ ]] || die "--health-timeout must be seconds (got '$health_timeout')"
[[ " $POLICIES " == *" $policy "* ]] || die "unknown policy '$policy' (choose one of: $POLICIES)"

run_dir="$REPO_ROOT/.cache/run"
log_file="${log_file:-$run_dir/router-$port.log}"
pid_file="${pid_file:-$run_dir/router-$port.pid}"
python_bin="$venv/bin/python"
router_bin="$venv/bin/vllm-router"

if ((stop)); then
    stop_detached
    exit 0
fi

ensure_venv() {
    [[ -x $router_bin ]] && return 0
    ((install)) || die "vllm-router is not installed in $venv (run without --no-install, or scripts/$PROG --prepare-only)"
    if [[ ! -x $python_bin ]]; then
        say "creating the virtual environment $venv"
        "${PYTHON:-python3}" -m venv "$venv"
    fi
    say "installing $ROUTER_PACKAGE into $venv (~20 s)"
    "$python_bin" -m pip install --quiet "$ROUTER_PACKAGE"
}

if ((prepare_only)); then
    ensure_venv
    say "ready: $venv has vllm-router"
    exit 0
fi

((${#workers[@]})) || die "no workers: pass --workers URL [URL...] (the vLLM servers' root URLs)"
for i in "${!workers[@]}"; do
    url=${workers[$i]%/}
    url=${url%/v1}
    [[ $url =~ ^https?://[^/[:space:]]+$ ]] || die "worker '${workers[$i]}' is not a server URL like http://HOST:PORT"
    workers[i]=$url
done

router_cmd=(
    "$router_bin" --host "$host" --port "$port" --worker-urls "${workers[@]}" --policy "$policy"
    --prometheus-host "$host" --prometheus-port "$metrics_port"
    --health-check-interval-secs "$health_interval"
    --cb-failure-threshold "$failover_after" --cb-timeout-duration-secs "$retry_after"
    --worker-startup-timeout-secs "$health_timeout"
    --worker-startup-check-interval 1
)
router_cmd+=("${extra_args[@]}")

if ((dry_run)); then
    print_command "${router_cmd[@]}"
    exit 0
fi

ensure_venv

client_host=$host
[[ $host == 0.0.0.0 || $host == "::" ]] && client_host=127.0.0.1
root_url="http://$client_host:$port"
port_busy "$port" && die "port $port is already in use (a router started with --detach? scripts/$PROG --stop --port $port)"
port_busy "$metrics_port" && die "metrics port $metrics_port is already in use; choose --metrics-port"

print_ready() {
    say "the router is ready at $root_url/v1 (policy $policy, ${#workers[@]} workers, metrics on :$metrics_port); configure ragchat with:"
    printf 'export LLM_BACKEND=vllm\nexport VLLM_BASE_URL=%s/v1\n' "$root_url"
}

server_cmd=("${router_cmd[@]}")
health_timeout=$((health_timeout + 10)) # the router's own startup timeout (the same value) ends first, saying why
serve "are the workers up? ${workers[*]}" "are the workers healthy? ${workers[*]}"
