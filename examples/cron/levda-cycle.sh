#!/usr/bin/env bash
# One assimilation cycle, as cron runs it: append the windows of one new observation file to the
# analysis store (levda resumes after the store's last committed window).
#
#   levda-cycle.sh OBS_FILE
#
# Settings (environment, or edit the defaults below):
#   LEVDA           the levda command                    (default: levda)
#   LEVDA_STORE     the analysis store                   (default: analysis.zarr)
#   LEVDA_CONFIG    the TOML config                      (required)
#   LEVDA_MODEL     --model NAME, full-state mode         (or LEVDA_CHECKPOINT for latent mode)
#   LEVDA_CHECKPOINT  --checkpoint FILE, latent mode
#   LEVDA_LOG_DIR   where summaries and rejected files go (default: logs)
#   LEVDA_CACHE_DIR JAX compilation cache and exported programs (keep it: a warm cycle is ~3x faster)
#
# Exit codes are levda's (see `levda --help`); this script adds nothing but a log line, and sets
# aside an observation file levda refused (exit 3) so the next cycle does not trip on it again.
set -u -o pipefail

OBS="${1:?usage: levda-cycle.sh OBS_FILE}"
LEVDA="${LEVDA:-levda}"
STORE="${LEVDA_STORE:-analysis.zarr}"
CONFIG="${LEVDA_CONFIG:?set LEVDA_CONFIG to the TOML config of the run}"
LOG_DIR="${LEVDA_LOG_DIR:-logs}"
mkdir -p "$LOG_DIR/rejected"

model_args=()
if [[ -n "${LEVDA_CHECKPOINT:-}" ]]; then
    model_args=(--checkpoint "$LEVDA_CHECKPOINT")
elif [[ -n "${LEVDA_MODEL:-}" ]]; then
    model_args=(--model "$LEVDA_MODEL")
fi

stamp="$(date -u +%Y%m%dT%H%M%SZ)"
summary="$LOG_DIR/summary-$stamp-$(basename "$OBS").json"
log() { echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) levda-cycle $(basename "$OBS"): $*"; }
summarise() {  # "N window(s) added, M in the store" from the --json summary
    python3 - "$1" <<'PY' 2>/dev/null || echo "see $1"
import json, sys
d = json.load(open(sys.argv[1]))
print(f"{d['windows_run']} window(s) added, {d['windows_in_store']} in the store")
PY
}

read -r -a levda_cmd <<< "$LEVDA"  # "levda", or e.g. "python3 -m levda_cli"
"${levda_cmd[@]}" assimilate "$OBS" "${model_args[@]}" -c "$CONFIG" --out "$STORE" --json -q > "$summary"
rc=$?
case $rc in
    0)   log "ok: $(summarise "$summary")" ;;
    3)   log "observation file refused (exit 3); moved to $LOG_DIR/rejected/"; mv -- "$OBS" "$LOG_DIR/rejected/" ;;
    6)   log "store locked by another run (exit 6): the previous cycle is still running; this file waits for the next cycle" ;;
    7)   log "numerical divergence (exit 7): the store keeps the windows before it; look before the next cycle" ;;
    130) log "interrupted (exit 130): whole windows are kept; the next cycle resumes" ;;
    *)   log "failed with exit $rc; see $summary and stderr above" ;;
esac
exit $rc
