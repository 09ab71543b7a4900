"""``build``: the board as a static site (plain HTML, one CSS file, a little script to sort).

``index.html`` holds one section per benchmark (name, version, split, subset)
and, inside it, one sortable table per judge: scores from different judges are
never ranked together. Each entry has its own page with its metadata, its
scores, the corrections and spot checks the board made, and a grid of its
generated images beside the ground truth. Every string read from the board is
HTML-escaped, and only http(s) links are made clickable.
"""

from __future__ import annotations

import html
import logging
import shutil
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from knowgen.errors import DataError
from knowgen.eval.rundir import atomic_write_text
from knowgen.leaderboard.archive import unsafe_reason
from knowgen.leaderboard.board import ENTRIES, load_entries
from knowgen.leaderboard.site_assets import SORT_JS, STYLE_CSS

logger = logging.getLogger(__name__)

GROUP_LABELS = {"science_and_knowledge": "Science", "pop_culture_and_news": "Pop culture"}
DIM_LABELS = {"faithfulness": "F", "visual_correctness": "V", "text_accuracy": "T",
              "aesthetics": "A"}


def esc(value: Any) -> str:
    """HTML-escape ``value`` for text and quoted attributes."""
    return html.escape("" if value is None else str(value), quote=True)


def _page(title: str, body: str, prefix: str = "") -> str:
    return (f'<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{esc(title)}</title>\n"
            f'<link rel="stylesheet" href="{prefix}style.css">\n'
            f'<script src="{prefix}sort.js" defer></script>\n</head>\n<body>\n{body}\n'
            f"</body>\n</html>\n")


def _board_key(entry: dict[str, Any]) -> tuple[str, ...]:
    b = entry["submission"]["benchmark"]
    args = ", ".join(f"{k} {v}" for k, v in sorted((b.get("args") or {}).items()))
    return (str(b["name"]), str(b["version"]), str(b["split"]), str(b.get("limit") or ""), args)


def _board_label(key: tuple[str, ...]) -> str:
    name, version, split, limit, args = key
    parts = [f"{name} {version}", f"split {split}"]
    if limit:
        parts.append(f"subset of {limit} tasks")
    if args:
        parts.append(args)
    return " · ".join(parts)


def _judge(entry: dict[str, Any]) -> str:
    """The judge as shown: its name, and its model when that says more (``openai (gpt-4.1)``)."""
    j = entry["submission"]["judge"]
    name, model = str(j.get("name") or ""), str(j.get("model") or "")
    return f"{name} ({model})" if model and model != name else name


def _fmt(value: Any, rubric: str) -> tuple[str, str]:
    """(shown text, sort value) of a 0-1 score; KnowGen scores are shown x100, as the K-Score."""
    if not isinstance(value, (int, float)):
        return "–", ""
    if rubric == "knowgen":
        return f"{value * 100:.2f}", f"{value:.6f}"
    return f"{value:.4f}", f"{value:.6f}"


