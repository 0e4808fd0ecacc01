"""Similarity views that follow the pointer: one inline Components v2 element per set of views.

Python sends, once per image/layer set, the photos and the features quantised to 8 bit
(:func:`featurelens.similarity.hover_assets`) plus a small state (reference, pin, channel,
settings: :func:`featurelens.similarity.hover_state`). On every pointer move the browser
computes the hovered cell's map in every view with the core's formulas (cosine, angular,
negative L2, dot), colours it through the same colour scale and lookup table, blends it over
the grey or colour photo and draws the rings: no server round trip per move. All views of the
element follow one hover (by normalised position, as the core's layer-sync rule does).

A click, or Enter after moving the reference with the arrow keys (which also commit by
themselves after a short pause), sends ``commit = {"x", "y", "image", "view", "stamp"}``;
the page reads it with :func:`last_commit` before drawing, so the bar chart and the shareable
link follow. "Save figure" writes a PNG of the views with their labels, a colour bar and a
caption; :func:`featurelens.similarity.views_figure` makes the same figure from Python.

Browser tests read what the element computed from ``root.__flView`` (``.fl-sim-root`` in the
element's shadow root): ``maps`` (one Float32Array per view), ``ranges``, ``timings`` (pointer event →
all views redrawn, ms), ``work`` (the redraw alone, ms), ``queued``
(pointer event → its handler starts, ms: the browser's input queue and frame alignment), ``firstDrawAt``, ``dataCount`` and
``dataDrawnAt`` (``performance.now()`` of the first draw, data updates received, and the last
update drawn).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import streamlit as st

from featurelens.similarity.hover import HoverAssets, pack_hover

__all__ = ["Commit", "similarity_views", "last_commit", "consume_commit"]

COMPONENT_NAME = "featurelens.similarity_view"
ROOT_CLASS = "fl-sim-root"  # browser tests find the element by it
CANVAS_CLASS = "fl-sim-canvas"


class Commit(NamedTuple):
    """A reference committed in the browser: the point normalised by the image's size."""

    x: float
    y: float
    image: int  #: index of the image the point lies in
    view: int  #: index of the view that was clicked
    stamp: int  #: differs between any two commits of one browser page


_CSS = f"""
.{ROOT_CLASS} {{ font-family: var(--st-font, "Source Sans Pro", sans-serif); color: var(--st-text-color, inherit); }}
.fl-bar {{ display: flex; flex-wrap: wrap; align-items: center; gap: 0.4rem 0.8rem; font-size: 0.8rem;
          margin-bottom: 0.5rem; }}
.fl-legend {{ display: flex; align-items: center; gap: 0.4rem; }}
.fl-gradient {{ width: 160px; height: 12px; border-radius: 3px; }}
.fl-hint {{ opacity: 0.75; }}
.fl-save {{ margin-left: auto; font: inherit; padding: 0.15rem 0.6rem; border-radius: 0.4rem; cursor: pointer;
           border: 1px solid rgba(128, 128, 128, 0.5); background: transparent; color: inherit; }}
.fl-save:hover {{ border-color: var(--st-primary-color, #ff4b4b); color: var(--st-primary-color, #ff4b4b); }}
.fl-grid {{ display: grid; gap: 0.75rem; align-items: start; }}
.fl-view {{ min-width: 0; }}
.{CANVAS_CLASS} {{ display: block; width: 100%; height: auto; border-radius: 0.25rem; cursor: crosshair;
                  touch-action: pan-y pinch-zoom; user-select: none; -webkit-user-select: none; }}
.{CANVAS_CLASS}.fl-passive {{ cursor: default; }}
.{CANVAS_CLASS}:focus {{ outline: none; }}
.{CANVAS_CLASS}:focus-visible {{ outline: 2px solid var(--st-primary-color, #ff4b4b); outline-offset: 2px; }}
.fl-tiles {{ gap: 0.4rem; }}
.fl-tiles .fl-caption {{ font-size: 0.75rem; margin-top: 0.1rem; }}
.fl-view.fl-chosen canvas {{ outline: 3px solid var(--st-primary-color, #ff4b4b); outline-offset: 1px; }}
.fl-caption {{ font-size: 0.85rem; line-height: 1.35; opacity: 0.85; margin-top: 0.3rem; overflow-wrap: normal;
              word-break: normal; hyphens: none; }}
"""

