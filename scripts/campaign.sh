#!/usr/bin/env bash
# The paper campaign across machines: long sweeps train under ~/.cache/vaeresearch/sweeps/NAME from a
# frozen copy of the CLI (~/.cache/vaeresearch/cli/COMMIT), and their state is carried in the
# repository under paper-results/campaign/NAME, so that a new machine resumes where the last stopped.
#
#   scripts/campaign.sh start NAME [WORKERS]   freeze the CLI at HEAD (or at the commit the campaign
#                                              recorded), restore the saved state, start WORKERS
#                                              detached `vae sweep run` processes (default 2, 1 thread each)
#   scripts/campaign.sh queue NAME:INDEX...    one detached worker that trains the listed runs one after another
#                                              (INDEX as `vae sweep run --dry-run` lists them), across campaigns, each
#                                              on its campaign's frozen CLI and restored on a new machine as start does;
#                                              a campaign not started yet is planned by its first run. A run that
#                                              stops early (pause, failure) ends the queue. Two queues: two cores.
#   scripts/campaign.sh pause [NAME]           stop every queue, then SIGTERM every `vae sweep run|task`: each run
#                                              stops at the end of its epoch, after its checkpoint (waits for them);
#                                              with NAME, only the queues that hold a NAME run (all their runs) and
#                                              NAME's own sweep processes
#   scripts/campaign.sh save NAME              copy the sweep's state into paper-results/campaign/NAME:
#                                              sweep.json, every run's small files, and the checkpoint of
#                                              each run that is not finished (a finished run keeps none);
#                                              then its table (table.md, table.csv there) and its figures
#                                              (paper-results/figures/NAME) with the current CLI
#   scripts/campaign.sh status NAME            `vae sweep status` with the frozen CLI
#
# A run resumes bit-identically only on the CLI, thread count and GEMM kernel it started with; the
# first two are what this script fixes (paper-results/campaign/NAME/cli-commit), the third is in
# each run's config.json. Pause before save: a copy taken while a run writes may mix two epochs.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${VAE_CACHE:-$HOME/.cache/vaeresearch}"
usage() { sed -n '6,23p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

verb="${1:-}"; name="${2:-}"
saved="$root/paper-results/campaign/$name"
live="$cache/sweeps/$name"

frozen_cli() {   # prints the path of vae.dll frozen at the campaign's commit, building it if needed
  local commit
  if [ -f "$saved/cli-commit" ]; then commit="$(cat "$saved/cli-commit")"; else commit="$(git -C "$root" rev-parse --short HEAD)"; fi
  local dir="$cache/cli/$commit"
  if [ ! -f "$dir/vae.dll" ]; then
    local src; src="$(mktemp -d)/src"
    echo "campaign: building the CLI at $commit into $dir" >&2
    git -C "$root" worktree add --detach "$src" "$commit" >&2
    dotnet build "$src/src/Cli/Cli.csproj" -c Release -nologo -v quiet -clp:ErrorsOnly >&2
    mkdir -p "$cache/cli"
    cp -r "$src/src/Cli/bin/Release/net10.0" "$dir.tmp" && mv "$dir.tmp" "$dir"
    git -C "$root" worktree remove --force "$src" >&2
  fi
  mkdir -p "$saved"; [ -f "$saved/cli-commit" ] || echo "$commit" > "$saved/cli-commit"
  echo "$dir/vae.dll"
}

restore() {   # a new machine: the live sweep folder from the saved state (tables and figures are the saved copy's own)
  mkdir -p "$live"
  if [ -f "$saved/sweep.json" ] && [ ! -f "$live/sweep.json" ]; then
    echo "campaign: restoring $saved into $live" >&2
    (cd "$saved" && tar cf - --exclude=cli-commit --exclude=table.md --exclude=table.csv .) | (cd "$live" && tar xf -)
  fi
}

case "$verb" in
  start)
    [ -n "$name" ] || usage
    spec="$root/paper-results/specs/$name.toml"
    [ -f "$spec" ] || { echo "campaign: no spec $spec" >&2; exit 2; }
    dll="$(frozen_cli)"
    restore
    cp "$spec" "$cache/sweeps/$name.toml"
    for w in $(seq 1 "${3:-2}"); do
      (cd "$cache/sweeps" && exec setsid nohup dotnet "$dll" sweep run "$name.toml" --out "$live" --workers 1 --threads-per-run 1) \
         >> "$cache/sweeps/$name-w$w.out" 2>&1 < /dev/null &
      sleep 10   # the second worker then sees the first one's lock and takes the next run
    done
    dotnet "$dll" sweep status "$live" ;;
  queue)
    [ $# -ge 2 ] || usage
    items=()
    for item in "${@:2}"; do   # check every item, freeze its CLI and restore its state before anything trains
      name="${item%%:*}"; index="${item#*:}"
      spec="$root/paper-results/specs/$name.toml"
      [[ "$item" == *:* && "$index" =~ ^[0-9]+$ && -f "$spec" ]] || {
        echo "campaign: '$item' is not NAME:INDEX with a spec paper-results/specs/NAME.toml" >&2; exit 2; }
      saved="$root/paper-results/campaign/$name"; live="$cache/sweeps/$name"
      dll="$(frozen_cli)"; restore; cp "$spec" "$cache/sweeps/$name.toml"
      items+=("$dll" "$name" "$index")
    done
    log="$cache/sweeps/queue-$(date -u +%Y%m%dT%H%M%S)-$$.out"
    setsid nohup bash "${BASH_SOURCE[0]}" _run-queue "${items[@]}" >> "$log" 2>&1 < /dev/null &
    echo "campaign: queued ${*:2} (log $log)" >&2 ;;
  _run-queue)   # what queue starts: DLL NAME INDEX triples, in order
    shift
    while [ $# -ge 3 ]; do
      dll="$1"; name="$2"; index="$3"; shift 3
      live="$cache/sweeps/$name"
      if [ -f "$live/sweep.json" ]; then work=(sweep task "$live" --index "$index")
      else work=(sweep run "$name.toml" --out "$live" --only "$index" --workers 1 --threads-per-run 1); fi
      echo "campaign queue: $name run $index: ${work[*]} ($(date -u +%FT%TZ))"
      code=0; (cd "$cache/sweeps" && exec dotnet "$dll" "${work[@]}") || code=$?
      [ "$code" -eq 0 ] || { echo "campaign queue: $name run $index ended with exit code $code; the queue stops here"; exit "$code"; }
    done
    echo "campaign queue: done ($(date -u +%FT%TZ))" ;;
  pause)
    if [ -n "$name" ]; then   # a queue lists "DLL NAME INDEX": match NAME as a whole word of it
      pkill -TERM -f "campaign.sh _run-queue .* $name [0-9]+( |\$)" || true
      pattern="vae.dll sweep (run $name.toml|task $live )"
    else
      pkill -TERM -f "campaign.sh _run-queue" || true
      pattern='vae.dll sweep (run|task)'
    fi
    pids="$(pgrep -f "$pattern" || true)"
    [ -z "$pids" ] && { echo "campaign: nothing running" >&2; exit 0; }
    kill -TERM $pids
    while pgrep -f "$pattern" > /dev/null; do sleep 2; done
    echo "campaign: paused (pids $pids)" >&2 ;;
  save)
    [ -n "$name" ] && [ -f "$live/sweep.json" ] || usage
    if pgrep -f "vae.dll sweep (run $name.toml|task $live )" > /dev/null; then echo "campaign: $name is running; pause it first" >&2; exit 2; fi
    dll="$(frozen_cli)"
    tmp="$saved.tmp"; rm -rf "$tmp"; mkdir -p "$tmp/runs"
    cp "$live/sweep.json" "$tmp/"; cp "$saved/cli-commit" "$tmp/"
    status="$(dotnet "$dll" sweep status "$live" || true)"   # non-zero while runs are unfinished
    for run in "$live"/runs/*/; do
      id="$(basename "$run")"; mkdir -p "$tmp/runs/$id"
      find "$run" -maxdepth 1 -type f ! -name '.lock*' ! -name 'checkpoint.safetensors' -exec cp {} "$tmp/runs/$id/" \;
      if ! grep -qE "^done +$id( |\$)" <<< "$status" && [ -f "$run/checkpoint.safetensors" ]; then
        cp "$run/checkpoint.safetensors" "$tmp/runs/$id/"
      fi
    done
    rm -rf "$saved"; mv "$tmp" "$saved"
    # The table and figures from the saved runs, with the current CLI (analysis never changes a run).
    "$root/vae" sweep table "$saved" > /dev/null
    "$root/vae" sweep figures "$saved" --out "$root/paper-results/figures/$name" > /dev/null \
      || echo "campaign: no figures yet (no run of $name has finished)" >&2
    echo "$status"; du -sh "$saved" ;;
  status)
    [ -n "$name" ] || usage
    dotnet "$(frozen_cli)" sweep status "$live" || true ;;
  *) usage ;;
esac
