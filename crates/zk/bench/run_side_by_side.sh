#!/usr/bin/env bash
# Opal's side of the side-by-side benchmark against EZKL (docs/benchmarks.md, "Zero-knowledge
# proofs vs EZKL"). Runs `opal zk prove` / `opal zk verify` on the same model.onnx and input.json
# that shared/bench/zkml/build_models.py wrote for EZKL, each in its own process under
# /usr/bin/time -v, and writes WORK/opal_results.tsv plus one summary line per model.
#
# Usage: run_side_by_side.sh WORK [model ...]        (default models: mlp cnn)
#   WORK/models/<model>/{model.onnx,input.json} must exist (build_models.py WORK/models);
#   WORK/models/<model>/calib.json, if present, is passed as --calib (calibration samples).
#   OPAL=/path/to/opal (default: $CARGO_TARGET_DIR/release/opal, else target/release/opal)
#   OPAL_SUBCMD= (empty) when OPAL is the standalone `opal_zk` example binary
#   REPS=5 (proves and verifies timed after the setup run; the median is reported)
set -u
WORK=${1:?work dir}; shift
MODELS=${*:-mlp cnn}
OPAL=${OPAL:-${CARGO_TARGET_DIR:-target}/release/opal}
REPS=${REPS:-5}
# the subcommand prefix: "zk" for the opal binary; OPAL_SUBCMD= (empty) for the standalone
# example binary (cargo build --release -p opal-zk --example opal_zk)
SUB=(); [ -n "${OPAL_SUBCMD-zk}" ] && SUB=("${OPAL_SUBCMD-zk}")
RES="$WORK/opal_results.tsv"
printf "model\tstage\trep\trc\twall_s\tcpu_s\tmax_rss_kb\tjson\n" > "$RES"

# run MODEL STAGE REP CMD... : one process under time -v; appends a row, echoes the JSON line
run() {
  local m=$1 stage=$2 rep=$3; shift 3
  local log="$WORK/models/$m/opal_${stage}_${rep}"
  /usr/bin/time -v "$@" > "$log.out" 2> "$log.time"
  local rc=$?
  local json; json=$(tail -n 1 "$log.out")
  local wall; wall=$(grep -m1 'Elapsed (wall clock)' "$log.time" | awk '{print $NF}' |
    awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
  local cpu; cpu=$(awk '/User time/ {u=$NF} /System time/ {s=$NF} END {print u+s}' "$log.time")
  local rss; rss=$(grep -m1 'Maximum resident set size' "$log.time" | awk '{print $NF}')
  printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n" "$m" "$stage" "$rep" "$rc" "$wall" "$cpu" "$rss" "$json" >> "$RES"
  if [ $rc -ne 0 ]; then echo "$m $stage failed (rc $rc):"; tail -5 "$log.time"; fi
}

for m in $MODELS; do
  d="$WORK/models/$m"
  out="$d/opal"
  rm -rf "$out"
  prove=("$OPAL" "${SUB[@]}" prove --model "$d/model.onnx" --input "$d/input.json" --out "$out")
  # optional calibration samples (used by the setup run only)
  if [ -f "$d/calib.json" ]; then prove+=(--calib "$d/calib.json"); fi
  run "$m" setup+prove 0 "${prove[@]}"
  for r in $(seq 1 "$REPS"); do run "$m" prove "$r" "${prove[@]}"; done
  # verify names the registered model it checks (here: the one this setup made)
  id=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["registered_model_id"])' "$out/setup.json")
  for r in $(seq 1 "$REPS"); do run "$m" verify "$r" "$OPAL" "${SUB[@]}" verify "$out" --model-id "$id"; done
done

# Summary: medians of the in-process timings and of the per-process peak RSS.
python3 - "$RES" <<'PYEOF'
import json, statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
by = {}
for m, stage, rep, rc, wall, cpu, rss, js in rows:
    try:
        j = json.loads(js)
    except Exception:
        j = {}
    by.setdefault((m, stage), []).append((int(rc), float(wall or 0), float(cpu or 0), int(rss or 0), j))
for m in dict.fromkeys(k[0] for k in by):
    s = by.get((m, "setup+prove"), [])
    p = by.get((m, "prove"), [])
    v = by.get((m, "verify"), [])
    med = lambda xs: statistics.median(xs) if xs else None
    print(json.dumps({
        "model": m,
        "all_ok": all(r[0] == 0 for r in s + p + v),
        "setup_s": s[0][4].get("setup_s") if s else None,
        "setup_cpu_s": s[0][4].get("setup_cpu_s") if s else None,
        "prove_s_median": med([r[4].get("prove_s", 0) for r in p]),
        "prove_cpu_s_median": med([r[4].get("prove_cpu_s") or 0 for r in p]),
        "prove_process_wall_s_median": med([r[1] for r in p]),
        "prove_process_cpu_s_median": med([r[2] for r in p]),
        "prove_peak_rss_kb_max": max([r[3] for r in s + p], default=None),
        "verify_s_median": med([r[4].get("verify_s", 0) for r in v]),
        "verify_cpu_s_median": med([r[4].get("verify_cpu_s") or 0 for r in v]),
        "verify_process_wall_s_median": med([r[1] for r in v]),
        "verify_peak_rss_kb_max": max([r[3] for r in v], default=None),
        "proof_bytes": p[0][4].get("proof_bytes") if p else None,
        "setup_bytes": p[0][4].get("setup_bytes") if p else None,
        "soundness_bits": p[0][4].get("soundness_bits") if p else None,
        "output": p[0][4].get("output") if p else None,
    }))
PYEOF
