"""The published tables beyond the paper (the audit, the logit-scale probe, the proofs,
performance), one function per table, each rendered from its records alone, as
``experiments.lib.published`` renders the paper's."""
from __future__ import annotations

from experiments.lib.published import _label, _markdown, _numbers, _rows, sources
from experiments.lib.verification import METHOD_NAMES


def audit():
    """The audit's table: per model the images audited, the clean accuracy, the accuracy (%) under
    FGSM and APGD in the paper's numerics, APGD-DLR along the true gradient and Square, the worst
    case over every attack of the suite, the attack that gave it, and the flags raised
    (``analysis.masking.audit.flags``)."""
    header = ["model", "images", "clean", "FGSM (paper)", "APGD-CE (paper)", "APGD-DLR (stable)",
              "Square", "worst case", "strongest", "flags"]
    rows = []
    for model, r in _rows("audit").items():
        a = r["accuracy"]
        cells = [a.get(k) for k in ("fgsm-ce-paper", "apgd-ce-paper", "apgd-dlr-stable", "square")]
        rows.append([_label(model), str(r["n"]), f"{r['clean']:.1f}",
                     *("-" if c is None else f"{c:.1f}" for c in cells),
                     f"**{r['worst']:.1f}**", r["strongest"], ", ".join(r["flags"]) or "-"])
    return _markdown(header, rows) + "\n\n" + sources("audit") + "\n"


def logit_scale():
    """The logit-scale probe: per model, FGSM accuracy (%) with the cross-entropy in float32 as
    every logit is multiplied by c (no prediction changes), the scale-free margin loss's FGSM (the
    same at every c, else each c's value), and the share of exactly-zero input gradients at the
    largest c."""
    r = _numbers("logit_scale")
    if r is None:
        return sources("logit_scale") + "\n"
    scales = [s["scale"] for s in r["results"][0]["scales"]]
    header = ["model", "images", "clean", *(f"c = {c:g}" for c in scales),
              "margin loss, every c", f"exactly-zero gradients, c = {scales[-1]:g}"]
    rows = []
    for m in r["results"]:
        margin = {f"{s['accuracy']['fgsm-margin-stable']:.1f}" for s in m["scales"]}
        rows.append([_label(m["model"]), str(m["n"]), f"{m['scales'][0]['clean']:.1f}",
                     *(f"{s['accuracy']['fgsm-ce-float32']:.1f}" for s in m["scales"]),
                     " / ".join(sorted(margin)),
                     f"{100 * m['scales'][-1]['zero_gradient_fraction']:.1f}"])
    return _markdown(header, rows) + "\n\n" + sources("logit_scale") + "\n"


def bench(name="bench"):
    """Performance (the record ``name``): per workload the median milliseconds per call of satnets
    and of PyTorch on the same weights and their ratio (below 1: satnets faster), then the float32
    matmul peak and each training epoch's achieved GFLOP/s and its ratio to the peak."""
    r = _numbers(name)
    if r is None:
        return sources(name) + "\n"
    out = []
    if r["torch"]:
        rows = [[t["workload"], f"{1e3 * t['satnets_seconds']:.2f}",
                 f"{1e3 * t['torch_seconds']:.2f}",
                 f"{t['satnets_seconds'] / t['torch_seconds']:.2f}"] for t in r["torch"]["rows"]]
        out.append(_markdown(["workload", "satnets (ms)", f"PyTorch {r['torch']['version']} (ms)",
                              "ratio"], rows))
    if r["peak_gflops"]:
        rows = [[e["model"], str(e["steps"]), f"{e['seconds']:.2f}", f"{e['gflops']:.1f}",
                 f"{e['gflops'] / r['peak_gflops']:.2f}"] for e in r["epochs"]]
        out.append(f"matmul peak (4096^3 float32): {r['peak_gflops']:.1f} GFLOP/s\n\n"
                   + _markdown(["model", "steps", "seconds", "GFLOP/s", "ratio to peak"], rows))
    coretype = r.get("openblas_coretype")
    out.append(f"(device {r['device']}; OPENBLAS_CORETYPE "
               f"{'unset' if coretype is None else coretype})")
    return "\n\n".join(out) + "\n\n" + sources(name) + "\n"


VERIFY = ("verify", "verify_relu", "verify_cnn")  # the proofs' records: MLPs, ReLU MLPs, CNNs


def verify():
    """The proofs (the records ``VERIFY``): per model, for each eps the share (%) proven robust by
    IBP / CROWN / alpha-CROWN / the MILP ('-' where a method does not apply) and the share the
    attack leaves (an upper bound), one table per set of radii; then each method's seconds over
    every eps and the contradictions (verified yet fooled, which must be 0)."""
    found = [row for name in VERIFY if (r := _numbers(name)) is not None for row in r["rows"]]
    if not found:
        return sources(*VERIFY) + "\n"
    methods = list(METHOD_NAMES)
    names = [METHOD_NAMES[m] for m in methods]
    tables, times = [], []
    for eps in dict.fromkeys(tuple(row["eps"]) for row in found):
        rows = []
        for row in (r for r in found if tuple(r["eps"]) == eps):
            by = row["verified_by"]
            rows.append([_label(row["model"]), str(row["n"]), *(
                "/".join("-" if m not in by else f"{by[m][k]:.1f}" for m in methods)
                + f" ({row['attacked'][k]:.1f})" for k in range(len(eps)))])
        tables.append(_markdown(["model", "n", *(f"eps {e:g}" for e in eps)], rows))
    for row in found:
        times.append([_label(row["model"]), *(f"{row['seconds'][m]:,.0f}"
                                              if m in row["methods"] or m == "attack" else "-"
                                              for m in (*methods, "attack")),
                      str(sum(row["contradictions"]))])
    return ("\n\n".join(tables) + "\n\n(% verified by " + " / ".join(names)
            + " (attacked: the share surviving the attack))\n\n"
            + _markdown(["model", *(f"{n} (s)" for n in names), "attack (s)",
                         "contradictions"], times) + "\n\n" + sources(*VERIFY) + "\n")


def auto_lirpa():
    """Our proofs beside auto_LiRPA's (the record ``auto_lirpa``): per model and eps, the share (%)
    proven robust by IBP, CROWN and alpha-CROWN, ours / auto_LiRPA's, and each side's seconds for
    alpha-CROWN."""
    r = _numbers("auto_lirpa")
    if r is None:
        return sources("auto_lirpa") + "\n"
    methods = ("ibp", "crown", "alpha_crown")
    rows = [[_label(row["model"]), str(row["n"]), f"{row['eps']:g}",
             *(f"{100 * row['ours'][m]:.1f} / {100 * row['theirs'][m]:.1f}" for m in methods),
             f"{row['seconds_ours']['alpha_crown']:,.0f} / "
             f"{row['seconds_theirs']['alpha_crown']:,.0f}"] for row in r["rows"]]
    header = ["model", "n", "eps", *(f"{METHOD_NAMES[m]}: ours / auto_LiRPA" for m in methods),
              "alpha-CROWN seconds: ours / auto_LiRPA"]
    return _markdown(header, rows) + "\n\n" + sources("auto_lirpa") + "\n"


BEYOND = {"audit": audit, "logit_scale": logit_scale, "verify": verify, "auto_lirpa": auto_lirpa,
          "bench": bench,
          "bench_native": lambda: bench("bench_native")}
