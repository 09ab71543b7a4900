"""Colour-aware, multi-scale template matching: is this picture in that image?

Two measurements are combined. The first is a normalised cross-correlation
computed jointly over the three channels of CIE Lab, each channel centred on
its own mean (per window for the image), with the two colour channels
weighted by :data:`CHROMA_WEIGHT`::

    r = sum_c cov_c(I, T) / sqrt(sum_c var_c(I) * sum_c var_c(T))

This is what ``skimage.feature.match_template`` computes for one channel,
summed over channels before normalising; it is evaluated here through FFTs
that share the image's spectrum across all template sizes. Unlike a
grey-level match, ``r`` falls when the colours change while the pattern stays
(a flag with its hue turned by 120 degrees). The second measurement,
:func:`colour_agreement`, is the share of the template's drawn pixels whose
colour the image has at the matched place; it catches what a correlation
forgives, such as a logo drawn in black instead of its brand colour. The
score of a match is ``r`` times that share, in [-1, 1].

Matching runs on a downscaled copy (the image :data:`WORK_WIDTH` pixels wide)
over template widths from 15% to 95% of the image width, refines around the
two best widths, then searches again around the best match on a sharper copy
of that region. Pictures with transparency are put on white first.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft
from PIL import Image, ImageFilter
from skimage.color import rgb2lab

#: Width in pixels of the image's working copy.
WORK_WIDTH = 160
#: Weight of the Lab colour channels (a, b) against lightness (L).
CHROMA_WEIGHT = 2.0
#: Template widths tried, as fractions of the image width (geometric steps of ~12%).
DEFAULT_SCALES: tuple[float, ...] = tuple(
    round(0.15 * 1.12 ** i, 4) for i in range(int(math.log(0.95 / 0.15, 1.12)) + 1)
) + (0.95,)
#: Blur radius (working pixels) of the coarse search, for templates from BLUR_FROM pixels wide.
COARSE_BLUR = 1.5
BLUR_FROM = 64
#: Coarse scales refined (the best ones by correlation).
COARSE_KEEP = 3
#: A coarse candidate this much wider than the best, correlating at least ALT_CORRELATION
#: times as well, is refined too (see ``_Search.larger_alternative``).
ALT_WIDTH = 1.1
ALT_CORRELATION = 0.95
#: Relative width changes tried around the best coarse scales.
REFINE_STEPS = (0.94, 0.97, 1.03, 1.06)
#: Relative width changes tried by the fine search around the best coarse match.
FINE_STEPS = (0.94, 0.96, 0.98, 1.0, 1.02, 1.04, 1.06)
#: Widest template (working pixels) of the fine search; below it, the template's own width.
FINE_TEMPLATE_MAX = 192
#: Largest side (in working pixels) of the region the fine search looks at.
FINE_MAX_WIDTH = 400
#: Margin around the coarse match searched by the fine search, as a share of its size.
FINE_MARGIN = 0.06
#: Smallest template side worth matching, in working pixels.
MIN_SIDE = 8
#: Per-pixel variance (weighted Lab units squared) below which a window or template is flat.
MIN_VARIANCE = 0.25
#: Levels per RGB channel of the RGB -> Lab lookup table.
LUT_LEVELS = 64
#: Largest Lab distance (colour channels weighted) at which two pixels count as the same colour.
COLOUR_TOLERANCE = 30.0
#: Strengths of a template colour (0: background, 1: as drawn) that still agree, so that
#: edges softened differently by resampling match while other colours do not.
BLEND_RANGE = (0.6, 1.4)
#: Share of drawn pixels below which the whole template is compared.
MIN_DRAWN = 0.05
#: Misalignment (in working pixels) forgiven when comparing colours pixel by pixel.
SLACK = 1
#: Thickness (working pixels) of the ring outside a match checked by :func:`continuation`.
RING = 2
#: Distance of that ring from the match, as a share of the template's larger side.
RING_GAP = 0.03
_WHITE = np.array([100.0, 0.0, 0.0], dtype=np.float32)
#: Grid level of each 8-bit value.
_LEVEL_OF = ((np.arange(256) * (LUT_LEVELS - 1) + 127) // 255).astype(np.intp)


@dataclass(frozen=True)
class Match:
    """Where a template matched best.

    Attributes:
        score: ``correlation * colour_share * (1 - continuation)`` in [-1, 1] (0 when
            nothing could be compared).
        width_frac: Template width as a fraction of the image width.
        box: ``(left, top, right, bottom)`` of the match in image pixels.
        correlation: Joint Lab correlation at the match.
        colour_share: Share of the template's drawn pixels whose colour agrees there.
        continuation: Share of the ring around the match that continues the
            template's coloured edges (see :func:`continuation`).
    """

    score: float
    width_frac: float
    box: tuple[int, int, int, int]
    correlation: float = 0.0
    colour_share: float = 0.0
    continuation: float = 0.0


def _on_white(img: Image.Image) -> Image.Image:
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        canvas.alpha_composite(rgba)
        return canvas.convert("RGB")
    return img.convert("RGB")


@functools.lru_cache(maxsize=1)
def _lab_table() -> np.ndarray:
    """Lab values (colour channels weighted) of a regular RGB grid of :data:`LUT_LEVELS`^3."""
    levels = np.linspace(0.0, 1.0, LUT_LEVELS)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1)
    lab = rgb2lab(grid.reshape(-1, 1, 3)).reshape(LUT_LEVELS, LUT_LEVELS, LUT_LEVELS, 3)
    lab[..., 1:] *= CHROMA_WEIGHT
    return lab.astype(np.float32)


def _lab(img: Image.Image) -> np.ndarray:
    """``img`` in Lab as float32 (H, W, 3), colour channels weighted.

    Colours are looked up on a 64-level grid per channel (at most 2/255 off).
    """
    idx = _LEVEL_OF[np.asarray(img)]
    flat = (idx[..., 0] * LUT_LEVELS + idx[..., 1]) * LUT_LEVELS + idx[..., 2]
    return _lab_table().reshape(-1, 3)[flat]


class _Prepared:
    """An image's Lab working copy with what every template size reuses."""

    def __init__(self, lab: np.ndarray, colour_lab: np.ndarray):
        self.shape = lab.shape[:2]
        self.fft_shape = tuple(sfft.next_fast_len(n, real=True) for n in self.shape)
        chans = np.moveaxis(lab, -1, 0)
        self.spectrum = sfft.rfft2(chans, s=self.fft_shape)
        self.sum1 = _integral(chans)
        self.sum2 = _integral(chans * chans)
        self.padded = np.pad(colour_lab, ((SLACK, SLACK), (SLACK, SLACK), (0, 0)), mode="edge")

    def window(self, y: int, x: int, h: int, w: int) -> np.ndarray:
        """The ``h`` x ``w`` region at ``(y, x)`` plus a :data:`SLACK`-pixel border."""
        return self.padded[y:y + h + 2 * SLACK, x:x + w + 2 * SLACK]

    def box(self, table: np.ndarray, h: int, w: int) -> np.ndarray:
        """Sums of each channel over every ``h`` x ``w`` window (valid positions)."""
        return table[:, h:, w:] - table[:, :-h, w:] - table[:, h:, :-w] + table[:, :-h, :-w]


