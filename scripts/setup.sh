#!/usr/bin/env bash
# Install everything ragchat needs on this machine, idempotently (a second run takes seconds):
#   .venv      the app (Python 3.11, torch 2.13.0 CPU build, ragchat with its dev extras)
#   vllm-env   the LLM server in its own venv, as the guide keeps it (scripts/start_vllm.sh --prepare-only)
#   router-env vLLM's router (vllm-router) in its own venv (scripts/start_router.sh --prepare-only)
#   apt        Debian's python3.11-doc (the sample corpus) and, with --with-browser, Chromium for UI tests
#   tests/oidc/node_modules   with --with-browser, the OpenID provider the single sign-on tests log in through
#              (npm's oidc-provider; needs Node 20)
# Usage: scripts/setup.sh [--with-browser] [--no-llm]
set -euo pipefail
cd "$(dirname "$0")/.."

with_browser=0
with_llm=1
for arg in "$@"; do
  case "$arg" in
    --with-browser) with_browser=1 ;;
    --no-llm) with_llm=0 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }

apt_packages=()
[ -d /usr/share/doc/python3.11/html ] || apt_packages+=(python3.11-doc)
if [ "$with_browser" = 1 ] && [ ! -x /usr/bin/chromium ]; then apt_packages+=(chromium); fi
if [ ${#apt_packages[@]} -gt 0 ]; then
  step "apt-get install ${apt_packages[*]}"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_packages[@]}" >/dev/null
  else
    echo "  not root: install them yourself (sudo apt-get install ${apt_packages[*]})" >&2
  fi
fi

python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
"$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
  || { echo "setup.sh: ragchat needs Python 3.11 (found $("$python" --version)); set PYTHON=..." >&2; exit 1; }

stamp=.venv/.ragchat-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  step "app environment .venv (torch 2.13.0 CPU build + ragchat[dev])"
  [ -x .venv/bin/python ] || "$python" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  # torch first, pinned, so that nothing pulls a multi-GB CUDA build.
  .venv/bin/python -m pip install -q torch==2.13.0
  .venv/bin/python -m pip install -q -e ".[dev]"
  touch "$stamp"
fi

if [ "$with_llm" = 1 ]; then
  step "LLM server environment (vllm-env) and model"
  scripts/start_vllm.sh --prepare-only
  step "vLLM's router environment (router-env)"
  scripts/start_router.sh --prepare-only
fi

if [ "$with_browser" = 1 ]; then
  oidc_stamp=tests/oidc/node_modules/.package-lock.json
  if [ ! -f "$oidc_stamp" ] || [ tests/oidc/package-lock.json -nt "$oidc_stamp" ]; then
    step "test OpenID provider (npm ci in tests/oidc)"
    if command -v npm >/dev/null; then
      npm ci --prefix tests/oidc --no-audit --no-fund --loglevel=error
    else
      echo "  npm is missing: install Node 20 (apt-get install nodejs npm) for the single sign-on tests" >&2
    fi
  fi
fi