def _columns(entries: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    groups: list[str] = []
    cats: list[str] = []
    for e in entries:
        groups += [g for g in e["scores"].get("groups", {}) if g not in groups]
        cats += [c for c in e["scores"].get("categories", {}) if c not in cats]
    return groups, sorted(cats)


def _th(label: str, numeric: bool, title: str = "") -> str:
    cls = ' class="num"' if numeric else ""
    tip = f' title="{esc(title)}"' if title else ""
    return f'<th{cls}{tip}><button type="button">{esc(label)}</button></th>'


def _headline(entry: dict[str, Any]) -> float:
    value = entry["scores"].get("headline")
    return float(value) if isinstance(value, (int, float)) else float("-inf")


def _row(rank: int, e: dict[str, Any], groups: list[str]) -> str:
    s, sub, rubric = e["scores"], e["submission"], e["scores"]["rubric"]
    head = s.get("headline")
    head_txt = f"{head:.2f}" if rubric == "knowgen" and isinstance(head, (int, float)) \
        else _fmt(head, rubric)[0]
    link = f'<a href="entries/{esc(e["entry_id"])}.html">{esc(sub["system"])}</a>'
    value = esc(head if head is not None else "")
    cells = [f'<td class="num" data-value="{rank}">{rank}</td>',
             f'<td data-value="{esc(sub["system"])}">{link}</td>',
             f'<td class="text">{esc(sub["agent"])}</td>',
             f'<td class="text">{esc(sub["generator"])}</td>',
             f'<td class="num" data-value="{value}">{esc(head_txt)}</td>',
             _coverage_cell(s)]
    for key in groups:
        shown, value = _fmt(s.get("groups", {}).get(key), rubric)
        cells.append(f'<td class="num" data-value="{value}">{esc(shown)}</td>')
    checks = '<span class="badge warn">flagged</span>' if e.get("flagged") else ""
    if e.get("corrections"):
        checks += f' <span class="badge">{len(e["corrections"])} corrected</span>'
    cells += [f"<td>{esc(sub['date'])}</td>", f"<td>{checks}</td>"]
    cls = ' class="flagged"' if e.get("flagged") else ""
    return f'<tr{cls} data-entry="{esc(e["entry_id"])}">{"".join(cells)}</tr>'


def _coverage(scores: dict[str, Any]) -> tuple[str, str]:
    """(shown text, sort value) of an entry's coverage: evaluated / asked-for samples."""
    share, n, total = scores.get("coverage"), scores.get("n_evaluated"), scores.get("n_expected")
    if not isinstance(share, (int, float)) or not total:
        return "–", ""
    return f"{share * 100:.0f}% ({n}/{total})", f"{share:.6f}"


def _coverage_cell(scores: dict[str, Any]) -> str:
    shown, value = _coverage(scores)
    return f'<td class="num" data-value="{value}">{esc(shown)}</td>'


def _table(entries: list[dict[str, Any]]) -> str:
    """One judge's ranking: the judge is named in the heading above, categories on entry pages."""
    groups, _ = _columns(entries)
    label = entries[0]["scores"].get("headline_label", "Score")
    heads = [_th("#", True), _th("System", False), _th("Agent", False),
             _th("Generator", False), _th(label, True),
             _th("Coverage", True, "samples evaluated of those asked for; the others count "
                 "0 in every score")]
    heads += [_th(GROUP_LABELS.get(g, g), True, f"group {g}") for g in groups]
    heads += [_th("Date", False), _th("Checks", False)]
    ranked = sorted(entries, key=lambda e: (-_headline(e), e["submission"]["system"]))
    rows = "\n".join(_row(i, e, groups) for i, e in enumerate(ranked, 1))
    return (f'<div class="scroll"><table class="sortable board">\n<thead><tr>{"".join(heads)}'
            f"</tr></thead>\n<tbody>\n{rows}\n</tbody></table></div>")


def _section(key: tuple[str, ...], entries: list[dict[str, Any]]) -> str:
    by_judge: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        by_judge.setdefault(_judge(e), []).append(e)
    parts = [f"<section><h2>{esc(_board_label(key))}</h2>"]
    if len(by_judge) > 1:
        parts.append('<p class="note">Entries judged by different judges are not comparable, '
                     "so each judge has its own table.</p>")
    for judge, items in sorted(by_judge.items()):
        parts.append(f"<h3>Judged by {esc(judge)}</h3>")
        parts.append(_table(items))
    parts.append("</section>")
    return "\n".join(parts)


def render_index(entries: list[dict[str, Any]]) -> str:
    """The HTML of ``index.html``."""
    boards: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for e in entries:
        boards.setdefault(_board_key(e), []).append(e)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    intro = (f"{len(entries)} entries, built {stamp}. Every score is recomputed from the "
             "per-sample judgements; KnowGen scores (the K-Score, groups, categories, "
             "dimensions and per-sample scores) are shown x100 everywhere. Per-category "
             "scores are on each entry's page. Click a column header to sort.")
    body = [f"<header><h1>knowgen leaderboard</h1><p>{intro}</p></header><main>"]
    body += [_section(k, boards[k]) for k in sorted(boards)]
    if not entries:
        body.append("<p>No entries yet.</p>")
    body.append("</main>")
    return _page("knowgen leaderboard", "\n".join(body))


def _link(url: Any) -> str:
    text = esc(url)
    parts = urlsplit(str(url or ""))
    if parts.scheme in ("http", "https") and parts.netloc:
        return f'<a href="{text}" rel="nofollow noopener">{text}</a>'
    return text


def _meta(e: dict[str, Any]) -> str:
    sub = e["submission"]
    b = sub["benchmark"]
    samples = f"{e['n_samples']} ({e['scores'].get('n_evaluated', 0)} evaluated)"
    source = f"{e['source']['name']} (sha256 {e['source']['sha256'][:16]}...)"
    rows = [("Agent", sub["agent"]), ("Generator", sub["generator"]), ("Judge", _judge(e)),
            ("Benchmark", _board_label(_board_key(e))), ("Split", b["split"]),
            ("Date", sub["date"]), ("Contact", sub["contact"]), ("Samples", samples),
            ("Added", e.get("added_at")), ("Source", source)]
    items = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in rows)
    if sub.get("link"):
        items += f"<dt>Link</dt><dd>{_link(sub['link'])}</dd>"
    desc = f"<p>{esc(sub.get('description'))}</p>" if sub.get("description") else ""
    return f'<dl class="meta">{items}</dl>{desc}'


