"""A model's robust accuracy bracketed between a proof and an attack
(``experiments.beyond.verify``): per eps, the share of examples proven robust by interval bound
propagation (``analysis.proofs.ibp``), linear relaxation (CROWN: ``analysis.proofs.crown`` for
MLPs, ``analysis.proofs.crown_cnn`` for the CNN), CROWN with optimised slopes (alpha-CROWN,
``analysis.proofs.alpha_crown``, ReLU MLPs) and the exact MILP (``analysis.proofs.milp``, ReLU
MLPs), lower bounds, and the share that survives the eps-sweep attack
(``analysis.masking.suite.eps_sweep_attack``), an upper bound."""
from __future__ import annotations

import functools
import time

import numpy as np

from analysis.proofs import alpha_crown, crown, crown_cnn, ibp, milp
from analysis.masking.suite import eps_sweep_attack, fooled_by
from attacks.noise import UniformNoise
from attacks.square import Square
from nn.backend import to_device, to_host
from nn.validate import InputError


# each method's name as a reader meets it (tables, figures)
METHOD_NAMES = {"ibp": "IBP", "crown": "CROWN", "alpha_crown": "alpha-CROWN", "milp": "MILP"}


def _verified_mask(fn, model, x, y, eps, batch):
    """(N,) host bool: examples the bound function fn(model, xb, yb, eps) verifies, in batches."""
    out = []
    for i in range(0, len(x), batch):
        xb, yb = (to_device(x[i:i + batch], model.xp, model.dtype),
                  to_device(y[i:i + batch], model.xp))
        out.append(to_host(fn(model, xb, yb, eps).verified))
    return np.concatenate(out).astype(bool)


def _on_open(fn, model, x, y, eps, batch, before, fooled):
    """(N,) host bool: ``before`` (the examples already proven), and those of the rest that the
    attack has not fooled and the bound function fn proves (``_verified_mask``): a tighter prover
    spends its time only where a proof can still be won."""
    out = before.copy()
    open_ = np.where(~before & ~fooled)[0]
    if len(open_):
        out[open_] = _verified_mask(fn, model, x[open_], y[open_], eps, batch)
    return out


def _pct(mask):
    return 100.0 * float(np.mean(mask))


def bracket(model, x, y, eps_values, args, log=print):
    """Bracket ``model``'s robust accuracy on host images x (N, 1, 28, 28) with labels y (N,) at
    each eps of ``eps_values`` (increasing): IBP on every model, CROWN on every model (on a CNN,
    one example per pass and only on the examples IBP leaves open and the attack does not fool:
    seconds each), alpha-CROWN (args.alpha_steps steps) on the ReLU MLPs' examples CROWN leaves
    open and the attack does not fool, then the MILP, from alpha-CROWN's boxes, on those
    alpha-CROWN leaves open (at most args.milp_max per eps), the eps-sweep attack as the upper
    bound; then the examples proven robust are attacked again by attacks the proofs never saw
    (``sampled_attacks``: Square and random points of the ball), and any they fool counts as fooled
    and as a contradiction (``args``: sweep_steps, seed, batch, crown_batch, alpha_steps, milp_max,
    milp_time, milp_max_binaries, square_queries, ball_points).
    -> (one row: per eps the % verified by each method and by the best of them, the % surviving
    the attack, the undecided %, the MILP's tally, contradictions and seconds per method;
    (N,) host bool, the examples fooled at the largest eps)."""
    acts = crown.mlp_activations(model)
    mlp, relu = acts is not None, acts is not None and set(acts) == {"relu"}
    cnn = not mlp and _is_chain(model)
    xd, yd = to_device(x, model.xp, model.dtype), to_device(y, model.xp)
    row = {"eps": list(eps_values),
           "methods": (["ibp"] + (["crown"] if mlp or cnn else [])
                       + (["alpha_crown", "milp"] if relu else [])),
           "verified_by": {}, "verified": [], "attacked": [], "undecided": [], "milp": [],
           "contradictions": [], "seconds": {"ibp": 0.0, "crown": 0.0, "alpha_crown": 0.0,
                                             "milp": 0.0, "attack": 0.0}}
    optimised = (functools.partial(alpha_crown.linear_bounds, steps=args.alpha_steps) if relu
                 else None)
    fooled = np.zeros(len(x), bool)
    make_attack = eps_sweep_attack(args.sweep_steps, args.seed, args.batch)
    for e in eps_values:
        t = time.perf_counter()
        # fooled at e is fooled above
        fooled |= to_host(make_attack(float(e))(model, xd, yd).success).astype(bool)
        row["seconds"]["attack"] += time.perf_counter() - t
        t = time.perf_counter()
        proven = {"ibp": _verified_mask(ibp.interval_bounds, model, x, y, e, args.batch)}
        row["seconds"]["ibp"] += time.perf_counter() - t
        if mlp:
            t = time.perf_counter()
            proven["crown"] = _verified_mask(crown.linear_bounds, model, x, y, e,
                                             args.crown_batch) | proven["ibp"]
            row["seconds"]["crown"] += time.perf_counter() - t
        if cnn:
            t = time.perf_counter()
            proven["crown"] = _on_open(crown_cnn.linear_bounds, model, x, y, e, 1,
                                       proven["ibp"], fooled)
            row["seconds"]["crown"] += time.perf_counter() - t
        tally = None
        if relu:
            t = time.perf_counter()
            proven["alpha_crown"] = _on_open(optimised, model, x, y, e, args.crown_batch,
                                             proven["crown"], fooled)
            row["seconds"]["alpha_crown"] += time.perf_counter() - t
            t = time.perf_counter()
            proven["milp"] = proven["alpha_crown"].copy()
            open_ = np.where(~proven["alpha_crown"] & ~fooled)[0][:args.milp_max]
            tally = {"tried": int(len(open_)), "verified": 0, "falsified": 0, "unknown": 0}
            for i in open_:  # from alpha-CROWN's boxes: fewer unstable units, tighter big-M
                xb, yb = xd[i:i + 1], yd[i:i + 1]
                v = milp.verify_example(model, xb, yb, float(e), time_limit=args.milp_time,
                                        max_binaries=args.milp_max_binaries,
                                        bounds=optimised(model, xb, yb, float(e)))
                tally[v.status] += 1
                proven["milp"][i] = v.status == "verified"
                fooled[i] |= v.status == "falsified"
            row["seconds"]["milp"] += time.perf_counter() - t
        best = np.any(list(proven.values()), axis=0)
        t = time.perf_counter()
        proved = np.where(best)[0]
        for attack in sampled_attacks(float(e), args) if len(proved) else ():
            fooled[proved] |= to_host(fooled_by(attack, model, xd[proved], yd[proved],
                                                args.batch)).astype(bool)
        row["seconds"]["attack"] += time.perf_counter() - t
        for k, v in proven.items():
            row["verified_by"].setdefault(k, []).append(_pct(v))
        row["verified"].append(_pct(best))
        row["attacked"].append(_pct(~fooled))
        row["undecided"].append(row["attacked"][-1] - row["verified"][-1])
        row["milp"].append(tally)
        row["contradictions"].append(int((best & fooled).sum()))
        log(f"  eps {e}: verified " + ", ".join(f"{k} {_pct(v):.1f}" for k, v in proven.items())
            + f" %; attacked {_pct(~fooled):.1f} %" + (f"; MILP {tally}" if tally else "")
            + f"; contradictions {row['contradictions'][-1]}")
    return row, fooled


