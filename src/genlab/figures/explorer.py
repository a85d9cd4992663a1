"""The latent explorer: one self-contained HTML file to point at the VAE's latent plane and see what lives there.

Built from a precomputed atlas: the decoder's images at n x n points of the latent plane placed by the Gaussian
inverse CDF (like the latent grid, so every cell holds equal prior mass), stored as one grayscale PNG inside the
page. Why an atlas rather than the decoder's weights in JavaScript: the page then shows exactly what the trained
decoder produced (no second implementation of the network to keep in step with the Python one), works for every
architecture (MLP or conv), and stays small (a 48 x 48 atlas of 28 x 28 images is a few hundred kB of PNG).
No server and no network: the page opens from the file system and inside W&B (`wandb.Html`).

For latent_dim > 2 the plane is the 2-D projection used by the scatter (the first two principal components of the
posterior means), lifted back to the full latent space through the same projection; the page says so.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import torch
from torch import Tensor

ATLAS_SIDE = 48
MAX_POINTS = 2000


def atlas_axis(n: int = ATLAS_SIDE) -> Tensor:
    """The n plane coordinates of the atlas cells' centres: Phi^-1((i + 0.5) / n), i = 0 .. n-1."""
    u = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    return torch.distributions.Normal(0.0, 1.0).icdf(u).float()


def atlas_latents(n: int = ATLAS_SIDE) -> Tensor:
    """Plane points [n*n, 2] of the atlas, row-major: row r holds z[1] = axis[n-1-r] (top row = largest z[1]),
    column c holds z[0] = axis[c]."""
    axis = atlas_axis(n)
    z0 = axis.repeat(n)
    z1 = axis.flip(0).repeat_interleave(n)
    return torch.stack([z0, z1], dim=1)


@torch.no_grad()
def build_atlas(decode: Callable[[Tensor], Tensor], n: int = ATLAS_SIDE, batch: int = 1024) -> Tensor:
    """uint8 images [n*n, H, W] decoded at atlas_latents(n); `decode` maps plane points [B, 2] to images in [0, 1]."""
    z = atlas_latents(n)
    images = torch.cat([decode(z[i : i + batch]).float().cpu() for i in range(0, len(z), batch)])
    images = images.reshape(len(z), *images.shape[-2:])
    return (images.clamp(0, 1) * 255).round().to(torch.uint8)


def atlas_png(atlas: Tensor, n: int) -> bytes:
    """The atlas as one grayscale PNG sprite of n x n cells."""
    from torchvision.io import encode_png

    h, w = atlas.shape[-2:]
    sprite = atlas.reshape(n, n, h, w).permute(0, 2, 1, 3).reshape(1, n * h, n * w).contiguous()
    return bytes(encode_png(sprite, compression_level=9).numpy())


