"""Table 1 under two settings, row by row: the per-seed accuracy difference and its 90 % interval.

    python benchmarks/nodules_compare.py A_DIR B_DIR

A_DIR and B_DIR are two ``reproduce.py nodules`` outputs on the same seeds (e.g. the sigmoid head
against ``--set head_output=softmax2``). For each row of Table 1 prints the mean accuracy of A and
B, the mean of the per-seed differences A - B with the interval of :mod:`evaluation.claims`
(Student's t, 90 %), whether the interval excludes 0, and whether the row's side of 0.8 (the
paper's pass/fail) differs; then the training-set and validation accuracies of each model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _load(folder: Path) -> tuple[dict, dict]:
    details = json.loads((folder / "details.json").read_text(encoding="utf-8"))
    results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    return details, results


def compare(a_dir, b_dir) -> list[dict]:
    """One dict per Table 1 row: accuracies of A and B, the per-seed differences and their interval."""
    from evaluation.claims import interval

    (da, _), (db, _) = _load(Path(a_dir)), _load(Path(b_dir))
    if [len(r["per_seed"]) for r in da["rows"]] != [len(r["per_seed"]) for r in db["rows"]]:
        raise ValueError(f"{a_dir} and {b_dir} hold different numbers of seeds")
    rows = []
    for ra, rb in zip(da["rows"], db["rows"], strict=True):
        diffs = [x["acc"] - y["acc"] for x, y in zip(ra["per_seed"], rb["per_seed"], strict=True)]
        stats = interval(diffs)
        lo, hi = stats["interval"]
        rows.append(
            {
                "row": f"S{ra['scenario']} {ra['loss']} D({ra['train'][0]},{ra['train'][1]}) -> D({ra['test'][0]},{ra['test'][1]})",
                "a": ra["acc"],
                "b": rb["acc"],
                "diff": stats,
                "excludes_0": lo is not None and (lo > 0 or hi < 0),
                "side_differs": (ra["acc"] >= 0.8) != (rb["acc"] >= 0.8),
            }
        )
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", help="reproduce.py nodules output A")
    parser.add_argument("b", help="reproduce.py nodules output B")
    args = parser.parse_args(argv)
    for folder in (args.a, args.b):
        if not (Path(folder) / "details.json").is_file():
            parser.error(f"{folder}: no details.json (a finished reproduce.py nodules output)")
    print("| row | A acc | B acc | A - B, mean [90 % interval] | excludes 0 | side of 0.8 differs |")
    print("|---|---|---|---|---|---|")
    for r in compare(args.a, args.b):
        lo, hi = r["diff"]["interval"]
        span = "-" if lo is None else f"[{lo:+.2f}, {hi:+.2f}]"
        print(
            f"| {r['row']} | {r['a']:.2f} | {r['b']:.2f} | {r['diff']['mean']:+.2f} {span} | "
            f"{'yes' if r['excludes_0'] else 'no'} | {'yes' if r['side_differs'] else 'no'} |"
        )
    for folder in (args.a, args.b):
        _, results = _load(Path(folder))
        cells = ", ".join(
            f"S{t['scenario']} {t['loss']} {t['acc']:.2f}/{t['val_acc']:.2f}" for t in results.get("training_sets", [])
        )
        print(f"{folder}: training / validation accuracy: {cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