_JS = r"""
const ASSETS = new Map();  // assets key → Promise of decoded photos and grids, shared by all elements
const KEY_STEP = 0.02, KEY_STEP_LARGE = 0.1, KEY_COMMIT_MS = 400, MAX_TIMINGS = 4000;
// pointerrawupdate (Chromium, secure pages) arrives as soon as the pointer moves; pointermove waits
// for the next animation frame, up to 16 ms. Raw updates can come at 1000 Hz: one redraw per
// MIN_REDRAW_GAP_MS at most, the latest position drawn on the next frame.
// pointermove still comes too: it is the first event when the pointer enters a view.
const RAW_UPDATES = "onpointerrawupdate" in window, MIN_REDRAW_GAP_MS = 6;
let commitCount = 0;

function unpack(bytes) {
    const length = new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0);
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(4, 4 + length)));
    return [header, bytes.subarray(4 + length)];
}

async function decodePhoto(blob, photo) {
    const [offset, length] = photo.at;
    const bitmap = await createImageBitmap(new Blob([blob.slice(offset, offset + length)], { type: "image/jpeg" }));
    const color = document.createElement("canvas");
    color.width = photo.width; color.height = photo.height;
    const ctx = color.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(bitmap, 0, 0, photo.width, photo.height);
    const rgba = ctx.getImageData(0, 0, photo.width, photo.height);
    const gray = document.createElement("canvas");  // ITU-R 601 luma, as Pillow's convert("L")
    gray.width = photo.width; gray.height = photo.height;
    const g = new ImageData(photo.width, photo.height), src = rgba.data, dst = g.data;
    for (let i = 0; i < src.length; i += 4) {
        const l = (src[i] * 19595 + src[i + 1] * 38470 + src[i + 2] * 7471 + 0x8000) >> 16;
        dst[i] = dst[i + 1] = dst[i + 2] = l; dst[i + 3] = 255;
    }
    gray.getContext("2d").putImageData(g, 0, 0);
    return { width: photo.width, height: photo.height, color, gray };
}

function decodeGrid(blob, grid) {
    const [h, w, c] = grid.grid;
    const [co, cl] = grid.codes, [so, sl] = grid.scales;
    const codeBytes = blob.slice(co, co + cl).buffer;  // a copy: aligned for typed arrays
    const codes = grid.bits === 16 ? new Int16Array(codeBytes) : new Int8Array(codeBytes);
    const scales = new Float32Array(blob.slice(so, so + sl).buffer);
    const feats = new Float32Array(h * w * c), norms = new Float32Array(h * w);
    for (let p = 0; p < h * w; p++) {
        const s = scales[p];
        let sq = 0;
        for (let k = p * c, end = k + c; k < end; k++) { const v = codes[k] * s; feats[k] = v; sq += v * v; }
        norms[p] = Math.sqrt(sq);
    }
    return { h, w, c, feats, norms, signed: grid.signed, image: grid.image, layer: grid.layer };
}

function decodeAssets(meta, blob) {
    if (!ASSETS.has(meta.key)) {
        const copy = blob.slice();  // the element's data may be replaced while we decode
        ASSETS.set(meta.key, Promise.all(meta.photos.map((p) => decodePhoto(copy, p)))
            .then((photos) => ({ photos, grids: meta.grids.map((g) => decodeGrid(copy, g)) })));
        while (ASSETS.size > 12) ASSETS.delete(ASSETS.keys().next().value);
    }
    return ASSETS.get(meta.key);
}

const clamp01 = (v) => Math.min(Math.max(v, 0), 1);
// A view's affine map from the original's normalised points to its own ([a, b, c, d, e, f]:
// x' = a x + b y + c, y' = d x + e y + f); views without one show the point where it is.
const mapTo = (v, xy) => v.affine ? [v.affine[0] * xy[0] + v.affine[1] * xy[1] + v.affine[2],
                                     v.affine[3] * xy[0] + v.affine[4] * xy[1] + v.affine[5]] : xy;
function mapFrom(v, xy) {
    if (!v.affine) return xy;
    const [a, b, c, d, e, f] = v.affine, det = a * e - b * d, x = xy[0] - c, y = xy[1] - f;
    return [(e * x - b * y) / det, (a * y - d * x) / det];
}
const inFrame = (xy) => xy[0] >= -1e-9 && xy[0] <= 1 + 1e-9 && xy[1] >= -1e-9 && xy[1] <= 1 + 1e-9;
const cellAt = (xy, g) => [Math.min(Math.floor(xy[1] * g.h), g.h - 1), Math.min(Math.floor(xy[0] * g.w), g.w - 1)];

// The core's metrics (featurelens.similarity.metrics) on one grid, reference vector ref.
function similarity(g, ref, metric, signed) {
    const n = g.h * g.w, c = g.c, f = g.feats, out = new Float32Array(n);
    let refNorm = 0;
    for (let k = 0; k < c; k++) refNorm += ref[k] * ref[k];
    refNorm = Math.sqrt(refNorm);
    for (let p = 0; p < n; p++) {
        const base = p * c;
        if (metric === "neg_euclidean") {
            let sq = 0;
            for (let k = 0; k < c; k++) { const d = f[base + k] - ref[k]; sq += d * d; }
            out[p] = -Math.sqrt(sq);
            continue;
        }
        let dot = 0;
        for (let k = 0; k < c; k++) dot += f[base + k] * ref[k];
        if (metric === "dot") { out[p] = dot; continue; }
        const denom = g.norms[p] * refNorm;
        if (!(denom > 0)) { out[p] = 0; continue; }  // no direction: 0 (angular: least similar)
        const cos = Math.min(Math.max(dot / denom, -1), 1);
        out[p] = metric === "cosine" ? cos : clamp01(1 - Math.acos(cos) / (signed ? Math.PI : Math.PI / 2));
    }
    return out;
}

function refVector(g, xy) {
    const [r, c] = cellAt(xy, g);
    const start = (r * g.w + c) * g.c;
    return g.feats.subarray(start, start + g.c);
}

function channelValues(g, index) {
    const out = new Float32Array(g.h * g.w);
    for (let p = 0; p < out.length; p++) out[p] = g.feats[p * g.c + index];
    return out;
}

function extent(map) {
    let lo = Infinity, hi = -Infinity, best = 0;
    for (let i = 0; i < map.length; i++) {
        const v = map[i];
        if (v < lo) lo = v;
        if (v > hi) { hi = v; best = i; }
    }
    return { lo, hi, best };
}

// One pass over the views: each view's map, colour range and best cell for the active point.
function computeMaps(s) {
    const h = s.header, views = h.views, grids = s.assets.grids;
    const active = s.hover || s.committed;
    const isChannel = (v) => h.mode === "layers" && h.channel
        && (h.channel.layer === v.layer || (h.channel.all && grids[v.grid].c > h.channel.index));
    if (h.mode === "channels") {  // tiles of single channels; the last view shows the hovered (or chosen) one
        const hovered = s.hover && views[s.hover.view].channel !== undefined && s.hover.view < views.length - 1;
        const big = hovered ? views[s.hover.view].channel : h.channel.index;
        const out = views.map((v, i) => {
            const index = i === views.length - 1 ? big : v.channel;
            return { map: channelValues(grids[v.grid], index), own: true, channel: index };
        });
        for (const o of out) { const e = extent(o.map); o.lo = e.lo; o.hi = e.hi; o.best = e.best; o.max = e.hi; }
        return out;
    }
    let refImage = active.image;
    if (h.mode === "pair") refImage = views[0].image;
    const groupSigned = views.some((v) => grids[v.grid].signed);
    const out = views.map((v, i) => {
        const g = grids[v.grid];
        if (h.mode === "pair" && i === 0) return null;  // the grid view of image A
        if (isChannel(v)) return { map: channelValues(g, h.channel.index), own: true };
        let ref, signed = groupSigned;
        if (h.mode === "layers") { ref = refVector(g, active.xy); signed = g.signed; }
        else {
            const refView = views.find((w) => w.image === refImage) || views[0];
            ref = refVector(grids[refView.grid], active.xy);
        }
        return { map: similarity(g, ref, h.metric, signed), own: false };
    });
    const sims = out.filter((o) => o && !o.own);
    const shared = sims.length ? sims.map((o) => extent(o.map)).reduce((a, b) => ({ lo: Math.min(a.lo, b.lo), hi: Math.max(a.hi, b.hi) })) : null;
    for (const o of out) {
        if (!o) continue;
        const e = extent(o.map);
        o.best = e.best; o.max = e.hi;
        if (o.own || (h.scale === "adaptive" && (h.mode === "layers" || h.mode === "pair"))) { o.lo = e.lo; o.hi = e.hi; }
        else if (h.scale === "fixed" && h.value_range) { [o.lo, o.hi] = h.value_range; }
        else { o.lo = shared.lo; o.hi = shared.hi; }
    }
    return out;
}

function heatCanvas(s, i, g, o) {
    const lut = s.header.lut, span = o.hi - o.lo, n = g.h * g.w;
    const small = s.small[i] || (s.small[i] = document.createElement("canvas"));
    if (small.width !== g.w || small.height !== g.h) { small.width = g.w; small.height = g.h; }
    const ctx = small.getContext("2d");
    const image = ctx.createImageData(g.w, g.h), px = image.data;
    for (let p = 0; p < n; p++) {
        let t = span > 1e-12 ? (o.map[p] - o.lo) / span : 0.5;
        const j = Math.floor(clamp01(t) * 255 + 0.5) * 3, q = p * 4;
        px[q] = lut[j]; px[q + 1] = lut[j + 1]; px[q + 2] = lut[j + 2]; px[q + 3] = 255;
    }
    ctx.putImageData(image, 0, 0);
    return small;
}

function ring(ctx, xy, color, radius) {
    ctx.beginPath(); ctx.arc(xy[0], xy[1], radius, 0, 2 * Math.PI);
    ctx.lineWidth = 4; ctx.strokeStyle = "rgb(0,0,0)"; ctx.stroke();
    ctx.lineWidth = 2; ctx.strokeStyle = `rgb(${color.join(",")})`; ctx.stroke();
}

function cellBox(ctx, g, r, c, W, H, color) {
    const top = Math.floor(r * H / g.h), bottom = Math.floor((r + 1) * H / g.h) - 1;
    const left = Math.floor(c * W / g.w), right = Math.floor((c + 1) * W / g.w) - 1;
    const t = Math.max(1, Math.floor(Math.min(W, H) / 150));
    ctx.fillStyle = `rgb(${color.join(",")})`;
    ctx.fillRect(left, top, right - left + 1, t); ctx.fillRect(left, bottom - t + 1, right - left + 1, t);
    ctx.fillRect(left, top, t, bottom - top + 1); ctx.fillRect(right - t + 1, top, t, bottom - top + 1);
}

function drawGridView(s, i, g, photo, xy) {  // the blog post's left panel: grid lines and the chosen square
    const { ctx } = s.views[i], W = photo.width, H = photo.height, colors = s.header.colors;
    ctx.globalAlpha = 1; ctx.drawImage(photo.color, 0, 0);
    ctx.globalAlpha = 0.35; ctx.fillStyle = `rgb(${colors.grid.join(",")})`;
    for (let r = 1; r < g.h; r++) ctx.fillRect(0, Math.floor(r * H / g.h), W, 1);
    for (let c = 1; c < g.w; c++) ctx.fillRect(Math.floor(c * W / g.w), 0, 1, H);
    ctx.globalAlpha = 1;
    const [r, c] = cellAt(xy, g);
    cellBox(ctx, g, r, c, W, H, colors.cell);
    return [r, c];
}

function fmt(v) { return Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2); }

function draw(s, eventTime) {
    if (!s.assets || s.assetsFor !== s.header.assets.key) return;  // never a new header over the old set's grids
    const h = s.header, colors = h.colors, active = s.hover || s.committed;
    const maps = computeMaps(s);
    s.maps = maps.map((o) => o && o.map); s.ranges = maps.map((o) => o && [o.lo, o.hi]);
    const tilesOnly = h.mode === "channels" && s.tilesDrawn;  // tiles never change with the pointer
    h.views.forEach((v, i) => {
        if (tilesOnly && i < h.views.length - 1) return;
        const g = s.assets.grids[v.grid], photo = s.assets.photos[v.image], view = s.views[i];
        const W = photo.width, H = photo.height, ctx = view.ctx, o = maps[i];
        const cell = cellAt(active.xy, g);
        if (!o) {
            const [r, c] = drawGridView(s, i, g, photo, active.xy);
            view.caption.textContent = `${v.label} · chosen square (row ${r}, col ${c}) outlined in yellow`;
            return;
        }
        ctx.globalAlpha = 1; ctx.imageSmoothingEnabled = false;
        ctx.drawImage(h.base === "color" ? photo.color : photo.gray, 0, 0);
        ctx.globalAlpha = v.opacity ?? h.opacity;
        ctx.imageSmoothingEnabled = h.upsample === "bilinear";
        ctx.imageSmoothingQuality = "low";
        ctx.drawImage(heatCanvas(s, i, g, o), 0, 0, W, H);
        ctx.globalAlpha = 1;
        const radius = Math.max(4, Math.round(0.03 * Math.min(W, H)));
        if (h.mode === "channels") {
            const mean = o.map.reduce((a, b) => a + b, 0) / o.map.length;
            view.caption.textContent = i === h.views.length - 1
                ? `${v.label} · channel ${o.channel} · mean activation ${fmt(mean)} · colours ${fmt(o.lo)} to ${fmt(o.hi)}`
                : v.label;
            view.box.classList.toggle("fl-chosen", o.channel === h.channel.index && i < h.views.length - 1);
            return;
        }
        const mapped = h.mapped ? mapTo(v, active.xy) : active.xy;  // sweeps: the point's place in this copy
        const showsRef = h.mode === "layers" || (h.mode === "images" && (h.mapped ? inFrame(mapped) : v.image === active.image));
        let pin = h.pin && (h.mode === "layers" || h.mapped || h.pin.image === v.image) ? h.pin.xy : null;
        if (pin && h.mapped) pin = inFrame(mapTo(v, pin)) ? mapTo(v, pin) : null;
        if (pin) ring(ctx, [pin[0] * W, pin[1] * H], colors.pinned, radius * colors.pin_ring_scale);
        if (showsRef) ring(ctx, [mapped[0] * W, mapped[1] * H], colors.reference, radius);
        const bestRC = [Math.floor(o.best / g.w), o.best % g.w];
        if (h.mode === "pair") cellBox(ctx, g, bestRC[0], bestRC[1], W, H, colors.cell);
        let text = v.label;
        if (o.own) text += ` · channel ${h.channel.index} · colours ${fmt(o.lo)} to ${fmt(o.hi)}`;
        else if (h.mode === "layers") text += ` · reference cell (row ${cell[0]}, col ${cell[1]}) · colours ${fmt(o.lo)} to ${fmt(o.hi)}`;
        else if (h.mode === "images" && h.mapped) text += v.image === active.image ? " · reference"
            : showsRef ? ` · at the point ${fmt(o.map[cellAt(mapped, g)[0] * g.w + cellAt(mapped, g)[1]])} · best ${fmt(o.max)}`
            : ` · the point left the frame · best ${fmt(o.max)}`;
        else if (h.mode === "images") text += showsRef ? " · reference" : ` · best match ${fmt(o.max)}`;
        else text += ` · best match ${fmt(o.max)} (yellow square)`;
        view.caption.textContent = text;
    });
    s.tilesDrawn = h.mode === "channels";
    legend(s, maps);
    if (s.firstDrawAt === null) s.firstDrawAt = performance.now();
    if (eventTime !== undefined) {
        s.timings.push(performance.now() - eventTime);
        if (s.timings.length > MAX_TIMINGS) s.timings.shift();
    }
    s.draws += 1;
}

function legend(s, maps) {
    const h = s.header, sims = maps.filter((o) => o && !o.own);
    const stops = [];
    for (let k = 0; k <= 8; k++) { const j = Math.round(k * 255 / 8) * 3; stops.push(`rgb(${h.lut[j]},${h.lut[j + 1]},${h.lut[j + 2]}) ${k * 12.5}%`); }
    s.gradient.style.background = `linear-gradient(90deg, ${stops.join(",")})`;
    const perView = sims.length > 1 && sims.some((o) => o.lo !== sims[0].lo || o.hi !== sims[0].hi);
    if (!sims.length || perView) { s.lo.textContent = "low"; s.hi.textContent = "high"; }
    else { s.lo.textContent = fmt(sims[0].lo); s.hi.textContent = fmt(sims[0].hi); }
    if (h.mode === "channels") { s.lo.textContent = "low"; s.hi.textContent = "high"; }
    s.scaleNote.textContent = h.mode === "channels" ? "Activation · each map on its own scale"
        : `${h.metric_name}` + (perView ? " · each view on its own range" : "");
}

// A move redraws at once (see RAW_UPDATES): waiting for an animation frame would add up to 16 ms.
function schedule(s, eventTime) {
    const start = performance.now();
    if (eventTime !== undefined) s.queued.push(start - eventTime);
    if (s.queued.length > MAX_TIMINGS) s.queued.shift();
    draw(s, eventTime);
    s.lastDrawn = performance.now();
    s.work.push(s.lastDrawn - start);
    if (s.work.length > MAX_TIMINGS) s.work.shift();
}

function inside(canvas, event) {
    const box = canvas.getBoundingClientRect();
    return event.clientX >= box.left && event.clientX < box.right && event.clientY >= box.top && event.clientY < box.bottom;
}

// The view under the pointer: the event's own view i, else the one that contains the point (-1: none).
function viewUnder(s, i, event) {
    if (inside(s.views[i].ctx.canvas, event)) return i;
    return s.views.findIndex((view) => inside(view.ctx.canvas, event));
}

function pointAt(canvas, event) {
    const box = canvas.getBoundingClientRect();
    if (!box.width || !box.height) return null;
    return [clamp01((event.clientX - box.left) / box.width), clamp01((event.clientY - box.top) / box.height)];
}

// Sweeps (header.mapped): a point of a copy stands for the original's point it shows; padding, for none.
function originalPoint(s, i, xy) {
    if (!xy || !s.header.mapped) return xy;
    const back = mapFrom(s.header.views[i], xy);
    return inFrame(back) ? [clamp01(back[0]), clamp01(back[1])] : null;
}

function commit(s, i, xy) {
    const v = s.header.mapped ? s.header.views[0] : s.header.views[i];
    if (s.header.mode === "pair" && i !== 0) return;
    clearTimeout(s.keyTimer);
    s.committed = { image: v.image, xy };
    commitCount += 1;
    if (s.send) s.send({ x: xy[0], y: xy[1], image: v.image, view: i, stamp: Date.now() * 1000 + (commitCount % 1000) });
}

function hoverable(s, i) {
    const h = s.header;
    return !((h.mode === "pair" && i !== 0) || (h.mode === "channels" && i === h.views.length - 1));
}

function wire(s, i, canvas) {
    const move = (event) => {
        const j = viewUnder(s, i, event);  // a raw update can still name the view the pointer just left
        if (j < 0 || !hoverable(s, j)) return;
        const xy = originalPoint(s, j, pointAt(s.views[j].ctx.canvas, event));
        if (!xy) return;
        const last = s.hover;
        if (last && last.view === j && last.xy[0] === xy[0] && last.xy[1] === xy[1]) return;  // seen as a raw update
        s.hover = { image: s.header.mapped ? 0 : s.header.views[j].image, xy, view: j };
        if (performance.now() - s.lastDrawn >= MIN_REDRAW_GAP_MS) { schedule(s, event.timeStamp); return; }
        s.pendingTime = event.timeStamp;
        s.pendingFrame = s.pendingFrame || requestAnimationFrame(() => { s.pendingFrame = 0; schedule(s, s.pendingTime); });
    };
    canvas.addEventListener("pointermove", move);
    if (RAW_UPDATES) canvas.addEventListener("pointerrawupdate", move);
    canvas.addEventListener("pointerleave", (event) => {
        if (s.keyboard) return;
        s.hover = null;
        schedule(s, event.timeStamp);
    });
    canvas.addEventListener("click", (event) => {
        const xy = originalPoint(s, i, pointAt(canvas, event));
        if (xy && hoverable(s, i)) { s.keyboard = false; commit(s, i, xy); s.hover = null; schedule(s, event.timeStamp); }
    });
    canvas.addEventListener("keydown", (event) => {
        if (!hoverable(s, i)) return;
        const step = event.shiftKey ? KEY_STEP_LARGE : KEY_STEP;
        const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
        const start = (s.hover || s.committed).xy;
        if (event.key in moves) {
            const [dx, dy] = moves[event.key];
            const xy = [clamp01(start[0] + dx), clamp01(start[1] + dy)];
            s.keyboard = true;
            s.hover = { image: s.header.views[i].image, xy, view: i };
            clearTimeout(s.keyTimer);
            s.keyTimer = setTimeout(() => { commit(s, i, xy); s.hover = null; s.keyboard = false; }, KEY_COMMIT_MS);
        } else if (event.key === "Enter" || event.key === " ") {
            commit(s, i, start); s.hover = null; s.keyboard = false;
        } else if (event.key === "Escape") {
            clearTimeout(s.keyTimer); s.hover = null; s.keyboard = false;
        } else return;
        event.preventDefault();
        schedule(s, event.timeStamp);
    });
    canvas.addEventListener("blur", () => { if (s.keyboard) { s.keyboard = false; } });
}

function build(parent) {
    const root = document.createElement("div");
    root.className = "fl-sim-root";
    const bar = document.createElement("div"); bar.className = "fl-bar";
    const legendBox = document.createElement("span"); legendBox.className = "fl-legend";
    const lo = document.createElement("span"), hi = document.createElement("span");
    const gradient = document.createElement("span"); gradient.className = "fl-gradient";
    const scaleNote = document.createElement("span"); scaleNote.className = "fl-hint";
    legendBox.append(lo, gradient, hi, scaleNote);
    const hint = document.createElement("span"); hint.className = "fl-hint";
    const save = document.createElement("button"); save.type = "button"; save.className = "fl-save";
    save.textContent = "Save figure";
    save.title = "Save these views as a PNG figure, with their captions, the colour bar and the settings";
    bar.append(legendBox, hint, save);
    const grid = document.createElement("div"); grid.className = "fl-grid";
    root.append(bar, grid);
    parent.appendChild(root);
    const s = { root, grid, hint, lo, hi, gradient, scaleNote, save, views: [], small: [], timings: [], work: [], queued: [], draws: 0, lastDrawn: -Infinity, pendingFrame: 0, pendingTime: 0, firstDrawAt: null, dataCount: 0, dataDrawnAt: null,
                hover: null, committed: null, keyboard: false, header: null, assets: null, send: null, layoutKey: "" };
    root.__flView = s;
    save.addEventListener("click", () => exportFigure(s));
    return s;
}

function layout(s) {  // one canvas and caption per view, sized from Python's numbers before anything decodes
    const h = s.header, key = JSON.stringify([h.assets.key, h.views, h.per_row, h.mode, h.max_height]);
    if (key === s.layoutKey) return;
    s.layoutKey = key;
    s.grid.replaceChildren();
    let tiles = s.grid;
    if (h.mode === "channels") {  // the tiles on the left, the large view of one channel on the right
        s.grid.style.gridTemplateColumns = "minmax(0, 1fr) minmax(0, 1fr)";
        tiles = document.createElement("div"); tiles.className = "fl-grid fl-tiles";
        s.grid.appendChild(tiles);
    }
    tiles.style.gridTemplateColumns = `repeat(${Math.max(1, Math.min(h.per_row, h.views.length))}, minmax(0, 1fr))`;
    s.views = h.views.map((v, i) => {
        const photo = h.assets.photos[v.image];
        const box = document.createElement("div"); box.className = "fl-view";
        const canvas = document.createElement("canvas");
        canvas.className = "fl-sim-canvas" + (hoverable(s, i) ? "" : " fl-passive");
        canvas.width = photo.width; canvas.height = photo.height;
        canvas.style.aspectRatio = `${photo.width} / ${photo.height}`;
        if (h.max_height) {  // as large as the screen allows: width follows the height limit
            canvas.style.width = `min(100%, calc(${h.max_height} * ${photo.width / photo.height}))`;
            canvas.style.margin = "0 auto";
        }
        canvas.tabIndex = hoverable(s, i) ? 0 : -1;
        canvas.setAttribute("role", "img");
        canvas.setAttribute("aria-label", `${v.label}: similarity map; hover to explore, click or arrow keys to set the reference`);
        const caption = document.createElement("div"); caption.className = "fl-caption"; caption.textContent = v.label;
        box.append(canvas, caption);
        (h.mode === "channels" && i < h.views.length - 1 ? tiles : s.grid).appendChild(box);
        wire(s, i, canvas);
        return { canvas, caption, box, ctx: canvas.getContext("2d") };
    });
    s.small = [];
}

function exportFigure(s) {
    if (!s.assets || s.assetsFor !== s.header.assets.key) return;
    const h = s.header, pad = 12, font = 16, perRow = Math.max(1, Math.min(h.per_row, h.views.length));
    const cellW = Math.max(...s.views.map((v) => v.canvas.width));
    const cellH = Math.max(...s.views.map((v) => v.canvas.height)) + font + pad;
    const rows = Math.ceil(s.views.length / perRow);
    const out = document.createElement("canvas");
    out.width = pad + perRow * (cellW + pad);
    out.height = pad + rows * (cellH + pad) + 2 * font + pad + 2 * font + pad;
    const ctx = out.getContext("2d");
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, out.width, out.height);
    ctx.fillStyle = "rgb(20,20,20)"; ctx.font = `${font}px sans-serif`; ctx.textBaseline = "top";
    s.views.forEach((v, i) => {
        const x = pad + (i % perRow) * (cellW + pad), y = pad + Math.floor(i / perRow) * (cellH + pad);
        ctx.drawImage(v.canvas, x, y);
        ctx.fillText(v.caption.textContent, x, y + v.canvas.height + 4, cellW);
    });
    let y = pad + rows * (cellH + pad);
    ctx.fillText(s.lo.textContent, pad, y);
    const barW = Math.min(260, out.width - 2 * pad - 120);
    for (let k = 0; k < barW; k++) {
        const j = Math.round(k * 255 / (barW - 1)) * 3;
        ctx.fillStyle = `rgb(${h.lut[j]},${h.lut[j + 1]},${h.lut[j + 2]})`; ctx.fillRect(pad + 50 + k, y, 1, font);
    }
    ctx.fillStyle = "rgb(20,20,20)";
    ctx.fillText(s.hi.textContent, pad + 60 + barW, y);
    y += 2 * font + pad;
    const active = s.hover || s.committed;
    ctx.fillText(`${h.caption} · reference (${active.xy[0].toFixed(3)}, ${active.xy[1].toFixed(3)})`, pad, y, out.width - 2 * pad);
    out.toBlob((blob) => {
        const a = document.createElement("a");
        a.href = URL.createObjectURL(blob); a.download = "featurelens-figure.png";
        document.body.appendChild(a); a.click(); a.remove();
        setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    }, "image/png");
}

export default function (component) {
    const { data, parentElement, setTriggerValue } = component;
    const s = parentElement.__flSimView || (parentElement.__flSimView = build(parentElement));
    s.send = (value) => setTriggerValue("commit", value);
    const [header, blob] = unpack(data);
    const previous = s.header;
    s.header = header;
    s.tilesDrawn = false;
    if (!previous || previous.ref_seq !== header.ref_seq || !s.committed
        || JSON.stringify(previous.ref) !== JSON.stringify(header.ref)) {
        s.committed = { image: header.ref.image, xy: header.ref.xy };
    }
    s.hint.textContent = {
        pair: "Point at the left image · click to keep a square",
        channels: "Point at a tile to see its channel large · click to keep it",
    }[header.mode] || "Point to explore · click to keep · arrow keys move";
    layout(s);
    const key = header.assets.key;
    decodeAssets(header.assets, blob).then((assets) => {
        if (s.header.assets.key !== key) return;  // newer data arrived meanwhile
        s.assets = assets; s.assetsFor = key;
        draw(s);
        s.dataDrawnAt = performance.now();
    });
    s.dataCount += 1;
    if (s.assets && s.assetsKey === key) { draw(s); s.dataDrawnAt = performance.now(); }
    s.assetsKey = key;
    return () => { s.send = null; };
}
"""

