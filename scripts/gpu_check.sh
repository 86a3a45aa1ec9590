#!/usr/bin/env bash
# Every rlrun family for a few steps on the GPU, beside the same command on the CPU.
#
#   scripts/gpu_check.sh             # on a CUDA machine: device=cuda vs device=cpu (< 10 min)
#   scripts/gpu_check.sh --dry-run   # anywhere: the same commands, device=cpu, tiny budgets
#   scripts/gpu_check.sh --only ppo,lm_torchrun   # a subset (names as in the table)
#
# What it runs, each through rlrun's own CLI (`python -m rlrun`), so device=cuda goes through
# rlrun.core.device.resolve_device and torchrun through rlrun.core.distributed:
# - the NumPy families (bandits, tabular TD, n-step TD, DP, MC) with device=auto, which is
#   their CPU (device=cuda is refused for them, by design): one run each, no GPU column;
# - PPO, A2C, DQN, SAC, TD3, DDPG, the LM (dense and MoE), the text classifier and DDPM with
#   device=cuda, then
#   the same command with device=cpu;
# - the LM and DDPM under `torchrun --standalone --nproc_per_node=<GPUs>` (rlrun joins a
#   process group with NCCL for CUDA tensors, rlrun.core.distributed.setup; one GPU means one
#   process, which rlrun runs as a plain run: NCCL needs two GPUs or more);
# - SAC with algo.compile=true: torch.compile of its critic and actor updates (CUDA graphs,
#   "reduce-overhead", on a GPU; rlrun.rl.training.maybe_compile).
# Then a table: steps/s of the whole run (results.json's steps / wall_time_s, start-up and
# the final evaluation included) and the throughput the loop logs (charts/SPS, tokens/s,
# images/s), for the GPU and the CPU, and their ratio.
#
# --dry-run (or DRY_RUN=1): device=cpu, tiny budgets, torchrun with 2 CPU processes (gloo, a
# real process group), no CPU column; CI runs it (tests/test_gpu_check.py). Without a GPU and
# without --dry-run: one line, exit 2. Exit 1 when any command fails, naming each.
# PYTHON=... picks the interpreter (default: .venv/bin/python, else python3);
# GPU_CHECK_DIR=... keeps the run dirs and logs there (default: a temporary dir, removed);
# GPU_CHECK_TIMEOUT=150 limits each command, GPU_CHECK_BUDGET=540 the whole check (seconds).
set -uo pipefail
cd "$(dirname "$0")/.."
PROG=gpu_check

