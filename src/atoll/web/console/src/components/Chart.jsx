// One uPlot panel per metric. The server does the downsampling (mode=chart&width=<px>), so
// each redraw holds at most ~2 points per pixel whether the range is a year or a minute:
// zooming re-queries the store for the new range instead of slicing a local copy.
import { useEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { api, enc, toSeconds } from "../api.js";
import { fmtNum, markPrimaryReady } from "../util.js";

// Accepts {ts:[...], value:[...]}, {points:[[ts,v]...]} or [[ts,v]...]; returns seconds.
export function normalizeSeries(data) {
  let ts = [];
  let val = [];
  if (Array.isArray(data)) {
    for (const p of data) {
      ts.push(Array.isArray(p) ? p[0] : p.ts);
      val.push(Array.isArray(p) ? p[1] : p.value ?? p.v);
    }
  } else if (data) {
    const t = data.ts || data.t || data.time || (data.points && data.points.map((p) => p[0])) || data.start || [];
    const v = data.value || data.values || data.v || (data.points && data.points.map((p) => p[1])) || data.avg || data.columns?.avg || [];
    ts = t;
    val = v;
  }
  const n = Math.min(ts.length, val.length);
  const x = new Array(n);
  const y = new Array(n);
  const conv = n && typeof ts[0] === "number" ? (ts[0] > 1e14 ? 1e-6 : ts[0] > 1e11 ? 1e-3 : 1) : null;
  for (let i = 0; i < n; i++) {
    x[i] = conv ? ts[i] * conv : toSeconds(ts[i]);
    y[i] = val[i] === null ? null : Number(val[i]);
  }
  return { x, y };
}

export async function fetchChart(device, metric, start, end, width, signal) {
  const data = await api.get(
    `/devices/${enc(device)}/series/${enc(metric)}`,
    // The API reads bare numbers as epoch milliseconds.
    { start: Math.floor(start * 1000), end: Math.ceil(end * 1000), mode: "chart", width: Math.max(16, Math.round(width)) },
    { signal },
  );
  return normalizeSeries(data);
}

// A stretch without readings is drawn as a break, not a ramp from the last reading before it
// to the first after (#13's walk): a null (uPlot's gap) goes where two readings are more than
// GAP_STEPS typical spacings apart, and more than `minGap` (a few pixel columns: downsampled
// series come as a min and a max per column, close together within one).
const GAP_STEPS = 3;
export function withGaps(series, minGap = 0) {
  const { x, y } = series;
  if (x.length < 3) return { ...series, gaps: 0 };
  const limit = Math.max(GAP_STEPS * typicalStep(x), minGap);
  let gaps = 0;
  for (let i = 1; i < x.length; i++) if (x[i] - x[i - 1] > limit) gaps++;
  if (!gaps) return { ...series, gaps: 0 };
  const gx = new Array(x.length + gaps);
  const gy = new Array(x.length + gaps);
  for (let i = 0, j = 0; i < x.length; i++) {
    if (i && x[i] - x[i - 1] > limit) {
      gx[j] = (x[i] + x[i - 1]) / 2;
      gy[j++] = null;
    }
    gx[j] = x[i];
    gy[j++] = y[i];
  }
  return { x: gx, y: gy, gaps };
}

// Merge the anomaly score's timestamps onto the metric's, so uPlot gets one aligned table.
function align(main, extra, withExtra, minGap) {
  main = withGaps(main, minGap);
  const out = alignGapped(main, extra, withExtra);
  out.gaps = main.gaps; // how many breaks are drawn (the chart panel's data-gaps)
  return out;
}

function alignGapped(main, extra, withExtra) {
  if (!withExtra) return [main.x, main.y];
  if (!extra || !extra.x.length) return [main.x, main.y, main.y.map(() => undefined)];
  const xs = Array.from(new Set([...main.x, ...extra.x])).sort((a, b) => a - b);
  const idx = new Map(xs.map((t, i) => [t, i]));
  const y1 = new Array(xs.length).fill(undefined);
  const y2 = new Array(xs.length).fill(undefined);
  main.x.forEach((t, i) => (y1[idx.get(t)] = main.y[i]));
  extra.x.forEach((t, i) => (y2[idx.get(t)] = extra.y[i]));
  return [xs, y1, y2];
}

// In live mode the window slides with the clock; otherwise it is what the user picked.
export function effRange(r) {
  if (!r.live) return [r.start, r.end];
  const now = Date.now() / 1000;
  return [now - (r.end - r.start), now];
}

// In live mode, slide the plot's window with the clock even when no reading arrives.
export function useSlidingWindow(plot, rangeRef) {
  const live = rangeRef.current.live;
  useEffect(() => {
    if (!live) return;
    const t = setInterval(() => {
      if (!plot.current) return;
      const [a, b] = effRange(rangeRef.current);
      plot.current.setScale("x", { min: a, max: b });
    }, 1000);
    return () => clearInterval(t);
  }, [live]);
}

// The expected band the detection service stores for the readings it flagged ("<metric>.expected_lo"
// and ".expected_hi"): both edges on one time axis (downsampled edges may not share timestamps,
// so each lo point takes the nearest hi).
export function joinBand(lo, hi) {
  const x = [];
  const a = [];
  const b = [];
  if (!lo || !hi || !lo.x.length || !hi.x.length) return { x, lo: a, hi: b };
  let j = 0;
  for (let i = 0; i < lo.x.length; i++) {
    const t = lo.x[i];
    while (j + 1 < hi.x.length && Math.abs(hi.x[j + 1] - t) <= Math.abs(hi.x[j] - t)) j++;
    if (lo.y[i] === null || hi.y[j] === null) continue;
    x.push(t);
    a.push(Math.min(lo.y[i], hi.y[j]));
    b.push(Math.max(lo.y[i], hi.y[j]));
  }
  return { x, lo: a, hi: b };
}

// Index of the element of the sorted array xs nearest to t (-1 when empty).
function nearest(xs, t) {
  if (!xs.length) return -1;
  let lo = 0;
  let hi = xs.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (xs[mid] < t) lo = mid + 1;
    else hi = mid;
  }
  return lo > 0 && Math.abs(xs[lo - 1] - t) <= Math.abs(xs[lo] - t) ? lo - 1 : lo;
}