_component = st.components.v2.component(COMPONENT_NAME, css=_CSS, js=_JS)


def _state_key(key: str) -> str:
    return f"{key}__last_commit"


def _store_commit(key: str) -> None:
    """The ``commit`` trigger's callback: keep the value under a plain session-state key, read
    by :func:`last_commit` before the views are drawn again."""
    value = st.session_state.get(key)
    commit = value.get("commit") if isinstance(value, Mapping) else None
    try:
        x, y = float(commit["x"]), float(commit["y"])
        image, view, stamp = int(commit["image"]), int(commit["view"]), int(commit["stamp"])
    except (KeyError, TypeError, ValueError):
        return
    if np.isfinite(x) and np.isfinite(y) and image >= 0 and view >= 0:
        st.session_state[_state_key(key)] = Commit(min(max(x, 0.0), 1.0), min(max(y, 0.0), 1.0), image, view, stamp)


def similarity_views(assets: HoverAssets, state: dict[str, Any], *, key: str) -> None:
    """Show the views described by ``state`` (:func:`featurelens.similarity.hover_state`) over
    ``assets``, following the pointer. ``key`` names the element (no ``__`` in it). Identical
    assets and state give identical bytes, which Streamlit sends as a short reference."""
    _component(key=key, data=pack_hover(assets, state), width="stretch", height="content",
               on_commit_change=functools.partial(_store_commit, key))


def last_commit(key: str) -> Commit | None:
    """The latest reference committed in the :func:`similarity_views` ``key`` in this session."""
    return st.session_state.get(_state_key(key))


def consume_commit(key: str) -> Commit | None:
    """A commit not handled before (by stamp), with ``x``/``y`` rounded as a shared link writes
    them, or None. Read it before drawing, so this run's views already show it."""
    commit = last_commit(key)
    seen_key = f"{key}__seen"
    if commit is None or st.session_state.get(seen_key) == commit.stamp:
        return None
    st.session_state[seen_key] = commit.stamp
    return commit._replace(x=round(commit.x, 4), y=round(commit.y, 4))


