// One uPlot chart of a template panel: the same metric(s) across several devices. Each line
// is a server-downsampled series (mode=chart, ≈2 points per pixel), joined on time with
// uPlot.join; live readings are appended locally and redrawn once per animation frame.
import { useEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { fmtNum } from "../util.js";
import { effRange, fetchChart, useSlidingWindow, withGaps } from "./Chart.jsx";

// Twelve distinct colours (a dashboard panel shows up to 12 devices: #13's walk found 8 colours
// repeating on a 12-line chart); past twelve, lines repeat a colour with a dotted stroke.
export const DEVICE_COLORS = ["#2aa6b8", "#7c6cf0", "#3fae5a", "#d9822b", "#c2409a", "#5b8def", "#c9b23a", "#e5484d", "#8fd14f", "#f28cb1", "#a0785a", "#9aa5b1"];
const HEIGHT = 170;

export function MultiChart({ devices, metrics, range, liveRef, testid }) {
  const box = useRef(null);
  const plot = useRef(null);
  const lines = useRef([]); // [{device, metric, x: [], y: []}] in series order
  const rangeRef = useRef(range);
  rangeRef.current = range;
  const [status, setStatus] = useState({ loading: true, points: 0, error: null });
  const key = `${devices.join(",")}|${metrics.map((m) => m.name).join(",")}`;

  function table() {
    const ls = lines.current;
    if (!ls.length) return [[]];
    // A stretch without readings is a break (a null), the other lines' timestamps are not.
    return uPlot.join(
      ls.map((l) => {
        const [a, b] = effRange(rangeRef.current);
        const g = withGaps(l, (4 * (b - a)) / (box.current?.clientWidth || 600));
        return [g.x, g.y];
      }),
    );
  }

  // Build the plot for this set of lines; data arrives through setData.
  useEffect(() => {
    const el = box.current;
    lines.current = metrics.flatMap((m) => devices.map((d) => ({ device: d, metric: m.name, x: [], y: [] })));
    const scaleOf = (i) => (i === 0 ? "y" : metrics[i].name);
    const series = [{}];
    metrics.forEach((m, mi) =>
      devices.forEach((d, di) =>
        series.push({
          label: metrics.length > 1 ? `${d} ${m.name}` : d,
          // One device: a colour per metric; several: a colour per device, dashes per metric.
          stroke: DEVICE_COLORS[(devices.length === 1 ? mi : di) % DEVICE_COLORS.length],
          width: 1.25,
          dash: mi ? [4, 3] : devices.length > 1 && di >= DEVICE_COLORS.length ? [1, 3] : undefined,
          scale: scaleOf(mi),
          spanGaps: false,
          value: (u, v) => (v === null || v === undefined ? "—" : `${fmtNum(v)} ${m.unit || ""}`),
        }),
      ),
    );
    const grid = { stroke: "#2a313c", width: 1 };
    const axes = [
      { stroke: "#8b95a5", grid, ticks: { stroke: "#2a313c" } },
      { stroke: "#8b95a5", grid, ticks: { stroke: "#2a313c" }, size: 52, label: metrics[0].unit || undefined, labelSize: 14 },
    ];
    const scales = { x: { time: true, auto: false, range: () => effRange(rangeRef.current) } };
    // A second metric (pressure and flow) gets its own axis on the right.
    metrics.slice(1).forEach((m, i) => {
      scales[m.name] = { auto: true };
      axes.push({ scale: m.name, side: 1, stroke: "#8b95a5", grid: { show: false }, size: 52, label: m.unit || m.name, labelSize: 14, show: i === 0 });
    });
    const u = new uPlot(
      { width: el.clientWidth || 600, height: HEIGHT, series, axes, scales, legend: { live: true }, cursor: { drag: { x: false, y: false } } },
      table(),
      el,
    );
    plot.current = u;
    const ro = new ResizeObserver(() => {
      const w = el.clientWidth;
      if (w && Math.abs(w - u.width) > 1) u.setSize({ width: w, height: HEIGHT });
    });
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
      plot.current = null;
    };
  }, [key]);

  // Query every line for the window; one request per device and metric, all at once.
  useEffect(() => {
    const ctl = new AbortController();
    const width = plot.current ? plot.current.bbox.width / devicePixelRatio : 600;
    const [qs, qe] = effRange(range);
    const end = range.live ? qe + 60 : qe;
    setStatus((s) => ({ ...s, loading: true }));
    Promise.all(lines.current.map((l) => fetchChart(l.device, l.metric, qs, end, width, ctl.signal))).then(
      (got) => {
        got.forEach((s, i) => Object.assign(lines.current[i], s));
        draw();
        setStatus({ loading: false, points: got.reduce((n, s) => n + s.x.length, 0), error: null });
      },
      (error) => {
        if (error.name !== "AbortError") setStatus({ loading: false, points: 0, error });
      },
    );
    return () => ctl.abort();
  }, [key, range.start, range.end, range.live, range.nonce]);

  function draw() {
    if (!plot.current) return;
    plot.current.setData(table(), false);
    const [a, b] = effRange(rangeRef.current);
    plot.current.setScale("x", { min: a, max: b });
  }

  // Live readings: appended to their line, redrawn at most once per frame.
  const frame = useRef(0);
  useEffect(() => {
    const handler = {
      push(device, metric, t, v) {
        const l = lines.current.find((x) => x.device === device && x.metric === metric);
        if (!l || (l.x.length && t <= l.x[l.x.length - 1])) return;
        l.x.push(t);
        l.y.push(v);
        setStatus((s) => ({ ...s, points: s.points + 1 }));
        if (!frame.current)
          frame.current = requestAnimationFrame(() => {
            frame.current = 0;
            draw();
          });
      },
    };
    liveRef.current.add(handler);
    return () => liveRef.current.delete(handler);
  }, [key]);

  useSlidingWindow(plot, rangeRef);

  return (
    <div class="dash-chart" data-testid={testid} data-points={status.points}>
      {status.error && <div class="error-box small">{status.error.message}</div>}
      <div ref={box} class="chart-box" />
    </div>
  );
}