def _integral(chans: np.ndarray) -> np.ndarray:
    return np.pad(chans.astype(np.float64), ((0, 0), (1, 0), (1, 0))).cumsum(1).cumsum(2)


def _correlation(prep: _Prepared, tlab: np.ndarray) -> np.ndarray:
    """Joint Lab correlation of ``tlab`` at every valid position of the image."""
    h, w = tlab.shape[:2]
    n = h * w
    centred = np.moveaxis(tlab - tlab.mean(axis=(0, 1)), -1, 0)
    # Correlation through the FFT: valid positions never wrap around.
    kernel = sfft.rfft2(centred[:, ::-1, ::-1], s=prep.fft_shape)
    full = sfft.irfft2(prep.spectrum * kernel, s=prep.fft_shape)
    cov = full[:, h - 1:prep.shape[0], w - 1:prep.shape[1]].sum(axis=0)
    s1 = prep.box(prep.sum1, h, w)
    var_i = np.clip(prep.box(prep.sum2, h, w) - s1 * s1 / n, 0.0, None).sum(axis=0)
    var_t = float((centred.astype(np.float64) ** 2).sum())
    if var_t < n * MIN_VARIANCE:
        return np.zeros_like(var_i)  # a flat template has no pattern to correlate
    flat = var_i < n * MIN_VARIANCE  # flat windows: rounding noise, not a pattern
    r = cov / np.sqrt(np.maximum(var_i, n * MIN_VARIANCE) * var_t)
    return np.clip(np.where(flat, 0.0, r), -1.0, 1.0)