// Median spacing of a sorted time axis: band points further apart than a few of these are
// separate episodes, drawn as separate shapes.
function typicalStep(xs) {
  if (xs.length < 2) return 1;
  const d = [];
  for (let i = 1; i < xs.length && d.length < 512; i++) d.push(xs[i] - xs[i - 1]);
  d.sort((p, q) => p - q);
  return d[d.length >> 1] || 1;
}

export const BAND_FILL = "rgba(63,174,90,0.22)";
export const BAND_EDGE = "rgba(63,174,90,0.75)";
export const FLAG_COLOR = "#e5484d";
export const FORECAST_FILL = "rgba(124,108,240,0.18)";
export const FORECAST_LINE = "rgba(160,148,255,0.95)";

// The forecast API's horizon for a window: a third of what is shown, 10 minutes to a year.
export function forecastHorizon(spanS) {
  const m = Math.round(Math.min(365 * 1440, Math.max(10, spanS / 3 / 60)));
  return `${m}m`;
}

const COLORS = ["#2aa6b8", "#7c6cf0", "#3fae5a", "#d9822b", "#c2409a", "#5b8def"];

export function ChartPanel({ device, metric, unit, thresholds, anomalyMetric, bandMetrics, range, onRange, alarms, liveRef, syncKey }) {
  // The threshold rules on this metric ([{value, op, name}]), drawn as dashed lines.
  const thresholdsRef = useRef(thresholds);
  thresholdsRef.current = thresholds;
  const box = useRef(null);
  const plot = useRef(null);
  const data = useRef({ main: { x: [], y: [] }, extra: null, band: null });
  // The newest live readings, re-applied over each store answer (they may be newer than it).
  const recent = useRef([]);
  const [bandPoints, setBandPoints] = useState(0);
  const bandKey = bandMetrics ? `${bandMetrics.lo}|${bandMetrics.hi}` : "";
  const [status, setStatus] = useState({ loading: true, points: 0, error: null });
  const [last, setLast] = useState(null);
  const plotData = (main, extra, withExtra) => {
    const [a, b] = effRange(rangeRef.current);
    const out = align(main, extra, withExtra, (4 * (b - a)) / (box.current?.clientWidth || 600));
    if (box.current) box.current.dataset.gaps = out.gaps;
    return out;
  };
  // The forecast overlay: off until asked for; its data lives beside the chart's.
  const [fcOn, setFcOn] = useState(false);
  const [fcInfo, setFcInfo] = useState(null);
  const fcRef = useRef(null);
  function withForecast([a, b]) {
    const f = fcRef.current;
    return f && f.x.length ? [a, Math.max(b, f.x[f.x.length - 1])] : [a, b];
  }
  const alarmsRef = useRef(alarms);
  alarmsRef.current = alarms;
  const onRangeRef = useRef(onRange);
  onRangeRef.current = onRange;
  const anomalyRef = useRef(anomalyMetric);
  anomalyRef.current = anomalyMetric;
  const rangeRef = useRef(range);
  rangeRef.current = range;
  // Colour follows the metric's name, so it stays put when other metrics appear.
  const color = COLORS[[...metric].reduce((h, c) => (h * 31 + c.charCodeAt(0)) >>> 0, 7) % COLORS.length];

  // Create the plot once; data and scales change through setData/setScale.
  useEffect(() => {
    const el = box.current;
    const width = el.clientWidth || 800;
    const series = [{}, { label: metric, stroke: color, width: 1.25, fill: color + "14", spanGaps: false, value: (u, v) => (v === null || v === undefined ? "—" : unit ? `${fmtNum(v)} ${unit}` : fmtNum(v)) }];
    const axes = [
      { stroke: "#8b95a5", grid: { stroke: "#2a313c", width: 1 }, ticks: { stroke: "#2a313c" } },
      // The unit its device type declares, on the value axis (#13's walk: no units on axes).
      { stroke: "#8b95a5", grid: { stroke: "#2a313c", width: 1 }, ticks: { stroke: "#2a313c" }, size: 56, label: unit || undefined, labelSize: 14 },
    ];
    const scales = {
      x: { time: true, auto: false, range: () => withForecast(effRange(rangeRef.current)) },
      // The expected band counts for the y range, so a reading far above it leaves both in view.
      y: {
        range: (u, mn, mx) => {
          const b = data.current.band;
          if (b && b.x.length) {
            const [a, z] = [u.scales.x.min, u.scales.x.max];
            for (let i = 0; i < b.x.length; i++) {
              if (b.x[i] < a || b.x[i] > z) continue;
              mn = mn === null || b.lo[i] < mn ? b.lo[i] : mn;
              mx = mx === null || b.hi[i] > mx ? b.hi[i] : mx;
            }
          }
          // A threshold is in view with the readings it judges.
          if (mn !== null && mx !== null)
            for (const t of thresholdsRef.current || []) {
              mn = t.value < mn ? t.value : mn;
              mx = t.value > mx ? t.value : mx;
            }
          const f = fcRef.current;
          if (f && f.x.length) {
            for (let i = 0; i < f.x.length; i++) {
              mn = mn === null || f.lo[i] < mn ? f.lo[i] : mn;
              mx = mx === null || f.hi[i] > mx ? f.hi[i] : mx;
            }
          }
          if (mn === null || mx === null) return [0, 1];
          return uPlot.rangeNum(mn, mx, 0.1, true);
        },
      },
    };
    if (anomalyMetric) {
      series.push({ label: "anomaly score", stroke: "#e5a13a", width: 1, scale: "score", fill: "#e5a13a22", value: (u, v) => fmtNum(v), paths: uPlot.paths.stepped({ align: 1 }) });
      axes.push({ scale: "score", side: 1, stroke: "#e5a13a", grid: { show: false }, size: 40 });
      scales.score = { auto: false, range: [0, 1] };
    }
    const opts = {
      width,
      height: 190,
      series,
      axes,
      scales,
      legend: { live: true },
      cursor: { drag: { x: true, y: false, setScale: false }, sync: syncKey ? { key: syncKey } : undefined },
      hooks: {
        setSelect: [
          (u) => {
            if (u.select.width < 4) return;
            const a = u.posToVal(u.select.left, "x");
            const b = u.posToVal(u.select.left + u.select.width, "x");
            u.setSelect({ left: 0, width: 0 }, false);
            onRangeRef.current({ start: a, end: b, live: false });
          },
        ],
        drawClear: [
          (u) => {
            // Alarm periods as translucent bands behind the series, start markers in red.
            const ctx = u.ctx;
            const { left, top, width: w, height: h } = u.bbox;
            for (const a of alarmsRef.current || []) {
              const x0 = Math.max(left, u.valToPos(a.start, "x", true));
              const x1 = Math.min(left + w, u.valToPos(a.end ?? effRange(rangeRef.current)[1], "x", true));
              if (x1 < left || x0 > left + w) continue;
              ctx.fillStyle = a.state === "cleared" ? "rgba(120,130,150,0.10)" : "rgba(229,72,77,0.14)";
              ctx.fillRect(x0, top, Math.max(2, x1 - x0), h);
              ctx.fillStyle = "#e5484d";
              ctx.fillRect(x0, top, 2, h);
            }
            drawBand(u);
          },
        ],
        draw: [(u) => drawFlags(u), (u) => drawForecast(u), (u) => drawThresholds(u)],
      },
    };
    // Threshold rules on this metric: a dashed line at the value, named at the right edge.
    function drawThresholds(u) {
      const ts = thresholdsRef.current || [];
      if (!ts.length) return;
      const ctx = u.ctx;
      const { left, top, width: w, height: h } = u.bbox;
      ctx.save();
      ctx.setLineDash([6, 4]);
      ctx.lineWidth = devicePixelRatio;
      ctx.font = `${11 * devicePixelRatio}px sans-serif`;
      ctx.textAlign = "right";
      for (const t of ts) {
        const y = Math.round(u.valToPos(t.value, "y", true));
        if (y < top || y > top + h) continue;
        ctx.strokeStyle = "rgba(229,72,77,0.8)";
        ctx.beginPath();
        ctx.moveTo(left, y);
        ctx.lineTo(left + w, y);
        ctx.stroke();
        ctx.fillStyle = "rgba(229,72,77,0.95)";
        ctx.fillText(`${t.name} ${t.op} ${fmtNum(t.value)}`, left + w - 4, y - 3 * devicePixelRatio);
      }
      ctx.restore();
    }

    // The expected band: one shape per run of flagged readings, behind the metric's line.
    function drawBand(u) {
      const b = data.current.band;
      if (!b || !b.x.length) return;
      const ctx = u.ctx;
      const { left, top, width: w, height: h } = u.bbox;
      const gap = 3 * Math.max(typicalStep(data.current.main.x), typicalStep(b.x));
      ctx.save();
      ctx.beginPath();
      ctx.rect(left, top, w, h);
      ctx.clip();
      const px = (t) => u.valToPos(t, "x", true);
      const py = (v) => u.valToPos(v, "y", true);
      let i = 0;
      while (i < b.x.length) {
        let j = i;
        while (j + 1 < b.x.length && b.x[j + 1] - b.x[j] <= gap) j++;
        ctx.fillStyle = BAND_FILL;
        ctx.strokeStyle = BAND_EDGE;
        ctx.lineWidth = devicePixelRatio;
        if (j === i) {
          const x = px(b.x[i]);
          ctx.fillRect(x - 2 * devicePixelRatio, py(b.hi[i]), 4 * devicePixelRatio, Math.max(1, py(b.lo[i]) - py(b.hi[i])));
        } else {
          ctx.beginPath();
          for (let k = i; k <= j; k++) ctx.lineTo(px(b.x[k]), py(b.hi[k]));
          for (let k = j; k >= i; k--) ctx.lineTo(px(b.x[k]), py(b.lo[k]));
          ctx.closePath();
          ctx.fill();
          ctx.beginPath();
          for (let k = i; k <= j; k++) ctx.lineTo(px(b.x[k]), py(b.hi[k]));
          ctx.stroke();
          ctx.beginPath();
          for (let k = i; k <= j; k++) ctx.lineTo(px(b.x[k]), py(b.lo[k]));
          ctx.stroke();
        }
        i = j + 1;
      }
      ctx.restore();
    }

    // The forecast: its interval as a band, its mean path dashed, from the last complete bucket on.
    function drawForecast(u) {
      const f = fcRef.current;
      if (!f || !f.x.length) return;
      const ctx = u.ctx;
      const { left, top, width: w, height: h } = u.bbox;
      const px = (t) => u.valToPos(t, "x", true);
      const py = (v) => u.valToPos(v, "y", true);
      ctx.save();
      ctx.beginPath();
      ctx.rect(left, top, w, h);
      ctx.clip();
      ctx.fillStyle = FORECAST_FILL;
      ctx.beginPath();
      for (let k = 0; k < f.x.length; k++) ctx.lineTo(px(f.x[k]), py(f.hi[k]));
      for (let k = f.x.length - 1; k >= 0; k--) ctx.lineTo(px(f.x[k]), py(f.lo[k]));
      ctx.closePath();
      ctx.fill();
      ctx.strokeStyle = FORECAST_LINE;
      ctx.lineWidth = 1.5 * devicePixelRatio;
      ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
      ctx.beginPath();
      for (let k = 0; k < f.x.length; k++) ctx.lineTo(px(f.x[k]), py(f.mean[k]));
      ctx.stroke();
      ctx.restore();
    }

    // Flagged readings (those with an expected band) as red dots on the metric's line.
    function drawFlags(u) {
      if (bandMetrics?.kind === "interval") return; // an interval flags nothing
      const b = data.current.band;
      const m = data.current.main;
      if (!b || !b.x.length || !m.x.length) return;
      const ctx = u.ctx;
      const { left, top, width: w, height: h } = u.bbox;
      const gap = 3 * typicalStep(m.x);
      const r = 2.5 * devicePixelRatio;
      ctx.save();
      ctx.beginPath();
      ctx.rect(left, top, w, h);
      ctx.clip();
      ctx.fillStyle = FLAG_COLOR;
      let lastX = -Infinity;
      for (let i = 0; i < b.x.length; i++) {
        const k = nearest(m.x, b.x[i]);
        if (k < 0 || Math.abs(m.x[k] - b.x[i]) > gap || m.y[k] === null || m.y[k] === undefined) continue;
        const x = u.valToPos(m.x[k], "x", true);
        if (x - lastX < r) continue; // one dot per few pixels is enough
        lastX = x;
        ctx.beginPath();
        ctx.arc(x, u.valToPos(m.y[k], "y", true), r, 0, 2 * Math.PI);
        ctx.fill();
      }
      ctx.restore();
    }

    const u = new uPlot(opts, plotData(data.current.main, data.current.extra, !!anomalyMetric), el);
    plot.current = u;
    // Wheel zooms around the cursor, shift+wheel pans; both re-query at the new range.
    const over = u.over;
    const onWheel = (e) => {
      e.preventDefault();
      const [rs, re] = effRange(rangeRef.current);
      const r = { start: rs, end: re };
      const span = r.end - r.start;
      if (e.shiftKey || Math.abs(e.deltaX) > Math.abs(e.deltaY)) {
        const d = ((e.shiftKey ? e.deltaY : e.deltaX) / over.clientWidth) * span;
        onRangeRef.current({ start: r.start + d, end: r.end + d, live: false });
        return;
      }
      const at = u.posToVal(e.offsetX, "x");
      const f = e.deltaY < 0 ? 0.75 : 1 / 0.75;
      const ns = Math.max(at - (at - r.start) * f, 0);
      const ne = at + (r.end - at) * f;
      if (ne - ns < 1) return;
      onRangeRef.current({ start: ns, end: ne, live: false });
    };
    over.addEventListener("wheel", onWheel, { passive: false });
    over.addEventListener("dblclick", () => {
      const [rs, re] = effRange(rangeRef.current);
      const r = { start: rs, end: re };
      const mid = (r.start + r.end) / 2;
      const span = (r.end - r.start) * 4;
      onRangeRef.current({ start: mid - span / 2, end: mid + span / 2, live: false });
    });
    const ro = new ResizeObserver(() => {
      const w = el.clientWidth;
      if (w && Math.abs(w - u.width) > 1) u.setSize({ width: w, height: 190 });
    });
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
      plot.current = null;
    };
  }, [metric, anomalyMetric]);

  // (Re)query the store whenever the visible range changes; in live mode only on span change.
  useEffect(() => {
    const ctl = new AbortController();
    const width = plot.current ? plot.current.bbox.width / devicePixelRatio : 800;
    setStatus((s) => ({ ...s, loading: true }));
    const t0 = performance.now();
    const [qs, qe] = effRange(range);
    // Live windows ask a little past "now" so readings stamped by a fast device clock show too.
    const end = range.live ? qe + 60 : qe;
    Promise.all([
      fetchChart(device, metric, qs, end, width, ctl.signal),
      anomalyMetric ? fetchChart(device, anomalyMetric, qs, end, width, ctl.signal).catch(() => null) : null,
      bandMetrics ? fetchChart(device, bandMetrics.lo, qs, end, width, ctl.signal).catch(() => null) : null,
      bandMetrics ? fetchChart(device, bandMetrics.hi, qs, end, width, ctl.signal).catch(() => null) : null,
    ]).then(
      ([main, extra, lo, hi]) => {
        const band = bandMetrics ? joinBand(lo, hi) : null;
        // Live readings that arrived while the store was being asked may be newer than its
        // answer: keep them on the end instead of losing them to the reply.
        const end = main.x.length ? main.x[main.x.length - 1] : -Infinity;
        // (A past window takes only those inside it.)
        for (const [t, v] of recent.current) if (t > end && t >= qs && (range.live || t <= qe)) { main.x.push(t); main.y.push(v); }
        data.current = { main, extra, band };
        setBandPoints(band ? band.x.length : 0);
        if (plot.current) {
          plot.current.setData(plotData(main, extra, !!anomalyMetric), false);
          const [a, b] = effRange(rangeRef.current);
          plot.current.setScale("x", { min: a, max: b });
        }
        if (main.x.length) setLast({ t: main.x[main.x.length - 1], v: main.y[main.y.length - 1] });
        setStatus({ loading: false, points: main.x.length, error: null, ms: Math.round(performance.now() - t0) });
        window.__atollChartLoads = (window.__atollChartLoads || 0) + 1;
        window.__atollChartAt = performance.now(); // when the chart was last redrawn with data (benchmarks)
        markPrimaryReady();
      },
      (e) => {
        if (e.name !== "AbortError") setStatus({ loading: false, points: 0, error: e });
        markPrimaryReady();
      },
    );
    return () => ctl.abort();
  }, [device, metric, anomalyMetric, bandKey, range.start, range.end, range.live, range.nonce]);
  // (In live mode start/end only change when the user picks another span.)

  // The forecast is asked for when switched on, and again when the window's span changes.
  useEffect(() => {
    if (!fcOn) {
      fcRef.current = null;
      setFcInfo(null);
      plot.current?.setScale("x", { min: 0, max: 1 });
      return;
    }
    const ctl = new AbortController();
    const [qs, qe] = effRange(range);
    setFcInfo({ loading: true });
    api
      .get(`/devices/${enc(device)}/series/${enc(metric)}/forecast`, { horizon: forecastHorizon(qe - qs) }, { signal: ctl.signal })
      .then(
        (f) => {
          fcRef.current = { x: f.ts.map((t) => t / 1000), mean: f.mean, lo: f.lo, hi: f.hi };
          setFcInfo({ model: f.model, level: f.level, points: f.ts.length, end: f.ts[f.ts.length - 1] / 1000 });
          plot.current?.setScale("x", { min: 0, max: 1 });
        },
        (e) => {
          if (e.name === "AbortError") return;
          fcRef.current = null;
          setFcInfo({ error: e.message });
          plot.current?.redraw(false);
        },
      );
    return () => ctl.abort();
  }, [fcOn, device, metric, range.start, range.end, range.live]);

  // Alarm overlays change without new data: just redraw.
  useEffect(() => {
    plot.current?.redraw(false);
  }, [alarms]);
  const thresholdKey = (thresholds || []).map((t) => `${t.name}${t.op}${t.value}`).join("|");
  useEffect(() => {
    plot.current?.redraw(false, true);
  }, [thresholdKey]);

  // Live points are appended locally between re-queries (the server is re-asked on zoom).
  useEffect(() => {
    if (!liveRef) return;
    recent.current = [];
    const handler = { metric, push, pushScore, pushBand };
    liveRef.current.add(handler);
    return () => liveRef.current.delete(handler);
  }, [metric, device]);

  // Appends are batched into one redraw per animation frame, however fast readings come.
  const frame = useRef(0);
  function redraw() {
    if (frame.current) return;
    frame.current = requestAnimationFrame(() => {
      frame.current = 0;
      if (!plot.current) return;
      const d = data.current;
      plot.current.setData(plotData(d.main, d.extra, !!anomalyRef.current), false);
      const [a, b] = effRange(rangeRef.current);
      plot.current.setScale("x", { min: a, max: b });
      window.__atollLastDraw = { metric, t: d.main.x[d.main.x.length - 1], at: performance.now() };
    });
  }

  function push(t, v) {
    const r = recent.current;
    if (!r.length || t > r[r.length - 1][0]) {
      r.push([t, v]);
      if (r.length > 256) r.splice(0, r.length - 256);
    }
    // A past window shows what was stored then, not the readings arriving now (#13's walk).
    if (!rangeRef.current.live) return;
    const d = data.current;
    const mx = d.main.x;
    if (mx.length && t <= mx[mx.length - 1]) return;
    mx.push(t);
    d.main.y.push(v);
    setLast({ t, v });
    setStatus((s) => ({ ...s, points: mx.length }));
    redraw();
  }

  function pushScore(t, score) {
    if (!rangeRef.current.live) return;
    const d = data.current;
    if (!d.extra) d.extra = { x: [], y: [] };
    const ex = d.extra.x;
    if (ex.length && t <= ex[ex.length - 1]) return;
    ex.push(t);
    d.extra.y.push(score);
    redraw();
  }

  function pushBand(t, lo, hi) {
    if (typeof lo !== "number" || typeof hi !== "number" || !rangeRef.current.live) return;
    const d = data.current;
    if (!d.band) d.band = { x: [], lo: [], hi: [] };
    const bx = d.band.x;
    if (bx.length && t <= bx[bx.length - 1]) return;
    bx.push(t);
    d.band.lo.push(Math.min(lo, hi));
    d.band.hi.push(Math.max(lo, hi));
    setBandPoints(bx.length);
    redraw();
  }

  useSlidingWindow(plot, rangeRef);

  return (
    <div class="panel chart-panel" data-testid={`chart-${metric}`} data-points={status.points} data-band={bandPoints}>
      <div class="panel-head">
        <span class="swatch" style={{ background: color }} />
        <strong>{metric}</strong>
        {unit && (
          <span class="muted small" data-testid={`unit-${metric}`}>
            {unit}
          </span>
        )}
        {anomalyMetric && <span class="tag warn">anomaly overlay</span>}
        {thresholds?.length > 0 && (
          <span class="threshold-key small" data-testid={`thresholds-${metric}`} title={thresholds.map((t) => `${t.name}: ${metric} ${t.op} ${t.value}`).join("\n")}>
            <span class="threshold-swatch" /> {thresholds.map((t) => `${t.op} ${fmtNum(t.value)}`).join(", ")}
          </span>
        )}
        {alarms?.length > 0 && (
          <span class="alarm-key small" data-testid={`alarm-key-${metric}`} title="Shaded: while an alarm on this metric was open (grey once cleared)">
            <span class="alarm-swatch" /> alarm
          </span>
        )}
        {bandPoints > 0 && bandMetrics?.kind === "interval" && (
          <span class="band-key small" data-testid={`band-legend-${metric}`} title={`The model's 90 % interval (stored as ${bandMetrics.lo} and ${bandMetrics.hi})`}>
            <span class="band-swatch" /> 90 % interval (RUL model)
          </span>
        )}
        {bandPoints > 0 && bandMetrics?.kind !== "interval" && (
          <span class="band-key small" data-testid={`band-legend-${metric}`} title="Where the model flagged readings, the range of values it expected of them (the detection service stores it as this metric's expected_lo / expected_hi series)">
            <span class="band-swatch" /> expected band (model) <span class="flag-dot" /> flagged reading
          </span>
        )}
        {fcInfo && fcInfo.model && (
          <span class="forecast-key small" data-testid={`forecast-legend-${metric}`} data-points={fcInfo.points} title={`Forecast by ${fcInfo.model} from the stored history; the band holds ${Math.round(fcInfo.level * 100)} % of outcomes`}>
            <span class="forecast-swatch" /> forecast, {Math.round(fcInfo.level * 100)} % band
          </span>
        )}
        {fcInfo && fcInfo.error && (
          <span class="muted small" data-testid={`forecast-error-${metric}`}>
            no forecast: {fcInfo.error}
          </span>
        )}
        <span class="grow" />
        <button class={`btn small ${fcOn ? "active" : ""}`} data-testid={`forecast-toggle-${metric}`} aria-pressed={fcOn} title="Forecast this series ahead of now, with an interval" onClick={() => setFcOn(!fcOn)}>
          {fcInfo && fcInfo.loading ? "forecasting…" : "Forecast"}
        </button>
        <span class="muted small" data-testid={`last-${metric}`}>
          {last ? `last ${fmtNum(last.v)}` : ""}
        </span>
        <span class="muted small">
          {status.loading ? "loading…" : status.error ? "" : `${status.points} pts · ${status.ms ?? 0} ms`}
        </span>
      </div>
      {status.error && <div class="error-box small">{status.error.message}</div>}
      {!status.loading && !status.error && !status.points && !last && (
        <div class="chart-empty muted small" data-testid={`chart-empty-${metric}`}>
          No readings of {metric} in this window: pick a longer one above{range.live ? ", or wait for the device to send" : ""}.
        </div>
      )}
      <div ref={box} class="chart-box" />
    </div>
  );
}