DRY=${DRY_RUN:-0}
ONLY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --only) [ $# -ge 2 ] || { echo "$PROG: error: --only needs a list of names" >&2; exit 2; }
            ONLY=$2; shift ;;
    --only=*) ONLY=${1#--only=} ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "$PROG: error: unknown argument '$1' (use --dry-run, --only NAMES)" >&2; exit 2 ;;
  esac
  shift
done
[ "$DRY" = 0 ] || [ "$DRY" = 1 ] || { echo "$PROG: error: DRY_RUN=$DRY must be 0 or 1" >&2; exit 2; }

if [ -n "${PYTHON:-}" ]; then PY=$PYTHON
elif [ -x .venv/bin/python ]; then PY=.venv/bin/python
else PY=python3
fi

# ---- the machine ---------------------------------------------------------------------------
if [ "$DRY" = 1 ]; then
  DEV=cpu
  NPROC=2
else
  NGPU=0
  command -v nvidia-smi >/dev/null 2>&1 && NGPU=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
  if [ "$NGPU" -lt 1 ]; then
    echo "$PROG: error: no GPU here (nvidia-smi lists none): run it on a CUDA machine, or" \
         "'scripts/gpu_check.sh --dry-run' to rehearse on the CPU" >&2
    exit 2
  fi
  if ! why=$("$PY" -c "import torch
if torch.version.cuda is None: print('torch', torch.__version__, 'is a CPU build')
elif not torch.cuda.is_available(): print('torch.cuda.is_available() is False')" 2>&1) \
     || [ -n "$why" ]; then
    echo "$PROG: error: $NGPU GPU(s) listed but torch cannot use them: ${why##*$'\n'}" \
         "(install a CUDA build of torch)" >&2
    exit 2
  fi
  DEV=cuda
  NPROC=$NGPU
fi

WORK=${GPU_CHECK_DIR:-}
if [ -z "$WORK" ]; then
  WORK=$(mktemp -d)
  trap 'rm -rf "$WORK"' EXIT
fi
mkdir -p "$WORK"
MANIFEST=$WORK/manifest.tsv
: > "$MANIFEST"
STEP_TIMEOUT=${GPU_CHECK_TIMEOUT:-150}  # seconds per command: one hang must not eat the lease
# seconds for the whole check (a lent GPU machine gives about 10 minutes): commands not started
# by then are listed as not run, and the check fails
BUDGET=${GPU_CHECK_BUDGET:-540}

"$PY" - "$DEV" "$NPROC" <<'EOF'
import sys
from importlib.metadata import version

dev, nproc = sys.argv[1], sys.argv[2]
print(f"torch {version('torch')}, device={dev}, torchrun processes={nproc}")
if dev == "cuda":
    import torch

    print(f"  CUDA build {torch.version.cuda}")
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        print(f"  cuda:{i} {p.name}, {p.total_memory / 2**30:.0f} GiB, capability {p.major}.{p.minor}")
    import torch.distributed as dist
    nccl = dist.is_nccl_available()
    print(f"  NCCL available: {nccl}" + (f", version {torch.cuda.nccl.version()}" if nccl else ""))
    if int(nproc) < 2:
        print("  one GPU: torchrun runs one process, a plain run (no process group, no NCCL)")
EOF

FAILED=()
COMMON=(logger.progress=none checkpoint_every_s=0 seed=0)

# run NAME DEVICE LAUNCH ARGS...: one rlrun command, its run dir and outcome in the manifest
run() {
  local name=$1 dev=$2 launch=$3
  shift 3
  local dir=$WORK/$name-$dev log=$WORK/$name-$dev.log cmd
  if [ "$launch" = torchrun ]; then
    cmd=("$PY" -m torch.distributed.run --standalone --nproc_per_node="$NPROC" -m rlrun)
  else
    cmd=("$PY" -m rlrun)
  fi
  cmd+=("$@" "${COMMON[@]}" "hydra.run.dir=$dir")
  if [ "$SECONDS" -ge "$BUDGET" ]; then
    echo "  $name ($dev) not run: past the ${BUDGET}s budget (GPU_CHECK_BUDGET)"
    FAILED+=("$name ($dev) not run")
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$dev" "$dir" "skip" 0 >> "$MANIFEST"
    return
  fi
  [ "$dev" = numpy ] && cmd+=(device=auto) || cmd+=("device=$dev")
  echo "+ ${cmd[*]}" | sed "s#^+ $PY -m torch.distributed.run#+ torchrun#; s#^+ $PY -m rlrun#+ rlrun#"
  local t0=$SECONDS rc
  timeout -k 10 "$STEP_TIMEOUT" "${cmd[@]}" > "$log" 2>&1
  rc=$?
  if [ $rc -ne 0 ]; then
    [ $rc -eq 124 ] && echo "  timed out after ${STEP_TIMEOUT}s" | tee -a "$log"
    echo "  $name ($dev) failed, exit $rc; the end of its output:"
    tail -n 15 "$log" | sed 's/^/  | /'
    FAILED+=("$name ($dev)")
  fi
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$dev" "$dir" "$rc" "$((SECONDS - t0))" >> "$MANIFEST"
}

# check NAME KIND "ARGS" "FULL BUDGET" "DRY BUDGET": KIND is numpy (one run on the CPU),
# torch (device=cuda, then device=cpu) or torchrun (the same, under torchrun)
check() {
  local name=$1 kind=$2 args=$3 full=$4 dry=$5
  if [ -n "$ONLY" ] && [[ ",$ONLY," != *",$name,"* ]]; then return; fi
  local budget=$full
  [ "$DRY" = 1 ] && budget=$dry
  # shellcheck disable=SC2086  # the argument strings are word lists
  if [ "$kind" = numpy ]; then
    run "$name" numpy plain $args $budget
    return
  fi
  local launch=plain
  [ "$kind" = torchrun ] && launch=torchrun
  run "$name" "$DEV" "$launch" $args $budget
  [ "$DEV" = cpu ] || run "$name" cpu "$launch" $args $budget
}

RL_EVAL="algo.eval_every=0 algo.eval_episodes=2"
OFF_POLICY="$RL_EVAL algo.log_every=100"
LM_ARGS="algo=lm algo.eval_every=0 algo.eval_batches=2 algo.sample_chars=0 algo.log_every=10"
DDPM_ARGS="experiment=ddpm/digits algo.eval_samples=0 algo.sample_every=0 algo.grid_samples=4 algo.log_every=10"

# NumPy families: the fig2_2 testbed, the book's tabular tasks
check bandits numpy "algo=epsilon_greedy algo.epsilon=0.1" \
  "env.num_runs=2000 env.steps=1000" "env.num_runs=100 env.steps=100"
check td_control numpy "algo=q_learning" "algo.episodes=500" "algo.episodes=20"
check td_prediction numpy "algo=td0" "algo.episodes=100" "algo.episodes=10"
check n_step_td numpy "algo=n_step_td" "algo.episodes=100" "algo.episodes=10"
check dp numpy "algo=value_iteration" "" ""
check mc numpy "algo=mc_control_es" "algo.episodes=20000" "algo.episodes=2000"
# deep RL
check ppo torch "algo=ppo env=CartPole-v1 $RL_EVAL" "algo.total_steps=16384" "algo.total_steps=512"
check a2c torch "algo=a2c env=CartPole-v1 $RL_EVAL" "algo.total_steps=8000" "algo.total_steps=400"
check dqn torch "algo=dqn env=CartPole-v1 $OFF_POLICY" \
  "algo.total_steps=3000 algo.learning_starts=1000" "algo.total_steps=600 algo.learning_starts=300"
check sac torch "algo=sac env=Pendulum-v1 $OFF_POLICY" \
  "algo.total_steps=1500 algo.learning_starts=500" "algo.total_steps=300 algo.learning_starts=200"
check td3 torch "algo=td3 env=Pendulum-v1 $OFF_POLICY" \
  "algo.total_steps=1500 algo.learning_starts=500" "algo.total_steps=300 algo.learning_starts=200"
check ddpg torch "algo=ddpg env=Pendulum-v1 $OFF_POLICY" \
  "algo.total_steps=1500 algo.learning_starts=500" "algo.total_steps=300 algo.learning_starts=200"
# torch.compile of one deep RL update (SAC's critic and actor losses)
check sac_compile torch "algo=sac env=Pendulum-v1 $OFF_POLICY algo.compile=true" \
  "algo.total_steps=1500 algo.learning_starts=500" "algo.total_steps=300 algo.learning_starts=200"
# transformers and diffusion, alone and under torchrun
check lm torch "$LM_ARGS" "algo.total_steps=200" "algo.total_steps=10 algo.batch_size=8"
check lm_moe torch "$LM_ARGS network.ffn=mixtral" "algo.total_steps=200" \
  "algo.total_steps=10 algo.batch_size=8"
check lm_torchrun torchrun "$LM_ARGS" "algo.total_steps=200" "algo.total_steps=10 algo.batch_size=8"
check text_classifier torch "algo=text_classifier algo.eval_every=0 algo.log_every=10" \
  "algo.total_steps=200" "algo.total_steps=10 algo.batch_size=8"
check ddpm torch "$DDPM_ARGS" "algo.total_steps=50" "algo.total_steps=10 algo.batch_size=8 algo.timesteps=20"
check ddpm_torchrun torchrun "$DDPM_ARGS" "algo.total_steps=50" \
  "algo.total_steps=10 algo.batch_size=8 algo.timesteps=20"

# ---- the table -----------------------------------------------------------------------------
"$PY" - "$MANIFEST" "$DEV" <<'EOF'
import json, sys
from pathlib import Path

manifest, dev = sys.argv[1], sys.argv[2]
RATES = (("charts/tokens_per_s", "tok/s"), ("charts/images_per_s", "img/s"), ("charts/SPS", "SPS"))
rows = {}
for line in Path(manifest).read_text().splitlines():
    name, device, run_dir, rc, secs = line.split("\t")
    res = Path(run_dir) / "results.json"
    rec = json.loads(res.read_text()) if rc == "0" and res.is_file() else None
    rows.setdefault(name, {})[device] = (rec, rc, int(secs))

def cells(entry):
    """(steps/s of the whole run, the loop's logged throughput, its number) or failures."""
    if entry is None:
        return "-", "-", None
    rec, rc, secs = entry
    if rec is None:
        return ("not run (time)" if rc == "skip" else f"FAILED (exit {rc})"), "-", None
    sps = rec["steps"] / rec["wall_time_s"] if rec["wall_time_s"] else float("nan")
    for tag, unit in RATES:
        if tag in rec["metrics"]:
            v = rec["metrics"][tag]["last"]
            return f"{sps:,.0f}", f"{v:,.0f} {unit}", v
    return f"{sps:,.0f}", "-", sps

gpu = dev != "cpu"
head = ["check", "device", "steps/s (run)", "logged"]
if gpu:
    head += ["CPU steps/s (run)", "CPU logged", "GPU/CPU"]
print("\n| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
for name, by_dev in rows.items():
    if "numpy" in by_dev:
        s, logged, _ = cells(by_dev["numpy"])
        out = [name, "numpy (CPU)", s, logged] + (["", "", ""] if gpu else [])
    else:
        s, logged, v = cells(by_dev.get(dev))
        out = [name, dev, s, logged]
        if gpu:
            cs, clogged, cv = cells(by_dev.get("cpu"))
            ratio = f"{v / cv:.2f}x" if v and cv else "-"
            out += [cs, clogged, ratio]
    print("| " + " | ".join(out) + " |")
print("\nsteps/s (run): results.json's steps / wall_time_s (start-up and final evaluation"
      " included; steps are env steps, episodes for tabular TD and MC, sweeps for DP);"
      " logged: the loop's last charts/SPS, tokens/s or images/s")
EOF

echo
if [ ${#FAILED[@]} -gt 0 ]; then
  joined=$(printf '%s; ' "${FAILED[@]}")
  printf '%s: %d command(s) failed: %s (logs in %s)\n' "$PROG" "${#FAILED[@]}" \
    "${joined%; }" "${GPU_CHECK_DIR:-a temporary dir: set GPU_CHECK_DIR to keep them}" >&2
  exit 1
fi
echo "$PROG: every command ran (${SECONDS}s)"
