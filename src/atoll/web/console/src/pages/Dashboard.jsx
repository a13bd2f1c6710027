// A project's dashboard, laid out by its sector template (GET /projects/{p}/dashboard):
// charts of named metrics across devices, latest-value tiles and the open alarms, all kept
// current by the project's live socket.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { api, enc, items, toSeconds } from "../api.js";
import { useLive } from "../live.js";
import { Link } from "../router.jsx";
import { currentProject, fmtAgo, fmtNum, useAsync } from "../util.js";
import { Dot, Empty, ErrorBox, Severity } from "../components/common.jsx";
import { DEVICE_COLORS, MultiChart } from "../components/MultiChart.jsx";
import { alarmId, alarmState, alarmTimes } from "./Alarms.jsx";

const PRESETS = [
  ["1h", 3600],
  ["6h", 21600],
  ["24h", 86400],
  ["7d", 604800],
];

const keyOf = (device, metric) => `${device}\u0000${metric}`;

export function Dashboard() {
  const project = currentProject.use();
  const [template, setTemplate] = useState("");
  const [span, setSpan] = useState(3600);
  const [nonce, setNonce] = useState(0);
  // A new object only when the window or a resync asks the charts to query again.
  const range = useMemo(() => ({ start: Date.now() / 1000 - span, end: Date.now() / 1000, live: true, nonce }), [span, nonce]);
  const layout = useAsync(async () => (project ? api.get(`/projects/${enc(project)}/dashboard`, { template }) : null), [project, template]);
  const latest = useRef(new Map()); // device+metric -> {t, v}
  const [, setTick] = useState(0);
  const liveRef = useRef(new Set());
  const alarms = useAsync(async () => (project ? items(await api.get("/alarms", { project, status: "open", limit: 50 })) : []), [project], { defer: true });

  // The layout carries the shown devices' latest values; the live feed keeps them current.
  useEffect(() => {
    for (const [device, metrics] of Object.entries(layout.data?.latest || {}))
      for (const [metric, p] of Object.entries(metrics)) {
        const t = toSeconds(p.ts);
        const prev = latest.current.get(keyOf(device, metric));
        if (!prev || t >= prev.t) latest.current.set(keyOf(device, metric), { t, v: p.value });
      }
    setTick((n) => n + 1);
  }, [layout.data]);
  useEffect(() => {
    latest.current = new Map();
    setTemplate("");
  }, [project]);

  // Tiles re-render at most once per frame however fast readings arrive.
  const frame = useRef(0);
  useLive(
    (m) => m.type === "telemetry" || m.type === "alarm" || m.type === "hello",
    (m) => {
      if (m.type === "hello") {
        if (m.resync) {
          alarms.reload();
          layout.reload();
          setNonce((n) => n + 1);
        }
        return;
      }
      if (m.type === "alarm") return alarms.reload();
      const t = toSeconds(m.ts) ?? Date.now() / 1000;
      for (const [metric, v] of Object.entries(m.values || {})) {
        if (typeof v !== "number") continue;
        const prev = latest.current.get(keyOf(m.device, metric));
        if (!prev || t >= prev.t) latest.current.set(keyOf(m.device, metric), { t, v });
        for (const h of liveRef.current) h.push(m.device, metric, t, v);
      }
      if (!frame.current)
        frame.current = requestAnimationFrame(() => {
          frame.current = 0;
          setTick((n) => n + 1);
        });
    },
    [project],
  );

  const d = layout.data;
  const value = (device, metric) => latest.current.get(keyOf(device, metric));
  return (
    <div class="page dashboard">
      <div class="page-head">
        <h1 data-testid="dashboard-title">{d?.title ?? "Dashboard"}</h1>
        {d?.sector && <span class="tag">{d.sector}</span>}
        <select value={d?.template ?? template} onChange={(e) => setTemplate(e.currentTarget.value)} data-testid="dashboard-template" title="Solution template whose layout is drawn">
          {!d?.template && <option value="">(no matching template)</option>}
          {(d?.templates || []).map((t) => (
            <option key={t.name} value={t.name}>
              {t.title}
              {t.matched_types ? ` (${t.matched_types} device types here)` : ""}
            </option>
          ))}
        </select>
        <span class="grow" />
        <div class="toolbar" data-testid="dashboard-range">
          {PRESETS.map(([label, secs]) => (
            <button key={label} class={`btn small ${span === secs ? "active" : ""}`} onClick={() => setSpan(secs)}>
              {label}
            </button>
          ))}
        </div>
      </div>
      <ErrorBox error={layout.error} />
      {d && !d.template && (
        <Empty>
          This project's device types match no solution template. Pick one above to draw its layout, or start a project from a template with "+ New project" (or <code>atoll solutions apply</code>).
        </Empty>
      )}
      <div class="dash-grid">
        {(d?.panels || []).map((p, i) => {
          const devs = d.devices[p.device_type] || { ids: [], total: 0 };
          return (
            <section key={`${p.title}-${i}`} class="panel dash-panel" style={{ gridColumn: `span ${p.width}` }} data-testid="dash-panel" data-kind={p.kind}>
              <div class="panel-head">
                <strong>{p.title}</strong>
                <span class="muted small">
                  {p.metrics.map((m) => `${m.name}${m.unit ? ` (${m.unit})` : ""}`).join(", ")}
                </span>
                <span class="grow" />
                <span class="muted small">
                  {devs.total > devs.ids.length ? `${devs.ids.length} of ${devs.total}` : devs.ids.length} {p.device_type}
                </span>
              </div>
              {!devs.ids.length ? (
                <Empty>No {p.device_type} devices in this project yet.</Empty>
              ) : p.kind === "line" ? (
                <MultiChart devices={devs.ids} metrics={p.metrics} range={range} liveRef={liveRef} testid={`dash-chart-${i}`} />
              ) : p.kind === "table" ? (
                <ValueTable devices={devs.ids} metrics={p.metrics} value={value} />
              ) : (
                <Tiles kind={p.kind} devices={devs.ids} metrics={p.metrics} value={value} />
              )}
            </section>
          );
        })}
        {d?.template && <AlarmPanel alarms={alarms} />}
      </div>
    </div>
  );
}

