"""The report of the glf-lung / glf-liver reproduction: ours beside the paper's numbers, the claims, the ablation."""

from __future__ import annotations

import math


def _pct(value) -> str:
    return (
        "n/a"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{100 * value:.1f}"
    )


def _ms(stat) -> str:
    """``mean ± sd`` in % (``n/a`` without values)."""
    if stat is None or stat.get("mean") is None:
        return "n/a"
    return f"{100 * stat['mean']:.1f} ± {100 * stat['sd']:.1f}"


def report_markdown(results: dict, task: str) -> str:
    """The report: ours (mean ± sd over seeds) beside the paper's numbers, claims, ablation."""
    paper = results["paper_results"]
    ours = results["ours"]
    sel = results["selected"]
    s = results["settings"]
    lines = [
        f"# {results['experiment']}: adaptive GLF vs tuned baselines (Seo et al. 2021)",
        "",
        f"Data: {s['data_dir'] or 'built-in synthetic phantom'}; {s['arch']} depth {s['depth']}, "
        f"{s['base_filters']} base filters, {s['image_size']}x{s['image_size']}, {s['epochs']} epochs "
        f"of {s['steps_per_epoch'] or 'all'} steps, batch {s['batch_size']}, Adam {s['lr']:g}, "
        f"seeds {', '.join(map(str, s['seeds']))}. Took {results['minutes']} min.",
        "",
        f"T = Tversky alpha {sel['T']['alpha']:g}, beta {sel['T']['beta']:g}; E = Effectiveness "
        f"beta^2 {sel['E']['beta2']:g} (best validation Dice of the sweep, first seed); G(D) = "
        f"{sel['G(D)']} (guard {s['glf_guard']}, {s['glf_statistic']} statistics, {s['glf_counts']} "
        f"counts, beta^2 statistic {s['glf_beta2_statistic']}); G(E) = {sel['G(E)']}.",
        "",
        "Test set, in %, mean ± sd over seeds. Precision/recall/Dice: mean over tumour slices "
        "(paper Fig. 3); tumour-free Dice: empty prediction on an empty slice = 1 (Fig. 5). "
        "Paper values in brackets.",
        "",
        "| model | precision | recall | Dice | tumour-free Dice | Dice, small tumours |",
        "|---|---|---|---|---|---|",
    ]
    for k, m in ours.items():
        rec = paper["recall"].get(k)
        tfd = paper["tumour_free_dice"].get(k)
        lines.append(
            f"| {k} | {_ms(m['precision'])} | {_ms(m['recall'])}{f' [{rec}]' if rec else ''} | "
            f"{_ms(m['dice'])} | {_ms(m['tumour_free_dice'])}{f' [{tfd}]' if tfd else ''} | "
            f"{_ms(m['small_tumour_dice'])} |"
        )
    lines += [
        "",
        f"Small tumours: < {results['small_tumour_px']:.0f} px here (the paper's < 100 px at 512x512).",
        "",
    ]
    if results["claims"]:
        from evaluation.claims import RULE, summary_line

        lines += [
            f"Claims, by the shared rule ({RULE}):",
            "",
            "| claim | effect | paper | verdict: ours, mean [90 % interval] |",
            "|---|---|---|---|",
        ]
        for c in results["claims"]:
            lines.append(f"| {c['claim']} | {c['text']} | {c.get('paper', '')} | {summary_line(c, 2)} |")
            for part in c.get("parts", ()):
                lines.append(f"| - {part['claim']} | {part['text']} | | {summary_line(part, 2)} |")
    lines += ["", "Sweep (best validation Dice, pixel Dice pooled over the validation slices):", ""]
    for r in results["sweep"]["tversky"]:
        lines.append(f"- Tversky alpha {r['alpha']:g}, beta {r['beta']:g}: {_pct(r['val_dice'])}")
    for r in results["sweep"]["effectiveness"]:
        lines.append(f"- Effectiveness beta^2 {r['beta2']:g}: {_pct(r['val_dice'])}")
    if results["ablation"]:
        lines += ["", ablation_markdown(results["ablation"])]
    lines += [
        "",
        "Figures (first seed): `tumour_slices.png` (Fig. 3), `dice_vs_size.png` (Fig. 4a/c), "
        "`overlays.png` (Fig. 4b/d), `tumour_free_dice.png` (Fig. 5), `glf_coefficients.png` "
        "(Fig. 6), `glf_tversky_trajectory.png` (Fig. 7).",
        "",
    ]
    return "\n".join(lines)


def ablation_markdown(rows: list[dict]) -> str:
    """The ablation table: test metrics and what the coefficients did (in %)."""
    lines = [
        "| guard | beta^2 statistic | counts | precision | recall | Dice | tumour-free Dice | "
        "final alpha_P, alpha_N, beta^2 | steps at floor/ceiling (max over coefficients) | "
        "alphas in [0.5, 2] most of training | alphas moved up and down (rises / falls) | "
        "beta^2 > 1 most of training |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t, tr = r["test"], r["trajectory"]
        final = ", ".join(f"{tr['final'][c]:.3g}" for c in ("alpha_p", "alpha_n", "beta2"))
        at = max(v["floor_or_ceiling"] for v in tr["at_bound_fraction"].values())
        fig6 = tr["fig6"]
        lines.append(
            f"| {r['guard']} | {r['beta2_statistic']} | {r['counts']} | {_pct(t['precision'])} | "
            f"{_pct(t['recall'])} | {_pct(t['dice'])} | {_pct(t['tumour_free_dice'])} | {final} | "
            f"{100 * at:.0f} % | {'yes' if fig6['alphas_in_band_most_of_training'] else 'no'} "
            f"({100 * fig6['alpha_p_in_band_fraction']:.0f} / {100 * fig6['alpha_n_in_band_fraction']:.0f} %) | "
            f"{'yes' if fig6['alphas_oscillate'] else 'no'} "
            f"(alpha_P {fig6['moves']['alpha_p']['rises']} / {fig6['moves']['alpha_p']['falls']}, "
            f"alpha_N {fig6['moves']['alpha_n']['rises']} / {fig6['moves']['alpha_n']['falls']}) | "
            f"{'yes' if fig6['beta2_above_1_most_of_training'] else 'no'} "
            f"({100 * fig6['beta2_above_1_fraction']:.0f} %) |"
        )
    return "\n".join(lines)