def _scores(e: dict[str, Any]) -> str:
    s, rubric = e["scores"], e["scores"]["rubric"]
    rows = [(s.get("headline_label", "Score"), s.get("headline"), True),
            ("Coverage (not evaluated = 0)", _coverage(s)[0], True)]
    rows += [(GROUP_LABELS.get(g, g), v, False) for g, v in s.get("groups", {}).items()]
    rows += [(f"{k} ({DIM_LABELS.get(k, k)})", v, False) for k, v in s.get("dimensions", {}).items()]
    rows += [(f"category {c}", v, False) for c, v in s.get("categories", {}).items()]
    body = "".join(f"<tr><th>{esc(k)}</th><td class=\"num\">"
                   f"{esc(v if raw else _fmt(v, rubric)[0])}</td></tr>" for k, v, raw in rows)
    return f"<table>{body}</table>"


def _checks(e: dict[str, Any]) -> str:
    out = []
    for flag in e.get("flags", []):
        out.append(f'<p><span class="badge warn">flagged</span> {esc(flag)}</p>')
    if e.get("corrections"):
        items = "".join(f"<li>{esc(c)}</li>" for c in e["corrections"])
        out.append(f"<h3>Corrections</h3><p class=\"note\">Submitted values that disagreed with "
                   f"the recomputed ones; the board shows the recomputed values.</p><ul>{items}</ul>")
    rj = e.get("rejudge")
    if rj:
        rows = "".join(f"<tr><td>{esc(r['id'])}</td><td class=\"num\">{esc(r['submitted'])}</td>"
                       f"<td class=\"num\">{esc(r['rejudged'])}</td></tr>" for r in rj["samples"])
        out.append(f"<h3>Spot check</h3><p>{esc(rj['n'])} sample(s) re-judged with "
                   f"{esc(rj['judge'])} (seed {esc(rj['seed'])}): mean absolute difference "
                   f"{esc(rj['mean_abs_diff'])}, tolerance {esc(rj['tolerance'])}.</p>"
                   f"<table><thead><tr><th>id</th><th>submitted</th><th>re-judged</th></tr>"
                   f"</thead><tbody>{rows}</tbody></table>")
    return "\n".join(out)