function outside(m, v) {
  return (m.max !== null && m.max !== undefined && v > m.max) || (m.min !== null && m.min !== undefined && v < m.min);
}

// stat: the number; gauge and bar: the number on a bar (gauge over the metric's expected
// range, bar against the largest device); status: 0 is normal, anything else is flagged.
function Tiles({ kind, devices, metrics, value }) {
  return (
    <div class="tiles">
      {metrics.map((m) => {
        const vals = devices.map((dev) => value(dev, m.name)?.v).filter((v) => typeof v === "number");
        const top = kind === "bar" ? Math.max(...vals, m.max ?? 0) || 1 : null;
        return devices.map((dev, di) => {
          const cur = value(dev, m.name);
          const v = cur?.v;
          const has = typeof v === "number";
          const bad = has && (kind === "status" ? v !== 0 : outside(m, v));
          let frac = null;
          if (has && kind === "gauge" && m.max !== null && m.max !== undefined) frac = (v - (m.min ?? 0)) / (m.max - (m.min ?? 0));
          if (has && kind === "bar") frac = v / top;
          return (
            <Link key={`${dev}-${m.name}`} href={`/devices/${enc(dev)}`} class={`tile ${bad ? "bad" : ""}`} data-testid="tile" data-device={dev} data-metric={m.name}>
              <span class="tile-dev">
                <span class="swatch" style={{ background: DEVICE_COLORS[di % DEVICE_COLORS.length] }} /> {dev}
                {metrics.length > 1 ? ` · ${m.name}` : ""}
              </span>
              {kind === "status" ? (
                <span class="tile-v" data-testid="tile-value">
                  <Dot state={!has ? "never" : bad ? "disabled" : "online"} /> {!has ? "—" : v === 0 ? "normal" : `${m.name} ${fmtNum(v)}`}
                </span>
              ) : (
                <span class="tile-v" data-testid="tile-value">
                  {has ? fmtNum(v) : "—"}
                  <span class="unit">{has ? m.unit : ""}</span>
                </span>
              )}
              {frac !== null && (
                <span class="meter">
                  <span style={{ width: `${Math.max(0, Math.min(1, frac)) * 100}%` }} />
                </span>
              )}
              <span class="muted small">{cur ? fmtAgo(cur.t) : "no data"}</span>
            </Link>
          );
        });
      })}
    </div>
  );
}

function ValueTable({ devices, metrics, value }) {
  return (
    <table class="mini dash-table">
      <tbody>
        {devices.map((dev) => (
          <tr key={dev} data-device={dev}>
            <td class="mono small">
              <Link href={`/devices/${enc(dev)}`}>{dev}</Link>
            </td>
            {metrics.map((m) => {
              const cur = value(dev, m.name);
              return (
                <td key={m.name} class={`small ${cur && cur.v !== 0 ? "warn-text" : ""}`} data-testid="table-value">
                  {cur ? `${fmtNum(cur.v)} ${m.unit}` : "—"}
                </td>
              );
            })}
            <td class="muted small">{fmtAgo(Math.max(0, ...metrics.map((m) => value(dev, m.name)?.t || 0)) || null)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function AlarmPanel({ alarms }) {
  return (
    <section class="panel dash-panel" style={{ gridColumn: "span 12" }} data-testid="dash-alarms">
      <div class="panel-head">
        <strong>Open alarms</strong>
        <span class="grow" />
        <Link href="/alarms" class="small">
          All alarms →
        </Link>
      </div>
      <ErrorBox error={alarms.error} />
      <table class="mini">
        <tbody>
          {(alarms.data || []).map((a) => (
            <tr key={alarmId(a)} data-device={a.device} data-testid="dash-alarm">
              <td>
                <Severity value={a.severity} />
              </td>
              <td>{a.rule_name ?? a.rule ?? "alarm"}</td>
              <td class="mono small">
                <Link href={`/devices/${enc(a.device)}`}>{a.device}</Link>
              </td>
              <td class={`state st-${alarmState(a)}`}>{alarmState(a)}</td>
              <td class="muted small">raised {fmtAgo(alarmTimes(a).raised)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {alarms.data && !alarms.data.length && <Empty>No open alarms.</Empty>}
    </section>
  );
}