def colour_agreement(window: np.ndarray, tlab: np.ndarray) -> float:
    """Share of the template's drawn pixels whose colour the image has at or next to them.

    Args:
        window: The image (Lab) under the template plus a :data:`SLACK`-pixel
            border on every side (edge pixels repeated where the image ends).
        tlab: The template (Lab).

    Drawn pixels are those that differ from the template's background (the
    median colour of its outer border) by more than :data:`COLOUR_TOLERANCE`, so
    that the empty margin around a logo does not dilute the comparison; all
    pixels count when almost none differ. A template pixel agrees when some
    image pixel within :data:`SLACK` pixels of it is at most
    :data:`COLOUR_TOLERANCE` away from the template colour mixed with the
    background at a strength in :data:`BLEND_RANGE`: a sub-pixel misalignment
    or a differently softened edge of a thin stroke is forgiven, a recoloured
    picture is not.
    """
    h, w = tlab.shape[:2]
    border = np.concatenate([tlab[0], tlab[-1], tlab[:, 0], tlab[:, -1]])
    background = np.median(border, axis=0)
    ink = tlab - background  # from the background to each template colour
    ink2 = np.maximum((ink * ink).sum(axis=-1), 1e-6)
    nearest = np.full((h, w), np.inf)
    for dy in range(2 * SLACK + 1):
        for dx in range(2 * SLACK + 1):
            rel = window[dy:dy + h, dx:dx + w] - background
            # Anti-aliasing mixes ink with background: measure the distance to the
            # nearest point of the same ink at BLEND_RANGE strength, not to the pixel.
            t = np.clip((rel * ink).sum(axis=-1) / ink2, *BLEND_RANGE)
            off = rel - t[..., None] * ink
            nearest = np.minimum(nearest, (off * off).sum(axis=-1))
    agree = nearest <= COLOUR_TOLERANCE ** 2
    drawn = ink2 > COLOUR_TOLERANCE ** 2
    if drawn.mean() < MIN_DRAWN:
        return float(agree.mean())
    return float(agree[drawn].mean())


def continuation(lab: np.ndarray, y: int, x: int, tlab: np.ndarray) -> float:
    """Share of the ring around a match that continues the template's coloured edges.

    For every side of the matched box, a :data:`RING`-pixel band a little way
    outside (:data:`RING_GAP` of the template's size, so that a match a pixel
    too small does not look into the picture itself) is compared with the
    template's edge pixels on that side; a ring pixel
    *continues* the template when both have the same colour (within
    :data:`COLOUR_TOLERANCE`) and that colour is not near white. A picture
    placed in an image ends where it ends, so its coloured edges stop at its
    border; a simple pattern matched inside a larger one (a red-over-white
    bicolour found where a red band meets a white margin) carries on past it.
    Ring pixels outside the image count as not continuing.

    Args:
        lab: The image (Lab, colour channels weighted).
        y: Top of the match.
        x: Left of the match.
        tlab: The template (Lab, same scale).
    """
    h, w = tlab.shape[:2]
    tol2 = COLOUR_TOLERANCE ** 2
    ink = ((tlab - _WHITE) ** 2).sum(axis=-1) > tol2
    gap = max(SLACK + 1, round(RING_GAP * max(h, w)))  # room for a slightly small match
    near, far = gap, gap + RING
    hits = 0
    sides = (
        (lab[max(0, y - far):max(0, y - near)], tlab[0], ink[0]),
        (lab[y + h + near:y + h + far], tlab[-1], ink[-1]),
        (lab[:, max(0, x - far):max(0, x - near)].transpose(1, 0, 2), tlab[:, 0], ink[:, 0]),
        (lab[:, x + w + near:x + w + far].transpose(1, 0, 2), tlab[:, -1], ink[:, -1]),
    )
    sides = tuple((ring[:, x:x + w] if i < 2 else ring[:, y:y + h], edge, edge_ink)
                  for i, (ring, edge, edge_ink) in enumerate(sides))
    for ring, edge, edge_ink in sides:
        if ring.size and ring.shape[1] == edge.shape[0]:
            same = ((ring - edge) ** 2).sum(axis=-1) <= tol2
            hits += int((same & edge_ink).sum())
    total = 2 * RING * (h + w)
    return hits / total