def explorer_html(decode: Callable[[Tensor], Tensor], points: Tensor, labels: Tensor, class_names: list[str],
                  title: str = "VAE latent explorer", note: str = "", n: int = ATLAS_SIDE, seed: int = 0) -> str:
    """The explorer page: atlas, scatter of `points` [N, 2] coloured by `labels` [N] with `class_names` in the
    legend. At most MAX_POINTS points are drawn (a fixed random subset)."""
    atlas = build_atlas(decode, n)
    h, w = atlas.shape[-2:]
    points, labels = points.detach().float().cpu(), labels.detach().long().cpu()
    if len(points) > MAX_POINTS:
        keep = torch.randperm(len(points), generator=torch.Generator().manual_seed(seed))[:MAX_POINTS]
        points, labels = points[keep], labels[keep]
    data = {
        "n": n, "h": int(h), "w": int(w), "axis": [round(v, 5) for v in atlas_axis(n).tolist()],
        "points": [[round(a, 3), round(b, 3), int(c)] for (a, b), c in zip(points.tolist(), labels.tolist(), strict=True)],
        "names": list(class_names), "title": title, "note": note,
    }
    sprite = base64.b64encode(atlas_png(atlas, n)).decode("ascii")
    return (_PAGE.replace("__TITLE__", _escape(title))
            .replace("__DATA__", json.dumps(data, separators=(",", ":")))
            .replace("__SPRITE__", sprite))


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_PAGE = r"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
body { font-family: sans-serif; margin: 12px; color: #222; }
#wrap { display: flex; gap: 16px; align-items: flex-start; flex-wrap: wrap; }
canvas { border: 1px solid #ccc; }
#plane { cursor: crosshair; }
#legend span { display: inline-block; margin: 2px 8px 2px 0; font-size: 13px; }
#legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; border-radius: 5px; }
#readout { font-family: monospace; font-size: 13px; margin: 6px 0; }
.note { color: #666; font-size: 13px; max-width: 720px; }
</style></head><body>
<h3 id="title"></h3>
<div class="note" id="note"></div>
<div id="wrap">
  <div><canvas id="plane" width="420" height="420"></canvas><div id="legend"></div></div>
  <div><canvas id="image" width="280" height="280"></canvas>
    <div id="readout">move the pointer over the plane</div>
    <div class="note">Click two points of the plane to play the interpolation between them.</div>
    <canvas id="strip" width="480" height="48"></canvas></div>
</div>
<script>
const D = __DATA__;
const COLORS = ["#1f77b4","#ff7f0e","#2ca02c","#d62728","#9467bd","#8c564b","#e377c2","#7f7f7f","#bcbd22","#17becf"];
document.getElementById("title").textContent = D.title;
document.getElementById("note").textContent = D.note;
const plane = document.getElementById("plane"), pc = plane.getContext("2d");
const image = document.getElementById("image"), ic = image.getContext("2d");
const strip = document.getElementById("strip"), sc = strip.getContext("2d");
ic.imageSmoothingEnabled = false; sc.imageSmoothingEnabled = false;
const lim = Math.max(3, ...D.points.map(p => Math.max(Math.abs(p[0]), Math.abs(p[1])))) * 1.02;
const toPx = (z0, z1) => [(z0 + lim) / (2 * lim) * plane.width, (lim - z1) / (2 * lim) * plane.height];
const toZ = (x, y) => [x / plane.width * 2 * lim - lim, lim - y / plane.height * 2 * lim];
function erf(x) {  // Abramowitz-Stegun 7.1.26, |error| < 1.5e-7
  const s = Math.sign(x); x = Math.abs(x);
  const t = 1 / (1 + 0.3275911 * x);
  const y = 1 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
  return s * y;
}
const Phi = z => 0.5 * (1 + erf(z / Math.SQRT2));
function cellOf(z0, z1) {  // the atlas cell whose prior-mass interval holds z
  const clamp = v => Math.min(D.n - 1, Math.max(0, Math.floor(Phi(v) * D.n)));
  return [clamp(z0), D.n - 1 - clamp(z1)];  // column, row (top row = largest z[1])
}
const sprite = new Image();
const state = {col: null, row: null, z: null, clicks: []};
function show(z0, z1, target, x, y, size) {
  const [col, row] = cellOf(z0, z1);
  (target || ic).drawImage(sprite, col * D.w, row * D.h, D.w, D.h, x || 0, y || 0, size || image.width, size || image.height);
  if (!target) {
    Object.assign(state, {col, row, z: [z0, z1]});
    image.dataset.col = col; image.dataset.row = row;
    document.getElementById("readout").textContent =
      `z = (${z0.toFixed(2)}, ${z1.toFixed(2)})  atlas cell (${col}, ${row}) at (${D.axis[col].toFixed(2)}, ${D.axis[D.n - 1 - row].toFixed(2)})`;
  }
}
function drawPlane() {
  pc.fillStyle = "#fff"; pc.fillRect(0, 0, plane.width, plane.height);
  pc.strokeStyle = "#eee"; pc.beginPath();
  const [ox, oy] = toPx(0, 0); pc.moveTo(ox, 0); pc.lineTo(ox, plane.height); pc.moveTo(0, oy); pc.lineTo(plane.width, oy); pc.stroke();
  for (const [a, b, c] of D.points) {
    const [x, y] = toPx(a, b); pc.fillStyle = COLORS[c % 10]; pc.globalAlpha = 0.7; pc.fillRect(x - 1.5, y - 1.5, 3, 3);
  }
  pc.globalAlpha = 1;
  if (state.clicks.length) {
    pc.strokeStyle = "#000"; pc.lineWidth = 2; pc.beginPath();
    state.clicks.forEach(([a, b], i) => { const [x, y] = toPx(a, b); i ? pc.lineTo(x, y) : pc.moveTo(x, y); pc.fillRect(x - 3, y - 3, 6, 6); });
    pc.stroke(); pc.lineWidth = 1;
  }
}
function play(a, b, frames = 10) {
  sc.fillStyle = "#fff"; sc.fillRect(0, 0, strip.width, strip.height);
  const size = strip.height;
  for (let i = 0; i < frames; i++) {
    const t = i / (frames - 1), z0 = a[0] + t * (b[0] - a[0]), z1 = a[1] + t * (b[1] - a[1]);
    show(z0, z1, sc, i * size, 0, size);
    setTimeout(() => show(z0, z1), 120 * i);
  }
}
const legend = document.getElementById("legend");
D.names.forEach((name, c) => {
  const span = document.createElement("span");
  span.innerHTML = `<i style="background:${COLORS[c % 10]}"></i>`; span.appendChild(document.createTextNode(name));
  legend.appendChild(span);
});
plane.addEventListener("mousemove", e => { const r = plane.getBoundingClientRect(); show(...toZ(e.clientX - r.left, e.clientY - r.top)); });
plane.addEventListener("click", e => {
  const r = plane.getBoundingClientRect(), z = toZ(e.clientX - r.left, e.clientY - r.top);
  state.clicks = state.clicks.length >= 2 ? [z] : [...state.clicks, z];
  drawPlane();
  if (state.clicks.length === 2) play(state.clicks[0], state.clicks[1]);
});
sprite.onload = () => { drawPlane(); show(0, 0); document.body.dataset.ready = "1"; };
sprite.src = "data:image/png;base64,__SPRITE__";
window.explorer = {state, show, toPx, cellOf, data: D};
</script></body></html>
"""