def _figure(src: str | None, caption: str) -> str:
    if src is None:
        return f'<figure><div class="missing">no image</div><figcaption>{esc(caption)}' \
               "</figcaption></figure>"
    return (f'<figure><img src="{esc(src)}" alt="{esc(caption)}" loading="lazy">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def _card(row: dict[str, Any], images: dict[str, str]) -> str:
    scores = ""
    if "overall" in row:
        parts = [f"{DIM_LABELS[d]} {100 * row[d]:g}" for d in DIM_LABELS if d in row]
        na = " (text n/a)" if row.get("text_accuracy_na") else ""
        scores = f"overall {100 * row['overall']:.2f} · {' · '.join(parts)}{na} (x100)"
    elif "wise" in row:
        scores = " · ".join(f"{k} {v}" for k, v in row["wise"].items())
    elif not row.get("success"):
        scores = "not evaluated"
    return (f'<div class="card"><div class="pair">{_figure(images.get("image"), "generated")}'
            f'{_figure(images.get("gt"), "ground truth")}</div>'
            f"<p><strong>{esc(row['id'])}</strong> · {esc(row.get('category'))} · "
            f"{esc(row.get('difficulty'))}</p><p>{esc(row.get('prompt'))}</p>"
            f'<div class="scores">{esc(scores)}</div></div>')


def render_entry(e: dict[str, Any], images: list[dict[str, str]]) -> str:
    """The HTML of one entry's page; ``images[i]`` maps ``image``/``gt`` to site paths."""
    sub = e["submission"]
    cards = "\n".join(_card(row, imgs) for row, imgs in zip(e["samples"], images))
    body = (f'<header><p><a href="../index.html">&larr; all entries</a></p>'
            f"<h1>{esc(sub['system'])}</h1></header><main>{_checks(e)}"
            f"<h2>Submission</h2>{_meta(e)}<h2>Scores</h2>{_scores(e)}"
            f'<h2>Samples</h2><div class="grid">{cards}</div></main>')
    return _page(f"{sub['system']} · knowgen leaderboard", body, prefix="../")


def _copy_images(board: Path, out: Path, e: dict[str, Any]) -> list[dict[str, str]]:
    """Copy the entry's images into the site; returns page-relative paths per sample."""
    src_root = (board / ENTRIES / e["entry_id"]).resolve()
    dest_root = out / ENTRIES / e["entry_id"]
    result = []
    for row in e["samples"]:
        found: dict[str, str] = {}
        for key in ("image", "gt"):
            rel = row.get(key)
            if not isinstance(rel, str) or unsafe_reason(rel):
                continue
            src = (src_root / rel).resolve()
            if not src.is_relative_to(src_root) or not src.is_file():
                logger.warning("entry %s: image %r is missing; skipped", e["entry_id"], rel)
                continue
            (dest_root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest_root / rel)
            found[key] = f"{e['entry_id']}/{rel}"
        result.append(found)
    return result


def build(board_dir: str | Path, out_dir: str | Path) -> Path:
    """Write the static site of the board in ``board_dir`` into ``out_dir``.

    Returns:
        The path of ``index.html``.

    Raises:
        knowgen.errors.DataError: when an entry of the board is unreadable.
    """
    board, out = Path(board_dir), Path(out_dir)
    if not (board / ENTRIES).is_dir():
        what = "does not exist" if not board.exists() else f"is not a board (no {ENTRIES}/ folder)"
        raise DataError(f"Board folder {board} {what}; pass the --board folder that "
                        "'knowgen leaderboard add' or 'seed' wrote.")
    entries = load_entries(board)
    (out / ENTRIES).mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "style.css", STYLE_CSS)
    atomic_write_text(out / "sort.js", SORT_JS)
    for e in entries:
        pages = _copy_images(board, out, e)
        atomic_write_text(out / ENTRIES / f"{e['entry_id']}.html", render_entry(e, pages))
    atomic_write_text(out / "index.html", render_index(entries))
    logger.info("Wrote the site of %d entries to %s", len(entries), out)
    return out / "index.html"

