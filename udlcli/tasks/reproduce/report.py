"""The study's report: report.md beside the figures, and a self-contained report.html with every figure embedded."""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path
from typing import Any

from udlcli.tasks.reproduce.study import Study

# The sections of the original report, and which steps go in each (by command and the word after it).
SECTIONS: list[tuple[str, set[tuple[str, str | None]]]] = [
    ("Autoencoder and hyperparameter search", {("tune", "ae"), ("train", "ae")}),
    ("Latent space", {("embed", None), ("sample", "ae")}),
    ("Fine-tuning a classifier on the frozen encoder", {("tune", "finetune"), ("finetune", None)}),
    ("Denoising autoencoder", {("denoise", None), ("train", "dae")}),
    ("Variational autoencoder", {("train", "vae"), ("sample", "vae")}),
    ("GAN", {("gan", None), ("sample", "gan")}),
    ("Sample quality", {("evaluate", None)}),
]

# The original report's numbers (shared/reference/seed-report.md), under the labels our steps use.
REFERENCE: dict[tuple[str, str | None], dict[str, Any]] = {
    ("tune", "ae"): {
        "trials": "100, at most 40 epochs each",
        "best channels": 12,
        "best latent_dim": 7,
        "best optimizer": "adam",
        "best lr": 0.002218,
        "best weight_decay": 1.01e-5,
    },
    ("train", "ae"): {
        "channels": 12,
        "latent_dim": 7,
        "optimizer": "adam",
        "lr": 0.002218,
        "weight decay": 1.01e-5,
    },
    ("tune", "finetune"): {
        "trials": "50",
        "best hidden": 928,
        "best dropout": 0.104258,
        "best optimizer": "adam",
        "best lr": 0.001839,
        "best weight_decay": 5.81e-5,
    },
    ("finetune", None): {"hidden": 928, "dropout": 0.104258, "test accuracy": 0.963},
}

Block = tuple  # ("h1"|"h2"|"h3"|"p", text) | ("table", headers, rows) | ("img", path, caption)


def write(report_dir: Path, study: Study, states: dict[str, dict], settings: dict) -> list[Path]:
    """Write report.md and report.html from the steps finished so far; called after every step."""
    blocks = _blocks(report_dir, study, states, settings)
    md = report_dir / "report.md"
    page = report_dir / "report.html"
    _atomic(md, _markdown(blocks, report_dir))
    _atomic(page, _html(blocks, study.name))
    return [md, page]


def _atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _summary_of(states: dict[str, dict]) -> dict:
    """The first finished training step's summary.json: the dataset, its sizes and the device."""
    for s in states.values():
        if s.get("status") == "done":
            p = Path(s["output"]["run_dir"]) / "summary.json"
            if p.is_file():
                try:
                    d = json.loads(p.read_text())
                except ValueError:
                    continue
                if "dataset" in d:
                    return d
    return {}


def _blocks(report_dir: Path, study: Study, states: dict[str, dict], settings: dict) -> list[Block]:
    done = [n for n in study.steps if states.get(n, {}).get("status") == "done"]
    b: list[Block] = [("h1", f"{study.name}: unsupervised deep learning on image data")]
    if study.description:
        b.append(("p", study.description))
    b.append(
        (
            "p",
            f"Made by udl reproduce from {settings.get('source', study.path)}, profile {study.profile}: "
            f"{len(done)} of {len(study.steps)} steps done. The original report's numbers stand beside ours where it gives them.",
        )
    )
    s = _summary_of(states)
    rows = []
    if s:
        d = s["dataset"]
        rows += [
            [
                "dataset",
                f"{d['name']}: {d['train_size']:,} training images (80/20 train/validation split) and {d['test_size']:,} test images",
            ],
            ["device", str(s.get("device", "n/a"))],
        ]
    rows += [[k, str(v)] for k, v in (settings.get("versions") or {}).items()]
    rows.append(["command", settings.get("command") or "udl reproduce"])
    b.append(("table", ["setting", "value"], rows))

    b.append(("h2", "Steps"))
    b.append(
        (
            "table",
            ["step", "command", "status", "wall time"],
            [
                [n, st.params.run, states.get(n, {}).get("status", "pending"), _wall(states.get(n))]
                for n, st in study.steps.items()
            ],
        )
    )
    if study.skipped:
        b.append(("p", f"Left out by the {study.profile} profile: {', '.join(study.skipped)}."))
    for n in study.steps:
        if states.get(n, {}).get("status") == "failed":
            b.append(("p", f"Step {n} failed: {states[n].get('error', '')}"))
    b += _families(study, states)

    placed: set[str] = set()
    for title, keys in [*SECTIONS, ("Other steps", None)]:
        names = [
            n
            for n, st in study.steps.items()
            if n not in placed and (keys is None or (st.command, st.what) in keys)
        ]
        placed |= set(names)
        if not names:
            continue
        b.append(("h2", title))
        for n in names:
            b += _step_blocks(study, n, states.get(n))
    return b


