"""The challenge's leaderboard: one self-contained HTML page and two CSV files.

:func:`write_leaderboard` (called through :func:`helpers.challenge.write_leaderboard`, which
adds the task and the rules) writes ``index.html`` (no network: styles inline, figures as
embedded PNG), ``leaderboard.csv`` (one row per team folder, ranked or not) and
``per_image.csv`` (Dice and HD95 of every team on every test image) into one folder. The
page shows the ranking with each team's interval and ties, the rule, per-image score
distributions, the three images the teams found hardest with every team's outline, and
the submissions that could not be scored with their named problems. Team names and
methods are untrusted text: they are HTML-escaped, and CSV cells that a spreadsheet would
run as a formula are quoted.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

# The challenge's objects (helpers.challenge.TeamResult, Ranking, TestSet; typed Any here) are only read:
# this module does not import helpers.challenge, which calls it (no import cycle).

__all__ = ["write_leaderboard", "render_html", "leaderboard_rows", "hardest_images", "MARKER"]

#: First line of every page the scorer writes; a file without it is never replaced unless forced.
MARKER = "<!-- unet-course challenge leaderboard -->"
#: Outline colours of the teams, in order of place (the truth is lime, as in every course figure).
TEAM_COLOURS = ("#e6194b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#ffe119", "#9a6324",
                "#800000", "#000075", "#808000", "#469990")
TRUTH_COLOUR = "lime"
DPI = 80


def _colour(index: int) -> str:
    return TEAM_COLOURS[index % len(TEAM_COLOURS)]


def _safe_cell(value):
    """A CSV cell that spreadsheets will not evaluate (``=``, ``+``, ``-``, ``@`` first)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def leaderboard_rows(results: Sequence[Any], ranking: Any) -> list[dict]:
    """One row per team folder: the ranked teams in order, then the invalid ones."""
    rows = []
    for i, team in enumerate(ranking.teams):
        rows.append({
            "place": int(ranking.place[i]), "tied": ranking.tied(i), "team": team.team, "folder": team.folder,
            "status": "ranked", "mean_rank": round(float(ranking.score[i]), 4),
            "place_low": int(ranking.interval[i, 0]), "place_high": int(ranking.interval[i, 1]),
            "dice": round(float(ranking.dice[i, 0]), 4), "dice_low": round(float(ranking.dice[i, 1]), 4),
            "dice_high": round(float(ranking.dice[i, 2]), 4), "hd95": round(float(ranking.hd95[i, 0]), 3),
            "hd95_low": round(float(ranking.hd95[i, 1]), 3), "hd95_high": round(float(ranking.hd95[i, 2]), 3),
            "method": team.method, "problems": "",
        })
    for result in results:
        if not result.valid:
            rows.append({"place": "", "tied": "", "team": result.team, "folder": result.folder, "status": "invalid",
                         "mean_rank": "", "place_low": "", "place_high": "", "dice": "", "dice_low": "",
                         "dice_high": "", "hd95": "", "hd95_low": "", "hd95_high": "", "method": result.method,
                         "problems": " | ".join(str(p) for p in result.problems)})
    return rows


def _csv_bytes(rows: list[dict]) -> bytes:
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: _safe_cell(value) for key, value in row.items()})
    return buffer.getvalue().encode("utf-8")


def hardest_images(ranking: Any, test_set: Any, n: int = 3) -> list[int]:
    """Indices of the ``n`` test images with the lowest mean Dice over the ranked teams (the
    highest mean HD95 breaking ties).
    """
    if not ranking.teams:
        return []
    dice = np.mean([t.dice for t in ranking.teams], axis=0)
    hd95 = np.mean([t.hd95 for t in ranking.teams], axis=0)
    order = sorted(range(len(test_set.cases)), key=lambda i: (dice[i], -hd95[i]))
    return order[:n]


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _distribution_figure(ranking: Any, unit: str) -> str:
    from matplotlib.figure import Figure

    import matplotlib

    # horizontal boxes: ``orientation`` since Matplotlib 3.10, which deprecates ``vert``
    major_minor = tuple(int(part) for part in matplotlib.__version__.split(".")[:2])
    horizontal = {"orientation": "horizontal"} if major_minor >= (3, 10) else {"vert": False}
    n = len(ranking.teams)
    figure = Figure(figsize=(11, 1.4 + 0.5 * n))
    axes = figure.subplots(1, 2, sharey=True)
    rng = np.random.default_rng(0)
    labels = [t.team[:24] for t in ranking.teams]
    for ax, key, title in ((axes[0], "dice", "Dice per image (higher is better)"),
                           (axes[1], "hd95", f"HD95 per image, {unit} (lower is better)")):
        values = [getattr(t, key) for t in ranking.teams]
        positions = np.arange(n)[::-1]
        ax.boxplot(values, positions=positions, widths=0.6, showfliers=False, **horizontal,
                   medianprops={"color": "black"})
        for i, (pos, v) in enumerate(zip(positions, values)):
            ax.scatter(v, pos + rng.uniform(-0.18, 0.18, len(v)), s=8, alpha=0.6, color=_colour(i))
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(np.arange(n)[::-1], labels)
    figure.tight_layout()
    return _png(figure)