def _blurred(img: Image.Image, radius: float) -> Image.Image:
    return img.filter(ImageFilter.GaussianBlur(radius)) if radius > 0 else img


class _Search:
    """Tries template widths over one working copy of the image (or of a part of it).

    Args:
        region: The image, or the part of it to search.
        factor: Working pixels per image pixel.
        origin: Top-left corner of ``region`` in the image.
        template: The picture to find.
        image_width: Width of the whole image (for ``Match.width_frac``).
        resample: Resampling filter of the working copy and of the template.
        blur: Gaussian blur radius (working pixels) applied to both before correlating
            templates at least :data:`BLUR_FROM` pixels wide: it widens the range of
            widths at which a large, detailed picture still correlates.
    """

    def __init__(self, region: Image.Image, factor: float, origin: tuple[int, int],
                 template: Image.Image, image_width: int,
                 resample: Image.Resampling = Image.Resampling.BOX, blur: float = 0.0):
        self.factor, self.origin, self.template = factor, origin, template
        self.image_width, self.resample = image_width, resample
        size = (max(1, round(region.width * factor)), max(1, round(region.height * factor)))
        if size != region.size:
            region = region.resize(size, resample)
        self.blur = blur
        colour = _lab(region)
        self.colour = colour
        self.prep = _Prepared(colour, colour)
        self.prep_blurred = _Prepared(_lab(_blurred(region, blur)), colour) if blur else self.prep
        self._cands: list[tuple[float, int, int, Image.Image]] = []
        self._scored: dict[int, Match] = {}
        self._tried: set[int] = set()

    def attempt(self, width: int) -> float:
        """Try the template ``width`` working pixels wide; return its best correlation.

        The colour check of the best position is deferred to :attr:`best`.
        """
        height, full_width = self.prep.shape
        if width in self._tried or width > full_width:
            return -math.inf
        self._tried.add(width)
        t_height = round(self.template.height * width / self.template.width)
        if width < MIN_SIDE or t_height < MIN_SIDE or t_height > height:
            return -math.inf
        small = self.template.resize((width, t_height), self.resample)
        if self.blur and width >= BLUR_FROM:
            r = _correlation(self.prep_blurred, _lab(_blurred(small, self.blur)))
        else:
            r = _correlation(self.prep, _lab(small))
        y, x = np.unravel_index(int(np.argmax(r)), r.shape)
        self._cands.append((float(r[y, x]), int(y), int(x), small))
        return float(r[y, x])

    def _score(self, index: int) -> Match:
        """The full score of candidate ``index`` (colour checks, cached)."""
        if index not in self._scored:
            corr, y, x, small = self._cands[index]
            tlab = _lab(small)
            th, tw = tlab.shape[:2]
            share = colour_agreement(self.prep.window(y, x, th, tw), tlab)
            carry = continuation(self.colour, y, x, tlab)
            f, (ox, oy) = self.factor, self.origin
            box = (ox + round(x / f), oy + round(y / f), ox + round((x + tw) / f),
                   oy + round((y + th) / f))
            self._scored[index] = Match(corr * share * (1.0 - carry), tw / f / self.image_width,
                                        box, corr, share, carry)
        return self._scored[index]

    def _by_correlation(self) -> list[int]:
        return sorted(range(len(self._cands)), key=lambda i: -self._cands[i][0])

    @property
    def best(self) -> Match | None:
        """The best match so far (colour checks run here, best correlation first)."""
        best: Match | None = None
        for i in self._by_correlation():
            if best is not None and self._cands[i][0] <= best.score:
                break  # colour share and continuation only lower a score
            match = self._score(i)
            if best is None or match.score > best.score:
                best = match
        return best

    def larger_alternative(self, best: Match) -> Match | None:
        """The widest candidate clearly wider than ``best`` that correlates nearly as well.

        A picture made of straight lines through its centre (a triangle and
        bands meeting there) also correlates with a shrunken copy of itself;
        the widest such candidate must then be examined too.
        """
        wide = [i for i, (corr, _, _, small) in enumerate(self._cands)
                if corr >= ALT_CORRELATION * best.correlation
                and small.width / self.factor / self.image_width >= ALT_WIDTH * best.width_frac]
        if not wide:
            return None
        return self._score(max(wide, key=lambda i: self._cands[i][3].width))


