"""A self-contained HTML report of one run folder (``knowgen report RUN_DIR``).

The page shows the run header (benchmark, policy, versions, K-Score, group
scores), a bar chart of per-category scores, a per-category table and one card
per sample: the generated image beside the ground truth, the prompt, the judge
scores and rationales, the answer and the tool calls. Images are embedded as
data URIs, so the one file can be mailed or archived. Category filters are
plain anchors plus CSS ``:target`` rules; the page runs no script.

Everything read from the run folder is treated as untrusted text and escaped.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import knowgen
from knowgen.errors import RunError
from knowgen.eval.charts import GROUP_LABELS, chart_bars, save_category_chart, thumbnail_uri
from knowgen.eval.rundir import atomic_write_text
from knowgen.eval.scoring import DIMENSIONS

logger = logging.getLogger(__name__)

OBSERVATION_CHARS = 1500
ACTION_CHARS = 4000
EVIDENCE_CHARS = 6000
_SCORE_KEYS = (*DIMENSIONS, "overall")
_SHORT = {"faithfulness": "faithful", "visual_correctness": "visual",
          "text_accuracy": "text in image", "aesthetics": "aesthetic", "overall": "overall"}


@dataclass
class SampleEntry:
    """One line of ``samples.jsonl``: the record, or why it could not be read."""

    line: int
    record: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class RunData:
    """What the report shows: the validated summary and every sample line."""

    run_dir: Path
    summary: dict[str, Any]
    samples: list[SampleEntry] = field(default_factory=list)
    samples_missing: bool = False


def esc(value: Any) -> str:
    """HTML-escape any value (quotes included) after turning it into text."""
    return html.escape("" if value is None else str(value), quote=True)


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return None
    return float(value)


def _fmt(value: Any, digits: int = 2, scale: float = 1.0) -> str:
    v = _num(value)
    return "–" if v is None else f"{v * scale:.{digits}f}"


def _clip_text(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}\n… ({len(text) - limit} more characters)"


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, indent=1, default=str)


# ---------------------------------------------------------------- reading


def _load_summary(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "summary.json"
    if not path.is_file():
        hint = (" The run has not finished: run the same 'knowgen eval' command with "
                f"--run-dir {run_dir} to complete it." if (run_dir / "run.json").is_file()
                else " Pass a folder written by 'knowgen eval'.")
        raise RunError(f"{run_dir} has no summary.json.{hint}")
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunError(f"{path} is not valid JSON ({exc}). Re-run the same 'knowgen eval' "
                       f"command with --run-dir {run_dir} to rewrite it.") from exc
    _check_summary(summary, path)
    return summary


def _check_summary(summary: Any, path: Path) -> None:
    def bad(what: str) -> RunError:
        return RunError(f"{path} is not a knowgen run summary: {what}. Re-run the same "
                        "'knowgen eval' command with --run-dir to rewrite it.")

    if not isinstance(summary, dict):
        raise bad("it is not a JSON object")
    missing = [k for k in ("benchmark", "split", "policy", "scores") if k not in summary]
    if missing:
        raise bad(f"missing key(s) {', '.join(missing)}")
    scores = summary["scores"]
    if not isinstance(scores, dict):
        raise bad("'scores' is not an object")
    items = {"overall_avg": scores.get("overall_avg")}
    for name in ("groups", "categories"):
        part = scores.get(name, {})
        if not isinstance(part, dict):
            raise bad(f"'scores.{name}' is not an object")
        items.update({f"{name}.{k}": v for k, v in part.items()})
    for name, item in items.items():
        if not isinstance(item, dict) or not isinstance(item.get("avg_scores"), dict):
            raise bad(f"'scores.{name}' has no 'avg_scores' object")


def _read_samples(path: Path) -> list[SampleEntry]:
    entries = []
    raw = path.read_bytes()
    for n, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            entries.append(SampleEntry(n, error=f"line {n} is not valid JSON ({exc})"))
            continue
        problem = _sample_problem(rec)
        entries.append(SampleEntry(n, error=f"line {n}: {problem}") if problem
                       else SampleEntry(n, record=rec))
    return entries


_SAMPLE_TYPES: dict[str, tuple[type, ...]] = {
    "prompt": (str,), "meta": (dict,), "image_judgement": (dict,), "text_judgement": (dict,),
    "answer": (dict,), "references": (list,), "trajectory": (list,), "reward_terms": (dict,),
    "output_path": (str,), "gt_image": (str,),
}


def _sample_problem(rec: Any) -> str | None:
    if not isinstance(rec, dict):
        return "not a JSON object"
    if not isinstance(rec.get("id"), (str, int)) or isinstance(rec.get("id"), bool):
        return "no 'id'"
    for key, types in _SAMPLE_TYPES.items():
        if rec.get(key) is not None and not isinstance(rec[key], types):
            return f"'{key}' should be {types[0].__name__}, not {type(rec[key]).__name__}"
    return None


def load_run(run_dir: str | Path) -> RunData:
    """Read and validate a run folder for the report.

    Raises:
        RunError: when the folder or its ``summary.json`` is missing or malformed.
            A malformed sample line does not raise; it is reported as unreadable.
    """
    root = Path(run_dir)
    if not root.is_dir():
        raise RunError(f"{root} is not a folder. Pass a run folder written by 'knowgen eval'.")
    summary = _load_summary(root)
    log = root / "samples.jsonl"
    if not log.is_file():
        logger.warning("%s has no samples.jsonl; the report shows the summary only", root)
        return RunData(root, summary, [], samples_missing=True)
    entries = _read_samples(log)
    bad = sum(1 for e in entries if e.error)
    if bad:
        logger.warning("%d unreadable line(s) in %s", bad, log)
    return RunData(root, summary, entries)


# ---------------------------------------------------------------- images


def _figure(run_dir: Path, rel: Any, caption: str, sid: str) -> str:
    if not isinstance(rel, str) or not rel:
        return f'<figure class="noimg"><div>no image</div><figcaption>{esc(caption)}</figcaption></figure>'
    root = run_dir.resolve()
    path = (run_dir / rel).resolve()
    try:
        path.relative_to(root)
        uri = thumbnail_uri(path)
    except ValueError:
        note = "outside the run folder"
    except OSError as exc:
        note = "missing" if not path.exists() else f"unreadable ({type(exc).__name__})"
    else:
        return (f'<figure><img src="{uri}" alt="{esc(caption)} image of {esc(sid)}">'
                f"<figcaption>{esc(caption)}</figcaption></figure>")
    return (f'<figure class="noimg"><div>{esc(rel)}<br>{esc(note)}</div>'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


# ---------------------------------------------------------------- page parts


def _slug(category: str, index: int) -> str:
    return f"{index}-{re.sub(r'[^a-z0-9]+', '-', category.lower()).strip('-')[:40] or 'x'}"


def _category(rec: dict[str, Any]) -> str:
    meta = rec.get("meta") or {}
    return str(meta.get("category", "")).lower() or "(none)"


def _header(s: dict[str, Any]) -> str:
    fields = [("benchmark", s.get("benchmark")), ("split", s.get("split")),
              ("policy", s.get("policy")), ("seed", s.get("seed")),
              ("benchmark version", s.get("benchmark_version")),
              ("knowgen", s.get("knowgen_version")), ("git", s.get("git_hash")),
              ("written", s.get("written_at")),
              ("samples", f"{s.get('n_evaluated', '?')} evaluated of {s.get('n_samples', '?')}"),
              ("mean reward", _fmt(s.get("mean_reward"), 3)),
              ("mean text-judge score", _fmt(s.get("mean_text_score"), 3)),
              ("mean turns", _fmt(s.get("mean_turns"), 1))]
    dl = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in fields if v is not None)
    k = s.get("k_score", s["scores"].get("k_score"))
    headline = f"K-Score <b>{_fmt(k)}</b>"
    if s.get("rubric") == "wise":
        w = s.get("wise") or {}
        value = w.get("overall") if w.get("overall") is not None else w.get("partial_overall")
        label = "overall" if w.get("overall") is not None else "partial overall (not comparable)"
        headline = f"WISE {esc(w.get('variant'))} {label} <b>{_fmt(value, 4)}</b>"
    rows = [(GROUP_LABELS.get(g, g), item) for g, item in s["scores"].get("groups", {}).items()]
    rows.append(("overall", s["scores"]["overall_avg"]))
    config = esc(json.dumps(s.get("config"), indent=2, ensure_ascii=False, default=str))
    return (f'<header><h1>knowgen report: {esc(s["policy"])} on '
            f'{esc(s["benchmark"])} / {esc(s["split"])}</h1>'
            f'<p class="kscore">{headline}</p><dl class="meta">{dl}</dl>'
            f"{_score_table(rows, 'group')}"
            f"<details><summary>configuration</summary><pre>{config}</pre></details></header>")


def _score_cells(avg: dict[str, Any]) -> str:
    return "".join(f"<td>{_fmt(avg.get(d), 3)}</td>" for d in DIMENSIONS)


def _score_table(rows: list[tuple[str, dict[str, Any]]], first: str,
                 links: dict[str, str] | None = None) -> str:
    head = "".join(f"<th>{esc(_SHORT[d])}</th>" for d in DIMENSIONS)
    body = []
    for name, item in rows:
        avg = item.get("avg_scores", {})
        label = esc(name)
        if links and name in links:
            label = f'<a href="#{links[name]}">{label}</a>'
        body.append(f"<tr><th>{label}</th><td>{esc(item.get('count', ''))}</td>"
                    f"<td><b>{_fmt(avg.get('overall'), 2, 100)}</b></td>{_score_cells(avg)}</tr>")
    return (f'<table class="scores"><thead><tr><th>{esc(first)}</th><th>n</th>'
            f"<th>overall ×100</th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")


def _score_class(value: float | None) -> str:
    if value is None:
        return "na"
    return "hi" if value >= 0.75 else "mid" if value >= 0.25 else "lo"


_WISE_KEYS = ("consistency", "realism", "aesthetic_quality", "wiscore", "score")


def _wise_scores(judged: dict[str, Any]) -> str:
    keys = [k for k in _WISE_KEYS if k in judged]
    head = "".join(f"<th>{esc(k.replace('_', ' '))}</th>" for k in keys)
    cells = "".join(f"<td>{_fmt(judged.get(k))}</td>" for k in keys)
    return f'<table class="sscores"><tr>{head}</tr><tr>{cells}</tr></table>'


def _sample_scores(rec: dict[str, Any]) -> str:
    if isinstance(rec.get("wise_judgement"), dict):
        return _wise_scores(rec["wise_judgement"])
    judged = rec.get("image_judgement") or {}
    cells = []
    for key in _SCORE_KEYS:
        v = _num(judged.get(key))
        text = _fmt(v)
        if key == "text_accuracy" and judged.get("text_accuracy_na"):
            text = f"N/A ({text})"
        cells.append(f'<td class="{_score_class(v)}">{esc(text)}</td>')
    tj = rec.get("text_judgement") or {}
    tj_score = _num(tj.get("score"))
    cells.append(f'<td class="{_score_class(tj_score)}">{_fmt(tj_score)}</td>')
    cells.append(f"<td>{_fmt(rec.get('reward'), 3)}</td>")
    head = "".join(f"<th>{esc(_SHORT[k])}</th>" for k in _SCORE_KEYS)
    return (f'<table class="sscores"><tr>{head}<th>answer (text judge)</th><th>reward</th></tr>'
            f"<tr>{''.join(cells)}</tr></table>")


def _answer(rec: dict[str, Any]) -> str:
    answer = rec.get("answer") or {}
    gen = answer.get("gen_prompt") if isinstance(answer, dict) else None
    parts = [f"<h4>answer</h4><pre>{esc(_as_text(gen)) if gen else '(no answer)'}</pre>"]
    refs = rec.get("references") or (answer.get("reference_images") if isinstance(answer, dict) else None)
    if isinstance(refs, list) and refs:
        items = []
        for ref in refs:
            ref = ref if isinstance(ref, dict) else {"note": ref}
            bits = [ref.get("img_id"), ref.get("title"), ref.get("note"), ref.get("url")]
            items.append("<li>" + " — ".join(esc(b) for b in bits if b) + "</li>")
        parts.append(f"<h4>references</h4><ol class=\"refs\">{''.join(items)}</ol>")
    return "".join(parts)


def _trajectory(rec: dict[str, Any]) -> str:
    steps = rec.get("trajectory") or []
    items = []
    for step in steps:
        step = step if isinstance(step, dict) else {"action": step}
        last = step.get("last_action") if isinstance(step.get("last_action"), dict) else {}
        tag = " ".join(str(x) for x in (last.get("kind"), last.get("tool")) if x)
        status = {True: "ok", False: "failed"}.get(last.get("ok"), "")
        err = f' <span class="err">{esc(last.get("error"))}</span>' if last.get("error") else ""
        action = _clip_text(_as_text(step.get("action")), ACTION_CHARS)
        obs = _clip_text(_as_text(step.get("observation")), OBSERVATION_CHARS)
        items.append(f'<li><div class="act">{esc(tag or "step")} <i>{esc(status)}</i>{err}</div>'
                     f'<pre>{esc(action)}</pre><pre class="obs">{esc(obs)}</pre></li>')
    return (f"<details><summary>tool calls ({len(steps)} turns)</summary>"
            f"<ol class=\"traj\">{''.join(items)}</ol></details>")


def _card(run_dir: Path, rec: dict[str, Any], index: int, slug: str) -> str:
    sid = str(rec["id"])
    meta = rec.get("meta") or {}
    judged = rec.get("image_judgement")
    if isinstance(rec.get("wise_judgement"), dict):
        judged = rec["wise_judgement"]
    evaluated = bool(rec.get("success")) and isinstance(judged, dict)
    tags = [f'<span class="tag">{esc(meta.get(k))}</span>' for k in ("category", "difficulty")
            if meta.get(k)]
    if not evaluated:
        tags.append('<span class="tag warn">not evaluated</span>')
    if rec.get("fallback_generation"):
        tags.append('<span class="tag warn">no answer: fallback generation</span>')
    tj = rec.get("text_judgement") or {}
    rationale = esc((judged or {}).get("rationale") or "(none)")
    evidence = (judged or {}).get("evidence")
    ev = (f"<details><summary>judge evidence</summary><pre>"
          f"{esc(_clip_text(_as_text(evidence), EVIDENCE_CHARS))}</pre></details>" if evidence else "")
    classes = f"card cat-{slug}" + ("" if evaluated else " unscored")
    return (f'<article class="{classes}" id="s{index}">'
            f'<h3><a href="#s{index}">{esc(sid)}</a> {"".join(tags)}</h3>'
            f'<div class="imgs">{_figure(run_dir, rec.get("output_path"), "generated", sid)}'
            f'{_figure(run_dir, rec["gt_image"], "ground truth", sid) if rec.get("gt_image") else ""}'
            "</div>"
            f'<div class="body"><p class="prompt">{esc(rec.get("prompt", ""))}</p>'
            f"{_sample_scores(rec)}<p><b>image judge:</b> {rationale}</p>"
            f"<p><b>text judge ({_fmt(tj.get('score'))}):</b> {esc(tj.get('rationale') or '(none)')}</p>"
            f"{_answer(rec)}{_trajectory(rec)}{ev}</div></article>")


def _unreadable(entry: SampleEntry, index: int) -> str:
    return (f'<article class="card unscored unreadable" id="s{index}"><h3>unreadable sample '
            f'<span class="tag warn">line {entry.line}</span></h3><p>{esc(entry.error)}</p></article>')


def category_slugs(run: RunData) -> dict[str, str]:
    """A safe, unique anchor slug for every category of the summary and the samples."""
    cats = sorted({_category(e.record) for e in run.samples if e.record}
                  | {str(c).lower() for c in run.summary["scores"].get("categories", {})})
    return {c: _slug(c, i) for i, c in enumerate(cats)}


def _samples_section(run: RunData, slugs: dict[str, str]) -> tuple[str, str]:
    """The cards with their filter links, and the CSS rules that make the filters work."""
    counts = {c: 0 for c in slugs}
    cards, n_unscored = [], 0
    for i, entry in enumerate(run.samples, start=1):
        card = None
        if entry.record is not None:
            cat = _category(entry.record)
            counts[cat] += 1
            try:
                card = _card(run.run_dir, entry.record, i, slugs[cat])
            except (TypeError, ValueError, KeyError, AttributeError) as exc:
                logger.warning("Sample on line %d cannot be shown: %s", entry.line, exc)
                entry = SampleEntry(entry.line, error=f"line {entry.line} cannot be shown: {exc}")
        if card is None:
            card = _unreadable(entry, i)
        n_unscored += ' unscored"' in card[:200]
        cards.append(card)
    links = ['<a href="#all">all</a>'] + [
        f'<a href="#only-{slugs[c]}">{esc(c)} ({n})</a>' for c, n in counts.items() if n]
    if n_unscored:
        links.append(f'<a href="#only-unscored">not evaluated ({n_unscored})</a>')
    targets = "".join(f'<span class="ft" id="only-{s}"></span>' for s in slugs.values())
    css = "".join(f"#only-{s}:target~#cards .card:not(.cat-{s}){{display:none}}"
                  for s in slugs.values())
    css += "#only-unscored:target~#cards .card:not(.unscored){display:none}"
    note = "<p>This run folder has no samples.jsonl.</p>" if run.samples_missing else ""
    html_text = (f'<section id="samples"><h2>samples ({len(cards)})</h2>{note}'
                 f'<nav class="filters">show: {" · ".join(links)}</nav>'
                 f'<span class="ft" id="all"></span>{targets}'
                 f'<span class="ft" id="only-unscored"></span>'
                 f'<div id="cards">{"".join(cards)}</div></section>')
    return html_text, css


_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:16px;color:#212529}
h1{font-size:22px}h2{margin-top:28px;border-bottom:1px solid #dee2e6}h4{margin:8px 0 2px}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px}dt{color:#6c757d}dd{margin:0}
.kscore{font-size:20px}table{border-collapse:collapse;margin:8px 0}
th,td{border:1px solid #dee2e6;padding:3px 8px;text-align:right}th:first-child{text-align:left}
.card{border:1px solid #ced4da;border-radius:6px;margin:14px 0;padding:10px 14px;display:grid;
grid-template-columns:auto 1fr;gap:6px 18px}.card h3{grid-column:1/-1;margin:0;font-size:16px}
.imgs{display:flex;gap:8px;align-items:flex-start}figure{margin:0;text-align:center;width:256px}
figure img{max-width:256px;max-height:256px;border:1px solid #dee2e6}
.noimg div{width:254px;height:120px;border:1px dashed #adb5bd;display:flex;align-items:center;
justify-content:center;color:#6c757d;word-break:break-all;font-size:12px}
.prompt{font-size:15px;font-weight:600}pre{white-space:pre-wrap;word-break:break-word;
background:#f8f9fa;padding:6px;margin:4px 0;font-size:12px}pre.obs{color:#495057;max-height:220px;overflow:auto}
.tag{font-size:12px;background:#e9ecef;border-radius:3px;padding:1px 6px;margin-left:6px;font-weight:400}
.warn{background:#ffe8a1}.err{color:#b02a37}.act{font-weight:600}
td.hi{background:#d1e7dd}td.mid{background:#fff3cd}td.lo{background:#f8d7da}
.unreadable{display:block;background:#fff5f5}.ft{display:block;height:0}
nav.filters a{margin:0 2px}img.chart{max-width:100%}
@media(max-width:800px){.card{grid-template-columns:1fr}}
"""


