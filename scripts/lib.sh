# shellcheck shell=bash
# Shared helpers for scripts/test, scripts/run-demo and friends. Source it; do not run it.
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Every setup step is a small function; `step NAME fn args...` runs one and logs how long it took.

# Repository root: the directory above scripts/.
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV_DIR="${VENV_DIR:-$REPO_ROOT/.venv}"
# What `pip install -e` installs; the stamp remembers it together with pyproject.toml's hash.
VENV_EXTRAS="${VENV_EXTRAS:-test}"

export PIP_DISABLE_PIP_VERSION_CHECK=1

log() {
    printf '[%s] %s\n' "${LOG_TAG:-setup}" "$*" >&2
}

die() {
    log "error: $*"
    exit 1
}

# step LABEL COMMAND [ARGS...]: run one setup step, log its duration, fail loudly.
step() {
    local label="$1"
    shift
    local started=$SECONDS
    log "$label ..."
    if ! "$@"; then
        die "$label failed (after $((SECONDS - started))s)"
    fi
    log "$label done in $((SECONDS - started))s"
}

_sha256() {
    sha256sum "$1" | cut -d' ' -f1
}

# ensure_venv: create .venv if missing (or broken) and `pip install -e ".[test]"` into it,
# skipping the install when pyproject.toml is unchanged since the last successful install.
ensure_venv() {
    local python="${PYTHON:-python3}"
    local stamp="$VENV_DIR/.installed-pyproject.sha256"
    local want
    want="$(_sha256 "$REPO_ROOT/pyproject.toml") extras=$VENV_EXTRAS"

    # A venv whose interpreter no longer runs (moved tree, removed pyenv version) is rebuilt.
    if [[ -d "$VENV_DIR" ]] && ! "$VENV_DIR/bin/python" -c 'import sys' >/dev/null 2>&1; then
        log "venv at $VENV_DIR is broken; recreating it"
        rm -rf "$VENV_DIR"
    fi
    if [[ ! -x "$VENV_DIR/bin/python" ]]; then
        "$python" -m venv "$VENV_DIR" || return 1
    fi

    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        log "venv up to date (pyproject.toml unchanged); skipping pip install"
    else
        rm -f "$stamp"
        # Build-backend warnings are noise here; the full output is kept for when it fails.
        local pip_log="$VENV_DIR/pip-install.log"
        if ! (cd "$REPO_ROOT" && "$VENV_DIR/bin/python" -m pip install --quiet -e ".[$VENV_EXTRAS]") >"$pip_log" 2>&1; then
            tail -n 40 "$pip_log" >&2
            log "pip install failed; full output in $pip_log"
            return 1
        fi
        printf '%s\n' "$want" >"$stamp"
    fi
}

# activate_venv: put the venv first on PATH for the rest of the script.
activate_venv() {
    export VIRTUAL_ENV="$VENV_DIR"
    export PATH="$VENV_DIR/bin:$PATH"
    hash -r
}