TRAINS = ("train", "gan", "denoise")
"""The commands whose step trains a model: one row each in the families table."""
FAMILY_COLUMNS = [
    "dataset",
    "family",
    "step",
    "parameters",
    "training time",
    "test MSE",
    "linear probe",
    "kNN",
    "FID (udl-LeNet)",
    "precision / recall",
    "class share min–max",
]


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _families(study: Study, states: dict[str, dict]) -> list[Block]:
    """Every trained model in one table, each measured where its family can be (the others are '–'), and one figure each.

    The numbers come from the steps that used it: a probe step (`from:` it) for the features, an
    evaluate step (`runs:` naming it) for the samples; a model no such step used shows '–' there.
    """
    out = {n: s["output"] for n, s in states.items() if s.get("status") == "done"}
    trained = [n for n, st in study.steps.items() if st.command in TRAINS and n in out]
    if len(trained) < 2:
        return []
    by_source: dict[str, dict[str, str]] = {}  # trained step -> {command: the step that used it}
    scores: dict[str, dict] = {}  # trained step -> its evaluate metrics
    for n, st in study.steps.items():
        if n not in out:
            continue
        if st.command in ("probe", "embed", "sample"):
            by_source.setdefault(st.params.from_, {}).setdefault(st.command, n)
        elif st.command == "evaluate":
            found = _read_json(Path(out[n]["run_dir"]) / "evaluation.json").get("steps")
            scores |= found if isinstance(found, dict) else {}
    dash = "–"
    rows, figures = [], []
    for n in trained:
        s = _read_json(Path(out[n]["run_dir"]) / "summary.json")
        params = s.get("params")
        if isinstance(params, dict):  # a GAN counts its generator and discriminator apart
            params = sum(v for v in params.values() if isinstance(v, (int, float)))
        family = str(s.get("model", study.steps[n].what or n)) + (
            f" ({s['arch']})" if s.get("arch") else ""
        )
        used = by_source.get(n, {})
        probe = out[used["probe"]]["numbers"] if "probe" in used else {}
        linear = probe.get("linear probe accuracy")
        knn = next((v for k, v in probe.items() if k.endswith("-NN accuracy (cosine)")), None)
        m = scores.get(n) or {}
        fid, prec, rec = m.get("fid"), m.get("precision"), m.get("recall")
        bal = m.get("balance") or {}
        rows.append(
            [
                (s.get("dataset") or {}).get("name", dash),
                family,
                n,
                _fmt(params) if isinstance(params, (int, float)) else dash,
                _wall({"wall_s": s["train_time_s"]}) if "train_time_s" in s else _wall(states[n]),
                _fmt(s["test_mse"]) if "test_mse" in s else dash,
                f"{linear:.2%}" if isinstance(linear, float) else dash,
                f"{knn:.2%}" if isinstance(knn, float) else dash,
                _fmt(fid) if fid is not None else dash,
                f"{prec:.3f} / {rec:.3f}" if prec is not None and rec is not None else dash,
                f"{bal['min_share']:.1%}–{bal['max_share']:.1%}"
                if {"min_share", "max_share"} <= set(bal)
                else dash,
            ]
        )
        # A map says what an encoder learnt and a grid what a generator draws: the map first, where
        # an embed step drew one. (Copied lists: the steps' own lists are the states written to disk.)
        pics = [*out[used["embed"]]["figures"]] if "embed" in used else []
        pics += out[used["sample"]]["figures"] if "sample" in used else []
        pics += [f for f in out[n]["figures"] if "sample" in Path(f).stem]
        pic = next((Path(f) for f in pics if f.endswith(".png") and Path(f).is_file()), None)
        if pic is not None:
            figures.append(("img", pic, f"{rows[-1][0]} {family} ({n}): {pic.name}"))
    return [
        ("h2", "Families"),
        (
            "p",
            "Every model the study trained, side by side: test MSE on [0, 1] pixels where the family "
            "reconstructs, the linear-probe and kNN (cosine) accuracy of its frozen features "
            "on the test split where it encodes (a probe step), and its samples against the test split "
            "where it generates (an evaluate step); '–' where it does not, or no step measured it.",
        ),
        ("table", FAMILY_COLUMNS, rows),
        *figures,
    ]