def render_report(run: RunData, chart_png: bytes) -> str:
    """The whole report page as one HTML string.

    Args:
        run: The run folder as read by :func:`load_run`.
        chart_png: The category chart, embedded as a data URI.
    """
    s = run.summary
    cats = s["scores"].get("categories", {})
    slugs = category_slugs(run)
    samples_html, filter_css = _samples_section(run, slugs)
    links = {str(c): f"only-{slugs[str(c).lower()]}" for c in cats}
    rows = [(str(c), item) for c, item in sorted(cats.items())]
    chart_uri = "data:image/png;base64," + base64.b64encode(chart_png).decode("ascii")
    title = f"knowgen report: {s['policy']} on {s['benchmark']} / {s['split']}"
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{esc(title)}</title><style>{_CSS}{filter_css}</style></head><body>"
            f"{_header(s)}<section id=\"chart\"><h2>scores by category</h2>"
            f'<img class="chart" src="{chart_uri}" alt="bar chart of the overall score of each category">'
            f"</section><section id=\"categories\"><h2>by category</h2>"
            f"{_score_table(rows, 'category', links) if rows else '<p>No evaluated samples.</p>'}"
            f"</section>{samples_html}<footer><p>written by knowgen {esc(knowgen.__version__)}"
            f"</p></footer></body></html>\n")


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write ``report.html`` and ``categories.png`` for a finished run folder.

    Args:
        run_dir: A folder written by ``knowgen eval``.
        out: Where to write the HTML; default ``RUN_DIR/report.html``. The chart is
            always written to ``RUN_DIR/categories.png``.

    Returns:
        The path of the HTML file.

    Raises:
        RunError: when the folder is not a finished run or its summary is malformed.
    """
    run = load_run(run_dir)
    chart = save_category_chart(chart_bars(run.summary), run.run_dir / "categories.png",
                                title=f"Overall score by category: {run.summary['policy']}")
    target = Path(out) if out is not None else run.run_dir / "report.html"
    atomic_write_text(target, render_report(run, chart.read_bytes()))
    logger.info("Wrote %s", target)
    return target
