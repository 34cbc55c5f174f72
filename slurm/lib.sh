# shellcheck shell=bash
# Shared by the mpirl sbatch templates (sourced, not run). See docs/cluster.md.
#
# mpirl_main JOB.toml [mpirl train args...] does everything a template needs:
#   - one thread per rank (OMP/MKL/OPENBLAS/torch), HDF5 locking off for shared filesystems;
#   - picks the launcher: $MPIRL_LAUNCHER (srun|mpiexec) if set, else the bundled `mpiexec -n $SLURM_NTASKS`
#     when mpi4py runs on the PyPI `mpich` wheel, else `srun --mpi=pmi2` (site MPI built with PMI);
#   - the run directory comes from the job id: $MPIRL_RUNS/<job stem>-<SLURM_JOB_ID>, or for arrays
#     <job stem>-<SLURM_ARRAY_JOB_ID>_<SLURM_ARRAY_TASK_ID>; a requeued job (same id) finds it and
#     passes --resume when it holds a checkpoint;
#   - preemption: USR1 (from --signal=B:USR1@T) or TERM reaching this batch shell is forwarded as USR1
#     to the launcher, which forwards it to every rank; mpirl checkpoints and exits 3
#     (mpirl.signals.EXIT_STOPPED), and this script then runs `scontrol requeue $SLURM_JOB_ID`.
#
# Environment knobs: MPIRL_LAUNCHER, MPIRL_PYTHON (default python3), MPIRL_RUNS (default
# $SLURM_SUBMIT_DIR/runs), MPIRL_REQUEUE=0 to exit 3 instead of requeueing, MPIRL_RUN_NAME (run dir stem).

MPIRL_EXIT_STOPPED=3

mpirl_log() { printf '[mpirl-sbatch %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }

mpirl_pick_launcher() {
    if [[ -n "${MPIRL_LAUNCHER:-}" ]]; then
        printf '%s\n' "$MPIRL_LAUNCHER"
    elif "$MPIRL_PYTHON" -c 'import importlib.metadata as m; m.distribution("mpich")' 2>/dev/null \
            && command -v mpiexec >/dev/null; then
        printf 'mpiexec\n'
    else
        printf 'srun\n'
    fi
}

mpirl_forward() {
    mpirl_log "received SIG$1: forwarding USR1 to the launcher (pid $MPIRL_CHILD) so every rank checkpoints and stops"
    if [[ -n "${MPIRL_CHILD:-}" ]]; then
        kill -USR1 "$MPIRL_CHILD" 2>/dev/null || true
    fi
}

mpirl_main() {
    if [[ $# -lt 1 || ! -f "$1" ]]; then
        echo "usage: sbatch $0 JOB.toml [mpirl train args...]  (job file ${1:-missing} not found)" >&2
        return 2
    fi
    local job=$1
    shift
    MPIRL_PYTHON=${MPIRL_PYTHON:-python3}
    export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 NUMEXPR_NUM_THREADS=1
    export HDF5_USE_FILE_LOCKING=FALSE

    local stem id run_dir launcher
    stem=${MPIRL_RUN_NAME:-$(basename "$job" .toml)}
    if [[ -n "${SLURM_ARRAY_JOB_ID:-}" ]]; then
        id="${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
    else
        id="${SLURM_JOB_ID:-local$$}"
    fi
    run_dir="${MPIRL_RUNS:-${SLURM_SUBMIT_DIR:-$PWD}/runs}/${stem}-${id}"
    mkdir -p "$run_dir"

    local -a resume=()
    if compgen -G "$run_dir/checkpoints/*.h5" >/dev/null; then
        resume=(--resume)
    elif [[ -n "$(ls -A "$run_dir")" ]]; then
        # An earlier start of this job died before its first checkpoint (node failure, scancel, requeue by
        # hand): nothing to resume, and mpirl refuses a --run-dir that is not empty. Keep its files aside.
        local lost
        lost="$run_dir.no-checkpoint-$(date -u +%Y%m%dT%H%M%SZ)"
        mv "$run_dir" "$lost" && mkdir -p "$run_dir"
        mpirl_log "run dir held no checkpoint of an earlier start: moved it to $lost; starting afresh"
    fi
    launcher=$(mpirl_pick_launcher)
    local -a cmd
    case "$launcher" in
        mpiexec) cmd=(mpiexec -n "${SLURM_NTASKS:-1}") ;;
        srun) cmd=(srun --mpi="${MPIRL_SRUN_MPI:-pmi2}" --kill-on-bad-exit=1) ;;
        *) echo "MPIRL_LAUNCHER must be srun or mpiexec, got '$launcher'" >&2; return 2 ;;
    esac
    cmd+=("$MPIRL_PYTHON" -m mpirl train "$job" --run-dir "$run_dir" "${resume[@]}" "$@")

    mpirl_log "job ${SLURM_JOB_ID:-none} restart ${SLURM_RESTART_COUNT:-0} on ${SLURM_JOB_NODELIST:-$(hostname -s)}," \
        "${SLURM_NTASKS:-1} tasks, launcher $launcher, run dir $run_dir${resume:+ (resuming)}"
    local start_line deferred=
    start_line=$(printf '%s job=%s restart_count=%s launcher=%s resume=%s' "$(date -u +%FT%TZ)" \
        "${SLURM_JOB_ID:-none}" "${SLURM_RESTART_COUNT:-0}" "$launcher" "${#resume[@]}")
    # mpirl refuses a --run-dir that is not empty without --resume: into an empty one (a first start) the
    # line goes once the run has ended.
    if [[ -n "$(ls -A "$run_dir")" ]]; then
        printf '%s\n' "$start_line" >>"$run_dir/slurm-restarts.log"
    else
        deferred=$start_line
    fi
    mpirl_log "${cmd[*]}"

    MPIRL_CHILD=
    trap 'mpirl_forward USR1' USR1
    trap 'mpirl_forward TERM' TERM
    "${cmd[@]}" &
    MPIRL_CHILD=$!
    local rc
    while :; do
        wait "$MPIRL_CHILD"
        rc=$?
        # wait returns early (status > 128) when a trapped signal arrives: keep waiting for the step.
        kill -0 "$MPIRL_CHILD" 2>/dev/null || break
    done
    if ((rc > 128)); then  # the step ended right after an interrupted wait: bash still holds its status
        local again
        wait "$MPIRL_CHILD" 2>/dev/null
        again=$?
        ((again == 127)) || rc=$again
    fi
    trap - USR1 TERM
    [[ -z "$deferred" ]] || printf '%s\n' "$deferred" >>"$run_dir/slurm-restarts.log"
    mpirl_log "mpirl exited with status $rc"
    if [[ $rc -eq $MPIRL_EXIT_STOPPED ]]; then
        if [[ "${MPIRL_REQUEUE:-1}" != 0 && -n "${SLURM_JOB_ID:-}" ]]; then
            mpirl_log "checkpoint written after a stop signal: requeueing job $SLURM_JOB_ID (resumes in $run_dir)"
            scontrol requeue "$SLURM_JOB_ID"
            return 0
        fi
        mpirl_log "stopped by a signal; resume with: sbatch $0 $job (same run dir needs the same job id) or mpirl train --resume --run-dir $run_dir"
    fi
    return "$rc"
}