def _wall(state: dict | None) -> str:
    if not state or "wall_s" not in state:
        return ""
    w = state["wall_s"]
    return f"{w:.0f} s" if w < 120 else f"{w / 60:.1f} min"


def _step_blocks(study: Study, n: str, state: dict | None) -> list[Block]:
    st = study.steps[n]
    b: list[Block] = [("h3", f"{st.params.title or n}: udl {st.params.run}")]
    if not state or state.get("status") != "done":
        return b + [("p", "Not run yet." if not state else f"Failed: {state.get('error', '')}")]
    out = state["output"]
    ref = REFERENCE.get((st.command, st.what), {})
    labels = list(out["numbers"]) + [k for k in ref if k not in out["numbers"]]
    head = ["quantity", "udl", "original report"] if ref else ["quantity", "udl"]
    rows = [
        [
            k,
            _fmt(out["numbers"].get(k)) if k in out["numbers"] else "",
            *([_fmt(ref[k]) if k in ref else ""] if ref else []),
        ]
        for k in labels
    ]
    b.append(("p", f"Run folder: {out['run_dir']}; {_wall(state)}."))
    if rows:
        b.append(("table", head, rows))
    b += [("img", Path(f), f"{n}: {Path(f).name}") for f in out["figures"] if Path(f).is_file()]
    return b


# ---------------------------------------------------------------- renderers


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    esc = lambda c: str(c).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(map(esc, head)) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(map(esc, r)) + " |" for r in rows])


def _markdown(blocks: list[Block], report_dir: Path) -> str:
    parts = []
    for kind, *rest in blocks:
        if kind in ("h1", "h2", "h3"):
            parts.append("#" * int(kind[1]) + " " + rest[0])
        elif kind == "p":
            parts.append(rest[0])
        elif kind == "table":
            parts.append(_md_table(*rest))
        else:  # images by path relative to the report, so the folder can be moved as a whole
            path, caption = rest
            parts.append(
                f"![{caption}]({Path(os.path.relpath(path.resolve(), report_dir.resolve())).as_posix()})"
            )
    return "\n\n".join(parts) + "\n"


MIME = {
    ".png": "image/png",
    ".gif": "image/gif",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".svg": "image/svg+xml",
}
CSS = """body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:0.5rem 0 1rem}td,th{border:1px solid #ccc;padding:0.2rem 0.6rem;text-align:left}
th{background:#f3f3f3}figure{margin:0.5rem 0 1.5rem}img{max-width:min(100%,48rem);border:1px solid #eee}figcaption{color:#666;font-size:0.9em}"""


def _html(blocks: list[Block], title: str) -> str:
    """One file with no outside references: figures are data: URIs, the style is inline."""
    e = html.escape
    body = []
    for kind, *rest in blocks:
        if kind in ("h1", "h2", "h3", "p"):
            body.append(f"<{kind}>{e(rest[0])}</{kind}>")
        elif kind == "table":
            head, rows = rest
            body.append(
                "<table><tr>"
                + "".join(f"<th>{e(h)}</th>" for h in head)
                + "</tr>"
                + "".join(
                    "<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>" for r in rows
                )
                + "</table>"
            )
        else:
            path, caption = rest
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            mime = MIME.get(path.suffix.lower(), "application/octet-stream")
            body.append(
                f'<figure><img src="data:{mime};base64,{data}" alt="{e(caption)}"><figcaption>{e(caption)}</figcaption></figure>'
            )
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title><style>{CSS}</style></head>\n'
        "<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