def find_best(image: Image.Image, template: Image.Image,
              scales: Sequence[float] = DEFAULT_SCALES, work_width: int = WORK_WIDTH) -> Match:
    """The best match of ``template`` in ``image`` over ``scales`` and all positions.

    A coarse search on a copy of the image ``work_width`` pixels wide tries
    every scale, then refines around the two best; a fine search then looks
    again around the best match on a sharper copy: at the template's own
    resolution where the image is that sharp, the region at most
    :data:`FINE_MAX_WIDTH` pixels wide.

    Args:
        image: The image to search (any mode; transparency goes on white).
        template: The picture to find, aspect ratio kept.
        scales: Template widths to try, as fractions of the image width.
        work_width: Width of the image's downscaled working copy.

    Returns:
        The best :class:`Match` (score 0 and an empty box when no scale fits).
    """
    img, tpl = _on_white(image), _on_white(template)
    factor = min(1.0, work_width / img.width)
    coarse = _Search(img, factor, (0, 0), tpl, img.width, blur=COARSE_BLUR)
    width = coarse.prep.shape[1]
    ranked = sorted(((coarse.attempt(round(f * width)), f) for f in scales), reverse=True)
    if not ranked or ranked[0][0] == -math.inf:
        return Match(0.0, 0.0, (0, 0, 0, 0))
    for _, frac in ranked[:COARSE_KEEP]:  # the true width may lie nearer another scale
        for step in REFINE_STEPS:
            coarse.attempt(round(frac * step * width))
    best = coarse.best
    fine = [_refine(img, tpl, best, factor)]
    wider = coarse.larger_alternative(best)
    if wider is not None:
        fine.append(_refine(img, tpl, wider, factor))
    fine = [m for m in fine if m is not None]
    if fine:  # scored without blur: the one to report
        best = max(fine, key=lambda m: m.score)
    return Match(round(max(-1.0, min(1.0, best.score)), 4), round(best.width_frac, 4), best.box,
                 round(best.correlation, 4), round(best.colour_share, 4),
                 round(best.continuation, 4))


def _refine(img: Image.Image, tpl: Image.Image, coarse: Match, coarse_factor: float
            ) -> Match | None:
    """Search again around ``coarse`` on a sharper copy of that part of the image."""
    left, top, right, bottom = coarse.box
    box_w = right - left
    if box_w <= 0:
        return None
    margin = round(FINE_MARGIN * max(box_w, bottom - top)) + 2
    crop = (max(0, left - margin), max(0, top - margin), min(img.width, right + margin),
            min(img.height, bottom + margin))
    limit = FINE_MAX_WIDTH / max(crop[2] - crop[0], crop[3] - crop[1])
    factor = max(coarse_factor, min(1.0, min(tpl.width, FINE_TEMPLATE_MAX) / box_w, limit))
    search = _Search(img.crop(crop), factor, crop[:2], tpl, img.width, Image.Resampling.LANCZOS)
    corrs = {round(box_w * factor * step): 0.0 for step in FINE_STEPS}
    for width in corrs:
        corrs[width] = search.attempt(width)
    centre = max(corrs, key=corrs.get)
    if corrs[centre] == -math.inf:
        return None
    # Polish the width by halving steps, down to one working pixel.
    delta = max(1.0, (FINE_STEPS[-1] - FINE_STEPS[-2]) * box_w * factor / 2)
    while delta >= 1:
        for width in (round(centre - delta), round(centre + delta)):
            corrs[width] = max(corrs.get(width, -math.inf), search.attempt(width))
        centre = max(corrs, key=corrs.get)
        delta /= 2
    return search.best


def best_match(image: Image.Image, template: Image.Image,
               scales: Sequence[float] = DEFAULT_SCALES) -> float:
    """Best match score in [-1, 1] of ``template`` anywhere in ``image`` (see :class:`Match`).

    Args:
        image: The image to search.
        template: The picture to look for (e.g. an official flag).
        scales: Template widths to try, as fractions of the image width.
    """
    return find_best(image, template, scales).score