def _is_chain(model):
    """Whether CROWN through convolutions (``analysis.proofs.crown_cnn``) bounds ``model``."""
    try:
        crown_cnn.parse(model)
    except InputError:
        return False
    return True


def sampled_attacks(eps, args):
    """The attacks that check the proofs (a proof holds for every point of the ball, so none may
    fool an example it verifies): Square (Andriushchenko et al. 2020, args.square_queries queries;
    score-based, blind to gradients) and args.ball_points uniform random points of the ball
    (``attacks.noise.UniformNoise``), each left out at 0. -> list of attacks."""
    out = []
    if getattr(args, "square_queries", 0):
        out.append(Square(eps=eps, n_queries=args.square_queries, seed=args.seed))
    if getattr(args, "ball_points", 0):
        out.append(UniformNoise(eps=eps, draws=args.ball_points, seed=args.seed))
    return out


def survivors(model, x, y, eps, fooled, args, log=print):
    """The first args.survivors images of x (N, 1, 28, 28), y (N,) not ``fooled`` at eps ((N,) bool
    from ``bracket``), through IBP, CROWN and the MILP: per image its index, label, each method's
    lower bound of min_j (z_y - z_j) (positive = proven), the MILP's verdict and binaries. -> list
    of dicts."""
    xd, yd = to_device(x, model.xp, model.dtype), to_device(y, model.xp)
    out = []
    acts = crown.mlp_activations(model)
    for i in np.where(~fooled)[0][:args.survivors]:
        xb, yb = xd[i:i + 1], yd[i:i + 1]
        ib = ibp.interval_bounds(model, xb, yb, eps)
        rec = {"index": int(i), "label": int(y[i]),
               "ibp_bound": float(to_host(ib.diff_lower).min())}
        if acts is not None:
            lb = crown.linear_bounds(model, xb, yb, eps)
            rec["crown_bound"] = float(to_host(lb.diff_lower).min())
            rec["unstable_units"] = [int(to_host((lo < 0) & (hi > 0)).sum()) for lo, hi in lb.pre]
            if set(acts) == {"relu"}:
                v = milp.verify_example(model, xb, yb, eps, time_limit=args.milp_time, bounds=lb)
                rec.update(milp=v.status, milp_bound=v.bound, binaries=v.binaries,
                           milp_seconds=v.seconds)
        out.append(rec)
        log(f"  survivor {rec}")
    return out
