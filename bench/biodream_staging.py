"""Sleep staging bench of the Bio-Dream numeric core: lumina_nodes/kernels/sleep_staging.py on the synthetic
sleep EEG of lumina_nodes/models/eeg.py, against the simulator's ground-truth hypnogram.

Simulates whole nights (default 8 h, 4 participants x 2 channels at 256 Hz, artifacts at the simulator's
default rates) on held-out seeds (none of lumina_nodes.kernels.sleep_staging.TUNING_SEEDS), scores every 30 s
epoch in time order with one SleepStager (its transition prior running through the night), and prints:

* the confusion matrix (ground truth x staged, UNKNOWN as its own column), per-stage recall and precision,
  Cohen's kappa and the epoch agreement over the epochs whose ground truth is artifact-free (an UNKNOWN there
  counts as wrong);
* separately, the epochs whose ground truth holds an artifact (any overlap): they should be UNKNOWN, per kind;
* ``yasa_agreement``: YASA 0.8.1's own EEG-only staging (trained on real polysomnography; its
  ``SleepStaging(raw, eeg_name=...)`` on channel 0, the central one, of each whole night) against the same
  ground truth on the same epochs, when yasa is importable (``pip install -r requirements-bench.txt``); else
  null, with the reason.

Targets: agreement >= 0.85, kappa >= 0.75, yasa_agreement >= 0.70.

``--tune`` instead fits the stager's constants (feature standardisation, logistic-regression weights, class
shares, transition rates) on the nights of TUNING_SEEDS and prints them as Python, to paste into
sleep_staging.py.

Usage: python bench/biodream_staging.py [--quick] [--seeds S ...] [--participants P] [--hours H] [--no-yasa]
       python bench/biodream_staging.py --tune
The last line printed is one JSON object.
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np
from scipy import optimize

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from lumina_nodes.constants import SleepStage
from lumina_nodes.kernels.sleep_staging import FEATURE_NAMES, STAGES, TUNING_SEEDS, SleepStager
from lumina_nodes.models.eeg import ARTIFACT_NAMES, ARTIFACT_NONE, EPOCH_S, SleepEegSimulator

HELD_OUT_SEEDS = (1, 2, 3)
TARGETS = {"agreement": 0.85, "kappa": 0.75, "yasa_agreement": 0.70}
LABELS = ("W", "N1", "N2", "N3", "REM")
UNKNOWN_COLUMN = len(STAGES)  # staged UNKNOWN, in the confusion matrix
L2 = 1e-3  # ridge of the logistic regression (standardised features)


def run_night(seed, participants, channels, hours, keep_channel0=False):
    """Simulate and stage one night: per epoch and participant the true stage, the artifact code, the staged
    code, the stager's features (NaN when unusable); optionally channel 0's whole EEG (float32, uV)."""
    sim = SleepEegSimulator(participants, channels, seed=seed)
    stager = SleepStager(participants, channels, sim.sample_rate_hz)
    n_epochs = round(hours * 3600 / EPOCH_S)
    truth = np.empty((n_epochs, participants), np.uint8)
    artifact = np.empty_like(truth)
    staged = np.empty_like(truth)
    features = np.empty((n_epochs, participants, len(FEATURE_NAMES)))
    eeg = np.empty((participants, n_epochs * stager.epoch_samples), np.float32) if keep_channel0 else None
    for e in range(n_epochs):
        x = sim.read(stager.epoch_samples)
        truth[e] = sim.stage_at((e + 0.5) * EPOCH_S)
        artifact[e] = sim.artifact_between(e * EPOCH_S, (e + 1) * EPOCH_S)
        features[e] = stager.features(x)[0]
        staged[e] = stager.score(x).stage
        if keep_channel0:
            eeg[:, e * stager.epoch_samples : (e + 1) * stager.epoch_samples] = x[:, 0]
    return {"truth": truth, "artifact": artifact, "staged": staged, "features": features, "eeg": eeg, "sim": sim}


def column(codes):
    """Stage codes -> confusion-matrix index (UNKNOWN last)."""
    codes = np.asarray(codes)
    return np.where(codes == SleepStage.UNKNOWN, UNKNOWN_COLUMN, codes).astype(int)


def cohen_kappa(truth, predicted, categories):
    confusion = np.zeros((categories, categories))
    np.add.at(confusion, (truth, predicted), 1)
    total = confusion.sum()
    observed = np.trace(confusion) / total
    expected = (confusion.sum(0) * confusion.sum(1)).sum() / total**2
    return float((observed - expected) / (1 - expected))


def yasa_stage(eeg, sample_rate_hz):
    """YASA's EEG-only staging of each participant's night (channel 0): (participants, epochs) stage codes,
    or a reason string when yasa is not importable."""
    try:
        import mne
        import yasa
    except ImportError as exc:
        return f"yasa not importable ({exc}); pip install -r requirements-bench.txt"
    mne.set_log_level("ERROR")
    out = []
    for night in eeg:
        info = mne.create_info(["C4-M1"], sample_rate_hz, ch_types=["eeg"])
        raw = mne.io.RawArray(night[None, :].astype(np.float64) * 1e-6, info, verbose=False)  # volts
        hypnogram = yasa.SleepStaging(raw, eeg_name="C4-M1").predict()
        codes = hypnogram.as_int().to_numpy()  # 5-stage: WAKE 0, N1 1, N2 2, N3 3, REM 4 (our codes); < 0 otherwise
        out.append(np.where(codes >= 0, codes, SleepStage.UNKNOWN).astype(np.uint8))
    n = min(len(o) for o in out)
    return np.stack([o[:n] for o in out])


def evaluate(args):
    t_start = time.time()
    truth, artifact, staged, yasa_codes = [], [], [], []
    yasa_reason = None if args.yasa else "--no-yasa"
    for seed in args.seeds:
        night = run_night(seed, args.participants, args.channels, args.hours, keep_channel0=args.yasa)
        truth.append(night["truth"].T)
        artifact.append(night["artifact"].T)
        staged.append(night["staged"].T)
        if yasa_reason is None:
            result = yasa_stage(night["eeg"], night["sim"].sample_rate_hz)
            if isinstance(result, str):
                yasa_reason = result
            else:
                pad = np.full((result.shape[0], night["truth"].shape[0]), SleepStage.UNKNOWN, np.uint8)
                pad[:, : result.shape[1]] = result[:, : pad.shape[1]]
                yasa_codes.append(pad)
    truth, artifact, staged = (np.concatenate(a).ravel() for a in (truth, artifact, staged))
    clean = artifact == ARTIFACT_NONE
    t, s = column(truth[clean]), column(staged[clean])
    confusion = np.zeros((len(STAGES), len(STAGES) + 1), int)
    np.add.at(confusion, (t, s), 1)
    agreement = float(np.mean(t == s))
    kappa = cohen_kappa(t, s, len(STAGES) + 1)
    recall = confusion.diagonal() / np.maximum(confusion.sum(1), 1)
    precision = confusion.diagonal() / np.maximum(confusion[:, : len(STAGES)].sum(0), 1)
    flagged = staged[~clean] == SleepStage.UNKNOWN
    by_kind = {
        ARTIFACT_NAMES[k]: [int(np.sum(flagged[artifact[~clean] == k])), int(np.sum(artifact[~clean] == k))]
        for k in range(1, len(ARTIFACT_NAMES))
    }
    yasa_agreement = yasa_kappa = None
    if yasa_reason is None:
        y = column(np.concatenate(yasa_codes).ravel()[clean])
        yasa_agreement = float(np.mean(t == y))
        yasa_kappa = cohen_kappa(t, y, len(STAGES) + 1)

    print(
        f"sleep staging: {len(args.seeds)} held-out seeds {list(args.seeds)} x {args.participants} participants x "
        f"{args.channels} channels, {args.hours:g} h at 256 Hz, default artifact rates; "
        f"wall {time.time() - t_start:.0f} s"
    )
    print(f"epochs: {truth.size} ({int(clean.sum())} artifact-free in the ground truth, {int((~clean).sum())} not)")
    print("\nconfusion (rows: ground truth, artifact-free epochs; columns: staged)")
    print(f"{'':>6s}" + "".join(f"{label:>8s}" for label in (*LABELS, "UNKNOWN")) + f"{'recall':>9s}{'precision':>10s}")
    for i, label in enumerate(LABELS):
        cells = "".join(f"{v:8d}" for v in confusion[i])
        print(f"{label:>6s}{cells}{recall[i]:9.3f}{precision[i]:10.3f}")
    print(f"\nagreement {agreement:.3f} (target >= {TARGETS['agreement']}), kappa {kappa:.3f} (>= {TARGETS['kappa']})")
    print(
        f"epochs with an artifact in the ground truth: {int(flagged.sum())} of {flagged.size} staged UNKNOWN "
        f"({flagged.mean() if flagged.size else float('nan'):.1%}); per kind flagged/total: {by_kind}"
    )
    print(f"artifact-free epochs staged UNKNOWN (false alarms): {int(np.sum(s == UNKNOWN_COLUMN))}")
    if yasa_reason is None:
        print(
            f"yasa_agreement {yasa_agreement:.3f} (target >= {TARGETS['yasa_agreement']}), yasa kappa {yasa_kappa:.3f}"
        )
    else:
        print(f"yasa_agreement: null ({yasa_reason})")
    met = {
        "agreement": agreement >= TARGETS["agreement"],
        "kappa": kappa >= TARGETS["kappa"],
        "yasa_agreement": None if yasa_agreement is None else yasa_agreement >= TARGETS["yasa_agreement"],
    }
    print(
        "targets: "
        + ", ".join(f"{k} {'met' if v else 'NOT met' if v is not None else 'not measured'}" for k, v in met.items())
    )
    result = {
        "agreement": round(agreement, 4),
        "kappa": round(kappa, 4),
        "yasa_agreement": None if yasa_agreement is None else round(yasa_agreement, 4),
        "yasa_kappa": None if yasa_kappa is None else round(yasa_kappa, 4),
        "yasa_reason": yasa_reason,
        "per_stage_recall": dict(zip(LABELS, np.round(recall, 4).tolist(), strict=True)),
        "confusion": confusion.tolist(),
        "artifact_epochs": int(flagged.size),
        "artifact_epochs_unknown": int(flagged.sum()),
        "artifact_flagged_by_kind": by_kind,
        "clean_epochs": int(clean.sum()),
        "clean_epochs_unknown": int(np.sum(s == UNKNOWN_COLUMN)),
        "targets_met": met,
        "seeds": list(args.seeds),
        "participants": args.participants,
        "channels": args.channels,
        "hours": args.hours,
    }
    print(json.dumps(result))


def tune(args):
    """Fit the stager's constants on TUNING_SEEDS and print them as Python (see the module docstring)."""
    features, labels, transitions, dwell = [], [], np.zeros((5, 5)), np.zeros(5)
    for seed in TUNING_SEEDS:
        night = run_night(seed, 8, args.channels, 8.0)
        usable = np.isfinite(night["features"]).all(-1) & (night["artifact"] == ARTIFACT_NONE)
        features.append(night["features"][usable])
        labels.append(night["truth"][usable])
        truth = night["truth"]
        np.add.at(transitions, (truth[:-1].ravel(), truth[1:].ravel()), 1)
        dwell += np.bincount(truth[:-1].ravel(), minlength=5) * EPOCH_S / 3600.0
    x, y = np.concatenate(features), np.concatenate(labels).astype(int)
    mean, sd = x.mean(0), x.std(0)
    z = (x - mean) / sd
    k, f = len(STAGES), z.shape[1]
    onehot = np.eye(k)[y]

    def loss(theta):
        w, b = theta[: k * f].reshape(k, f), theta[k * f :]
        logits = z @ w.T + b
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(1, keepdims=True)
        value = -np.mean(np.log(np.maximum(p[np.arange(len(y)), y], 1e-300))) + 0.5 * L2 * np.sum(w * w)
        grad = (p - onehot) / len(y)
        return value, np.concatenate([(grad.T @ z + L2 * w).ravel(), grad.sum(0)])

    fit = optimize.minimize(loss, np.zeros(k * f + k), jac=True, method="L-BFGS-B", options={"maxiter": 2000})
    w, b = fit.x[: k * f].reshape(k, f), fit.x[k * f :]
    accuracy = np.mean(np.argmax(z @ w.T + b, 1) == y)
    prior = np.bincount(y, minlength=k) / len(y)
    rate = transitions / np.maximum(dwell[:, None], 1e-9)
    np.fill_diagonal(rate, 0.0)
    if not fit.success:
        sys.exit(f"the logistic regression did not converge: {fit.message}")
    print(f"# fitted on {len(y)} artifact-free epochs; per-epoch training accuracy {accuracy:.3f}")

    def array(name, a, fmt):
        if a.ndim == 1:
            return f"{name} = np.array([{', '.join(fmt.format(v) for v in a)}])"
        rows = "".join(f"        [{', '.join(fmt.format(v) for v in row)}],\n" for row in a)
        return f"{name} = np.array(\n    [\n{rows}    ]\n)"

    print(f"TUNING_SEEDS = {tuple(TUNING_SEEDS)}")
    print(array("FEATURE_MEAN", mean, "{:.6g}"))
    print(array("FEATURE_SD", sd, "{:.6g}"))
    print(array("WEIGHTS", w, "{:.5g}"))
    print(array("BIAS", b, "{:.5g}"))
    print(array("CLASS_PRIOR", prior, "{:.5g}"))
    print(array("TRANSITION_RATE_PER_HOUR", rate, "{:.5g}"))
    print(json.dumps({"tuning_seeds": list(TUNING_SEEDS), "epochs": int(len(y)), "training_accuracy": float(accuracy)}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=list(HELD_OUT_SEEDS), help="held-out seeds")
    ap.add_argument("--participants", type=int, default=4)
    ap.add_argument("--channels", type=int, default=2)
    ap.add_argument("--hours", type=float, default=8.0)
    ap.add_argument("--quick", action="store_true", help="one seed, 3 participants")
    ap.add_argument("--no-yasa", dest="yasa", action="store_false", help="skip YASA even when it is installed")
    ap.add_argument("--tune", action="store_true", help="fit the stager's constants on TUNING_SEEDS and print them")
    args = ap.parse_args()
    if args.quick:
        args.seeds, args.participants = args.seeds[:1], 3
    if args.tune:
        tune(args)
        return
    reused = sorted(set(args.seeds) & set(TUNING_SEEDS))
    if reused:
        sys.exit(f"seeds {reused} are tuning seeds (sleep_staging.TUNING_SEEDS): not held out")
    if not math.isfinite(args.hours) or args.hours <= 0:
        sys.exit("--hours must be > 0")
    evaluate(args)


if __name__ == "__main__":
    main()
