#!/usr/bin/env bash
# Benchmark your own model, end to end, with MACE as the client (`make mace-demo`; slow, not CI):
#   1. a venv of its own (.venv-mace: torch CPU + mace-torch, whose e3nn pin clashes with other MLFFs),
#   2. a quick LJ-argon dataset from `mlffbench generate`, split into train/test extxyz,
#   3. a tiny MACE trained with MACE's own CLI (mace_run_train),
#   4. a `kind: ase` spec hosting MACECalculator out of process in .venv-mace,
#   5. `mlffbench md` on it and, unless MACE_DEMO_SKIP_RUN=1, `mlffbench run` (lattice constant,
#      cohesive energy, vacancy formation: the README's scorecard).
# Times of each stage go to $OUT/times.txt. Needs ~1.5 GB disk for the venv, ~1.5 GB RAM while training.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-build/mace-demo}
VENV=${VENV:-.venv-mace}
EPOCHS=${MACE_EPOCHS:-5}
MLFF=${MLFF:-.venv/bin/mlffbench}
PY=.venv/bin/python
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
: > "$OUT/times.txt"
stage() { local name=$1; shift; local t0=$SECONDS; "$@"; echo "$name $((SECONDS - t0)) s" | tee -a "$OUT/times.txt"; }

install() {
  if [ ! -x "$VENV/bin/mace_run_train" ]; then
    python3.11 -m venv "$VENV"
    # the exact pin: the CPU wheel (a local copy in /opt/wheels where there is one); an unpinned
    # torch would pull a multi-GB CUDA build
    "$VENV/bin/pip" install -q ${PIP_FIND_LINKS:+--find-links "$PIP_FIND_LINKS"} \
      $( [ -d /opt/wheels ] && echo --find-links /opt/wheels ) torch==2.13.0 mace-torch==0.3.16
  fi
}

data() {
  "$MLFF" generate -c configs/generate-quick.yaml -o "$OUT/data" --overwrite -q
  # MACE reads extxyz as written; REF_* keys avoid its rename warning. ~30 train / 8 test frames.
  "$PY" - "$OUT" <<'PYEOF'
import sys
from ase.io import read, write
out = sys.argv[1]
frames = read(f"{out}/data/dataset.extxyz", ":")
picked = frames[:: max(1, len(frames) // 38)][:38]
for a in picked:
    a.info["REF_energy"] = a.get_potential_energy()
    a.arrays["REF_forces"] = a.get_forces()
    a.info["REF_stress"] = a.get_stress(voigt=False)
    a.calc = None
write(f"{out}/train.xyz", picked[:30])
write(f"{out}/test.xyz", picked[30:])
print(f"{len(picked[:30])} train / {len(picked[30:])} test frames of {len(frames)}")
PYEOF
}

train() {
  (cd "$OUT" && OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} "$OLDPWD/$VENV/bin/mace_run_train" --name=ar_tiny \
    --train_file=train.xyz --valid_fraction=0.1 --test_file=test.xyz \
    --energy_key=REF_energy --forces_key=REF_forces --stress_key=REF_stress --E0s=average \
    --model=MACE --r_max=6.0 --num_channels=8 --max_L=0 --correlation=2 --num_interactions=2 \
    --num_radial_basis=6 --MLP_irreps=8x0e --loss=stress --energy_weight=1 --forces_weight=100 \
    --stress_weight=10 --compute_stress=True --batch_size=2 --valid_batch_size=4 --max_num_epochs="$EPOCHS" \
    --eval_interval=1 --lr=0.01 --device=cpu --default_dtype=float64 --seed=1 --num_workers=0 > train.log 2>&1) \
    || { tail -5 "$OUT/train.log"; exit 1; }
}

spec() {
  cat > "$OUT/mace.yaml" <<YAML
kind: ase
calculator: mace.calculators:MACECalculator
kwargs: {model_paths: $OUT/ar_tiny.model, device: cpu, default_dtype: float64}
cutoff_A: 6.0
python: $(pwd)/$VENV/bin/python
name: mace-ar-tiny
YAML
  # lattice constant pinned (Å, LJ's 0 K value, the data's): dynamics.minimize.fcc_lattice_constant
  # polishes a0 with autodiff second derivatives, which an ASE calculator does not have
  cat > "$OUT/md.yaml" <<YAML
system: {supercell: 4, lattice_constant: 5.2687}
temperatures: [40.0]
replicas: 1
timestep: 5.0
equilibration: 500.0
duration: 2000.0
sample_every: 20
YAML
}

stage install install
stage data data
# MACE's own loader reads generate's dataset.extxyz as written (energy/forces/stress keys), bit for bit
stage mace-reads "$VENV/bin/python" examples/mace_reads_dataset.py "$OUT/data/dataset.extxyz"
# so does NequIP's own ASEDataset (opt-in, NEQUIP_READS=1: a venv of its own, ~1.3 GB, ~2 min to install)
if [ "${NEQUIP_READS:-0}" = 1 ]; then
  NQ=${NEQUIP_VENV:-build/nequip-venv}
  [ -x "$NQ/bin/nequip-train" ] || { python3.11 -m venv "$NQ" && "$NQ/bin/pip" install -q \
    $( [ -d /opt/wheels ] && echo --find-links /opt/wheels ) torch==2.13.0 nequip==0.19.1; }
  stage nequip-reads "$NQ/bin/python" examples/nequip_reads_dataset.py "$OUT/data/dataset.extxyz"
fi
stage train train
spec
stage md "$MLFF" md --model "$OUT/mace.yaml" -c "$OUT/md.yaml" -o "$OUT/md" --overwrite
if [ "${MACE_DEMO_SKIP_RUN:-0}" != 1 ]; then
  stage run "$MLFF" run -c configs/run-quick.yaml --model "$OUT/mace.yaml" \
    -b lattice_constant -b cohesive_energy -b vacancy_formation -o "$OUT/run" --overwrite
fi
echo "done: $OUT (times in $OUT/times.txt)"