def _image_for(test_set: Any, index: int, truth: np.ndarray) -> np.ndarray:
    """The test image to draw outlines on (2D, or the middle slice of a volume); the truth
    mask in grey when the images are not at hand.
    """
    case = test_set.cases[index]
    if test_set.images_dir is not None and (test_set.images_dir / case.name).is_file():
        try:
            if test_set.kind == "png":
                from helpers.data.io import read_image

                return read_image(test_set.images_dir / case.name)
            from helpers.data.io import load_nifti

            return load_nifti(test_set.images_dir / case.name)[0]
        except ValueError:
            pass
    return truth.astype(np.float32)


def _viewer(truth: np.ndarray):
    """A function showing an array as the 2D picture of this case: itself in 2D; for a
    volume ``(x, y, z)``, the axial slice with the most truth, in the radiological view.
    """
    if truth.ndim == 2:
        return lambda array: array
    k = int(np.argmax(truth.reshape(-1, truth.shape[-1]).sum(axis=0)))
    return lambda array: np.asarray(array)[..., k].T


def _hardest_figure(ranking: Any, test_set: Any, labels: dict[str, np.ndarray],
                    indices: list[int]) -> str:
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    figure = Figure(figsize=(4.2 * len(indices), 4.8))
    axes = np.atleast_1d(figure.subplots(1, len(indices)))
    for ax, index in zip(axes, indices):
        case = test_set.cases[index]
        truth = labels[case.name]
        view = _viewer(truth)
        truth2d = view(truth)
        ax.imshow(view(_image_for(test_set, index, truth)), cmap="gray")
        for i, team in enumerate(ranking.teams):
            mask = team.masks.get(case.name)
            if mask is None:
                continue
            mask2d = view(mask)
            if mask2d.any():
                ax.contour(mask2d.astype(float), levels=[0.5], colors=[_colour(i)], linewidths=1.0)
        if truth2d.any():
            ax.contour(truth2d.astype(float), levels=[0.5], colors=[TRUTH_COLOUR], linewidths=2.2)
        mean_dice = np.mean([t.dice[index] for t in ranking.teams])
        ax.set_title(f"{case.name}\nmean Dice {mean_dice:.3f}", fontsize=9)
        ax.axis("off")
    handles = [Line2D([], [], color=TRUTH_COLOUR, lw=2.2, label="truth")]
    handles += [Line2D([], [], color=_colour(i), lw=1.2, label=t.team[:20]) for i, t in enumerate(ranking.teams)]
    figure.legend(handles=handles, loc="lower center", ncol=min(6, len(handles)), fontsize=8, frameon=False)
    figure.tight_layout(rect=(0, 0.1 + 0.03 * (len(handles) // 6), 1, 1))
    return _png(figure)


_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; padding: 0 1em; }
h1 { margin-bottom: 0.1em; } .sub { color: #555; margin-top: 0; }
table { border-collapse: collapse; width: 100%; margin: 1em 0; font-size: 0.95em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.4em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f4f6; } td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.team:nth-child(-n+4) td.place { font-weight: bold; } .swatch { display: inline-block; width: 0.8em;
height: 0.8em; border-radius: 2px; margin-right: 0.4em; vertical-align: middle; }
.tie { color: #b45309; font-weight: bold; } .method { color: #444; font-size: 0.9em; max-width: 28em; }
.rule { background: #f9fafb; border-left: 4px solid #9ca3af; padding: 0.5em 1em; font-size: 0.92em; }
tr.invalid td { background: #fef2f2; } code { background: #f3f4f6; padding: 0 0.2em; }
img { max-width: 100%; } .stamp { color: #777; font-size: 0.85em; }
"""


def render_html(results: Sequence[Any], ranking: Any, test_set: Any,
                labels: dict[str, np.ndarray] | None = None, refresh: int | None = None,
                title: str = "Challenge leaderboard", task: str = "", metric_rule: str = "",
                ranking_rule: str = "") -> str:
    """The leaderboard as one self-contained HTML document (see the module docstring):
    ``task`` is the subtitle's "Segment ...", ``metric_rule`` and ``ranking_rule`` the rules.
    """
    e = html.escape
    unit = "mm" if test_set.kind == "nifti" else "pixels"
    invalid = [r for r in results if not r.valid]
    head = [MARKER, "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{e(title)}</title>", '<meta name="viewport" content="width=device-width, initial-scale=1">']
    if refresh:
        head.append(f'<meta http-equiv="refresh" content="{int(refresh)}">')
    head.append(f"<style>{_STYLE}</style></head><body>")
    body = [f"<h1>{e(title)}</h1>",
            f'<p class="sub">Segment {e(task)}: {len(test_set.cases)} hidden test images, '
            f"{len(ranking.teams)} team(s) ranked, {len(invalid)} submission(s) not scored.</p>",
            f'<p class="stamp">Scored {e(time.strftime("%Y-%m-%d %H:%M:%S"))}'
            + (f" &middot; this page reloads every {int(refresh)} s" if refresh else "") + "</p>"]
    body.append('<table id="ranking"><thead><tr><th>place</th><th>team</th><th>mean rank</th>'
                "<th>place interval</th><th>Dice (95 % CI)</th>"
                f"<th>HD95, {unit} (95 % CI)</th><th>what they did</th></tr></thead><tbody>")
    for i, team in enumerate(ranking.teams):
        tie = ' <span class="tie" title="within the noise of another team">=</span>' if ranking.tied(i) else ""
        body.append(
            f'<tr class="team" data-place="{int(ranking.place[i])}" data-folder="{e(team.folder)}">'
            f'<td class="place num">{int(ranking.place[i])}{tie}</td>'
            f'<td class="name"><span class="swatch" style="background:{_colour(i)}"></span>{e(team.team)}</td>'
            f'<td class="num">{ranking.score[i]:.2f}</td>'
            f'<td class="num">{int(ranking.interval[i, 0])}&ndash;{int(ranking.interval[i, 1])}</td>'
            f'<td class="num">{ranking.dice[i, 0]:.3f} ({ranking.dice[i, 1]:.3f}&ndash;{ranking.dice[i, 2]:.3f})</td>'
            f'<td class="num">{ranking.hd95[i, 0]:.2f} ({ranking.hd95[i, 1]:.2f}&ndash;{ranking.hd95[i, 2]:.2f})</td>'
            f'<td class="method">{e(team.method)}</td></tr>')
    if not ranking.teams:
        body.append('<tr><td colspan="7">No valid submission yet.</td></tr>')
    body.append("</tbody></table>")
    body.append(f'<div class="rule"><p><b>Metrics.</b> {e(metric_rule)}</p><p><b>Ranking.</b> {e(ranking_rule)}</p>'
                "</div>")
    if invalid:
        body.append('<h2>Not scored</h2><table id="invalid"><thead><tr><th>folder</th><th>team</th>'
                    "<th>problems (fix them and hand in again)</th></tr></thead><tbody>")
        for result in invalid:
            problems = "".join(f"<li><code>{e(p.code)}</code> {e(p.file)}{': ' if p.file else ''}{e(p.message)}</li>"
                               for p in result.problems)
            body.append(f'<tr class="invalid" data-folder="{e(result.folder)}"><td>{e(result.folder)}</td>'
                        f"<td>{e(result.team)}</td><td><ul>{problems}</ul></td></tr>")
        body.append("</tbody></table>")
    if ranking.teams:
        body.append("<h2>Scores image by image</h2>")
        body.append(f'<img id="distributions" alt="per-image Dice and HD95 of every team" '
                    f'src="data:image/png;base64,{_distribution_figure(ranking, unit)}">')
        if labels is not None:
            indices = hardest_images(ranking, test_set)
            body.append("<h2>The three hardest images</h2><p>Lowest mean Dice over the teams; the truth in "
                        "green, each team's outline in its colour.</p>")
            body.append(f'<img id="hardest" alt="the hardest images with every team\'s outline" '
                        f'src="data:image/png;base64,{_hardest_figure(ranking, test_set, labels, indices)}">')
    body.append('<p class="stamp">Written by <code>python -m helpers challenge score</code>; '
                "<code>leaderboard.csv</code> and <code>per_image.csv</code> lie beside this page.</p>")
    return "\n".join(head + body + ["</body></html>"]) + "\n"


def write_leaderboard(results: Sequence[Any], ranking: Any, test_set: Any,
                      labels: dict[str, np.ndarray] | None, out, refresh: int | None = None,
                      force: bool = False, **texts: str) -> Path:
    """Write ``index.html``, ``leaderboard.csv`` and ``per_image.csv`` into ``out`` (created),
    each atomically. An ``index.html`` that the scorer did not write (no :data:`MARKER`) is
    never replaced unless ``force`` (FileExistsError). ``texts`` go to :func:`render_html`
    (``task``, ``metric_rule``, ``ranking_rule``). Returns the page's path.
    """
    from helpers.data._store import atomic_write_bytes

    out = Path(out)
    page = out / "index.html"
    if page.is_file() and not force:
        with open(page, "rb") as stream:
            first = stream.read(len(MARKER))
        if first != MARKER.encode():
            raise FileExistsError(f"{page} was not written by the challenge scorer: choose another --out, or pass "
                                  f"--force to replace it.")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "leaderboard.csv", _csv_bytes(leaderboard_rows(results, ranking)))
    per_image = [{"team": t.team, "folder": t.folder, "image": case.name, "dice": round(float(t.dice[j]), 5),
                  "hd95": round(float(t.hd95[j]), 4)}
                 for t in ranking.teams for j, case in enumerate(test_set.cases)]
    atomic_write_bytes(out / "per_image.csv", _csv_bytes(per_image) if per_image else b"team,folder,image,dice,hd95\n")
    atomic_write_bytes(page, render_html(results, ranking, test_set, labels, refresh=refresh, **texts).encode("utf-8"))
    return page
