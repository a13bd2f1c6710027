// Device page: live charts (zoom from a year down to raw points), twin, commands, alarms.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { actingTenant, api, enc, items, setActingTenant, toSeconds } from "../api.js";
import { useLive, watchDevices } from "../live.js";
import { Link } from "../router.jsx";
import { currentProject, fmtAgo, fmtDuration, fmtJson, fmtTime, markPrimaryReady, rulText, useAsync } from "../util.js";
import { ChartPanel, effRange } from "../components/Chart.jsx";
import { Dot, Empty, ErrorBox, Severity } from "../components/common.jsx";
import { lastSeen, onlineState, useProjects } from "./Overview.jsx";
import { can, useMe } from "../me.js";
import { Explanation, alarmId, alarmState, alarmTimes } from "./Alarms.jsx";

const PRESETS = [
  ["5m", 300],
  ["1h", 3600],
  ["6h", 21600],
  ["24h", 86400],
  ["7d", 604800],
  ["30d", 2592000],
  ["1y", 31536000],
];

// Detector output is stored as its own series, "<metric>.anomaly_score": the detection service
// names it with atoll.core.events.score_metric, and SCORE_SUFFIX must equal that module's
// (tests/web/test_console.py shows a score series as its metric's overlay).
export const SCORE_SUFFIX = ".anomaly_score";
// The expected band of flagged readings: atoll.core.events.EXPECTED_SUFFIXES (expected_metric).
export const BAND_SUFFIXES = { lo: ".expected_lo", hi: ".expected_hi" };
// The RUL service's series (atoll.core.events.RUL_METRICS): the estimate is charted with its
// interval as a band; the model's version is only said in the RUL tag.
export const RUL = { metric: "rul", lo: "rul_lo", hi: "rul_hi", version: "rul_model_version" };

export function splitMetrics(names) {
  const base = [];
  const score = new Map();
  const band = new Map();
  const rul = new Set(names.filter((n) => n === RUL.lo || n === RUL.hi));
  for (const n of names) {
    if (n === RUL.lo || n === RUL.hi || n === RUL.version) continue;
    const side = Object.keys(BAND_SUFFIXES).find((k) => n.endsWith(BAND_SUFFIXES[k]) && n.length > BAND_SUFFIXES[k].length);
    if (n.endsWith(SCORE_SUFFIX) && n.length > SCORE_SUFFIX.length) score.set(n.slice(0, -SCORE_SUFFIX.length), n);
    else if (side) {
      const m = n.slice(0, -BAND_SUFFIXES[side].length);
      band.set(m, { ...band.get(m), [side]: n });
    } else base.push(n);
  }
  // The RUL chart comes first: on a device with a model, how long it has left leads the page.
  return base
    .sort((a, b) => (b === RUL.metric) - (a === RUL.metric) || (a < b ? -1 : a > b ? 1 : 0))
    .map((n) => {
      if (n === RUL.metric && rul.size === 2) return { metric: n, anomaly: score.get(n) || null, band: { lo: RUL.lo, hi: RUL.hi, kind: "interval" } };
      const b = band.get(n);
      return { metric: n, anomaly: score.get(n) || null, band: b && b.lo && b.hi ? b : null };
    });
}

function metricName(s) {
  return typeof s === "string" ? s : s.metric ?? s.name ?? s.key?.metric;
}

// {metric: [{value, op, name}]}: the threshold conditions (also inside any/all) of the enabled
// rules whose target is this device, a list holding it, or its device type.
function thresholdsOf(rules, dev) {
  const out = {};
  if (!dev) return out;
  for (const r of rules) {
    const t = r.target || {};
    const mine = t.device === dev.id || (t.devices || []).includes(dev.id) || (t.device_type && t.device_type === dev.device_type);
    if (!mine || r.enabled === false) continue;
    const walk = (c) => {
      if (!c) return;
      if (c.type === "threshold" && c.metric && typeof c.value === "number") (out[c.metric] ||= []).push({ value: c.value, op: c.op || ">", name: r.name });
      for (const k of c.conditions || []) walk(k);
    };
    walk(r.condition);
  }
  return out;
}

export function Device({ id }) {
  // Viewers see the device, not the buttons that change it (the API refuses them anyway).
  const operator = can(useMe(), "operator");
  // ?start=&end= (epoch ms) open a fixed window, so a zoomed view can be shared as a link.
  const [range, setRange] = useState(() => {
    const q = new URLSearchParams(location.search);
    const a = Number(q.get("start"));
    const b = Number(q.get("end"));
    if (a && b && b > a) return { start: a / 1000, end: b / 1000, live: false, nonce: 0 };
    return { start: Date.now() / 1000 - 3600, end: Date.now() / 1000, live: true, nonce: 0 };
  });
  useEffect(() => {
    const url = range.live ? location.pathname : `${location.pathname}?start=${Math.floor(range.start * 1000)}&end=${Math.ceil(range.end * 1000)}`;
    history.replaceState(null, "", url);
  }, [range.start, range.end, range.live]);
  const [tab, setTab] = useState("twin");
  const project = currentProject.use();
  const liveRef = useRef(new Set());
  const [seen, setSeen] = useState(null);
  // When the RUL service last judged this device: the RUL tag re-reads its estimate then.
  const [judged, setJudged] = useState(0);

  const dev = useAsync(() => api.get(`/devices/${enc(id)}`), [id]);
  // A deep link may point into another project: follow it, so the live feed is the right one.
  useEffect(() => {
    const p = dev.data?.project;
    if (p && p !== currentProject.get()) currentProject.set(p);
  }, [dev.data]);
  // The series' names, and the units their device type declares (drawn on the charts' axes).
  const units = useRef({});
  const series = useAsync(async () => {
    const got = items(await api.get(`/devices/${enc(id)}/series`));
    units.current = Object.fromEntries(got.filter((x) => x && x.unit).map((x) => [x.metric, x.unit]));
    return got.map(metricName).filter(Boolean);
  }, [id]);
  const alarms = useAsync(async () => items(await api.get("/alarms", { device: id, limit: 200 })), [id], { defer: true });
  // The project's threshold rules that watch this device, drawn on its charts (after the page).
  const rules = useAsync(async () => (dev.data ? items(await api.get(`/projects/${enc(dev.data.project)}/rules`)) : []), [dev.data?.project], { defer: true });
  const thresholds = useMemo(() => thresholdsOf(rules.data || [], dev.data), [rules.data, dev.data]);
  const metrics = useMemo(() => splitMetrics(series.data || []), [series.data]);
  const askedScores = useRef(new Set());
  useEffect(() => {
    if (series.error || (series.data && !metrics.length)) markPrimaryReady();
  }, [series.data, series.error]);

  useEffect(() => {
    watchDevices([id]);
    return () => watchDevices([]);
  }, [id]);

  useLive(
    (m) => m.device === id || m.type === "hello",
    (m) => {
      if (m.type === "hello") {
        // Back after a disconnect: re-read what the socket may have missed.
        if (m.resync) {
          alarms.reload();
          series.reload();
          setRange((r) => ({ ...r, nonce: r.nonce + 1 }));
        }
      } else if (m.type === "telemetry") {
        const t = toSeconds(m.ts) ?? Date.now() / 1000;
        setSeen(t);
        const known = new Set(series.data || []);
        let fresh = false;
        // Watched devices get every point; otherwise only the newest value per metric.
        const points = m.points || Object.fromEntries(Object.entries(m.values || {}).map(([k, v]) => [k, [[m.ts, v]]]));
        for (const [k, pts] of Object.entries(points)) {
          if (!known.has(k)) fresh = true;
          for (const h of liveRef.current) if (h.metric === k) for (const [pt, v] of pts) if (typeof v === "number") h.push(toSeconds(pt), v);
        }
        // An RUL estimate: its interval joins the rul chart's band, and the tag counts down.
        if (points[RUL.metric]) {
          const lo = points[RUL.lo] || [];
          const hi = points[RUL.hi] || [];
          for (let i = 0; i < Math.min(lo.length, hi.length); i++) for (const h of liveRef.current) if (h.metric === RUL.metric) h.pushBand(toSeconds(lo[i][0]), lo[i][1], hi[i][1]);
          setJudged(t);
        }
        if (fresh) series.reload();
      } else if (m.type === "anomaly") {
        // The first scores of a metric create its score series: re-list once to overlay it.
        if (!metrics.some((x) => x.metric === m.metric && x.anomaly) && !askedScores.current.has(m.metric)) {
          askedScores.current.add(m.metric);
          series.reload();
        }
        for (const h of liveRef.current) if (h.metric === m.metric) h.pushScore(toSeconds(m.ts), m.score);
        // A flagged reading brings the band its model expected (per metric of a judged group);
        // the band's series appear with the first one, so re-list once to draw them.
        if (m.expected) {
          for (const [k, e] of Object.entries(m.expected)) {
            if (!e || typeof e.lo !== "number" || typeof e.hi !== "number") continue;
            if (!metrics.some((x) => x.metric === k && x.band) && !askedScores.current.has(`${k}#band`)) {
              askedScores.current.add(`${k}#band`);
              series.reload();
            }
            for (const h of liveRef.current) if (h.metric === k) h.pushBand(toSeconds(m.ts), e.lo, e.hi);
          }
        }
      } else if (m.type === "alarm") {
        alarms.reload();
      }
    },
    [id, series.data, metrics],
  );

  const overlay = useMemo(
    () =>
      (alarms.data || []).map((a) => {
        const t = alarmTimes(a);
        return { start: t.raised, end: t.cleared, state: alarmState(a), metric: a.metric };
      }),
    [alarms.data],
  );

  const d = dev.data || {};
  const t = Math.max(seen || 0, lastSeen(d) || 0) || null;
  const [rs, re] = effRange(range);
  const tree = useProjects({ defer: true });
  const owner = tenantOfDevice(id);
  const elsewhere = !!tree.data?.platform && owner !== (actingTenant() || "default") && tree.data.tenants.some((t) => t.id === owner);
  useEffect(() => {
    if (!(dev.error?.status === 404 && elsewhere)) return;
    // After this render's other effects: the top bar's own check of the selected project runs
    // in the same pass and would put the tenant back.
    const t = setTimeout(() => setActingTenant(owner), 0);
    return () => clearTimeout(t);
  }, [dev.error, elsewhere]);
  const span = re - rs;

  const pick = (secs) => setRange({ start: Date.now() / 1000 - secs, end: Date.now() / 1000, live: true, nonce: range.nonce + 1 });
  const pan = (f) => setRange({ start: rs + span * f, end: re + span * f, live: false, nonce: range.nonce });
  const zoomOut = () => setRange({ start: rs - span, end: re + span, live: false, nonce: range.nonce });

  // A device that does not exist (or not in this tenant): say so, and nothing else: no charts
  // of nothing, no buttons that would only fail. The platform operator following a link to
  // another tenant's device acts in that tenant first (the page is drawn anew for it).
  if (dev.error?.status === 404 && elsewhere) return <div class="page muted">Loading…</div>;
  if (dev.error?.status === 404) {
    return (
      <div class="page device">
        <div class="page-head">
          <Link href="/" class="muted">
            ← Fleet
          </Link>
        </div>
        <div class="panel pad not-found" data-testid="device-not-found">
          <h1>Device not found</h1>
          <p>
            There is no device <span class="mono">{id}</span> in the projects you can see{project ? <> (now in <span class="mono">{project}</span>)</> : null}. It may have been deleted, or the link may be mistyped.
          </p>
          <Link href="/" class="btn">
            Back to the fleet
          </Link>
        </div>
      </div>
    );
  }

  return (
    <div class="page device">
      <div class="page-head">
        <Link href="/" class="muted">
          ← Fleet
        </Link>
        <h1 data-testid="device-title">
          <Dot state={onlineState(d, t)} /> {id}
        </h1>
        {d.name && <span class="muted">{d.name}</span>}
        {(d.type || d.device_type) && <span class="tag">{d.type || d.device_type}</span>}
        {d.kind === "gateway" && (
          <span class="tag" data-testid="device-kind">
            gateway
          </span>
        )}
        {d.parent && (
          <span class="muted small" data-testid="device-via">
            via gateway <Link href={`/devices/${enc(d.parent)}`}>{d.parent}</Link>
          </span>
        )}
        <span class="muted small">last seen {fmtAgo(t)}</span>
        {(d.type || d.device_type) && <RulBadge project={d.project} id={id} judged={judged} />}
        <span class="grow" />
      </div>
      <ErrorBox error={dev.error} />
      <Refusals id={id} />
      {d.kind === "gateway" && d.project && <Children id={id} project={d.project} />}
      <div class="device-grid">
        <section class="charts">
          <div class="toolbar range-bar" data-testid="range-bar">
            {PRESETS.map(([label, secs]) => (
              <button key={label} class={`btn small ${range.live && Math.abs(range.end - range.start - secs) < 1 ? "active" : ""}`} onClick={() => pick(secs)}>
                {label}
              </button>
            ))}
            <span class="sep" />
            <button class="btn small" title="Pan left" onClick={() => pan(-0.5)}>
              ◀
            </button>
            <button class="btn small" title="Zoom out" onClick={zoomOut}>
              −
            </button>
            <button class="btn small" title="Pan right" onClick={() => pan(0.5)}>
              ▶
            </button>
            <button class={`btn small ${range.live ? "live-on" : ""}`} onClick={() => pick(range.live ? span : 3600)} data-testid="live-toggle">
              {range.live ? "● Live" : "Go live"}
            </button>
            <span class="grow" />
            <span class="muted small" data-testid="range-label">
              {fmtTime(rs)} → {range.live ? "now" : fmtTime(re)} ({fmtDuration(span)})
            </span>
          </div>
          <p class="muted small hint-line">Drag to zoom in · wheel to zoom · shift+wheel to pan · double-click to zoom out</p>
          <ErrorBox error={series.error} />
          {series.data && !metrics.length && (d.kind === "gateway" ? <Empty>No telemetry of its own: what it sends for its child devices is on their pages.</Empty> : <Empty>No telemetry yet. Send a reading and it appears here without a reload.</Empty>)}
          {metrics.map((m) => (
            <ChartPanel
              key={m.metric}
              device={id}
              metric={m.metric}
              unit={units.current[m.metric]}
              thresholds={thresholds[m.metric]}
              anomalyMetric={m.anomaly}
              bandMetrics={m.band}
              range={range}
              onRange={(r) => setRange({ ...r, nonce: range.nonce })}
              alarms={overlay.filter((a) => !a.metric || a.metric === m.metric)}
              liveRef={liveRef}
              syncKey={`dev-${id}`}
            />
          ))}
        </section>
        <aside class="side">
          <div class="tabs">
            {["twin", "detection", "commands", "alarms", ...(operator ? ["credentials"] : [])].map((k) => (
              <button key={k} class={tab === k ? "active" : ""} onClick={() => setTab(k)} data-testid={`tab-${k}`}>
                {k}
              </button>
            ))}
          </div>
          {tab === "twin" && <Twin id={id} operator={operator} />}
          {tab === "detection" && <Detection id={id} project={d.project} view={{ start: rs, end: re, live: range.live }} onChange={() => setRange((r) => ({ ...r, nonce: r.nonce + 1 }))} />}
          {tab === "commands" && <Commands id={id} operator={operator} />}
          {tab === "alarms" && <DeviceAlarms alarms={alarms} onShow={(start, end) => setRange((r) => ({ start, end, live: false, nonce: r.nonce }))} />}
          {tab === "credentials" && operator && <Credentials id={id} device={d} />}
        </aside>
      </div>
    </div>
  );
}

// The device's remaining useful life, when its type's active RUL model has judged it
// (GET /projects/{p}/maintenance/due?device=); the interval and the model in the tooltip.
function RulBadge({ project, id, judged }) {
  const due = useAsync(async () => (project ? await api.get(`/projects/${enc(project)}/maintenance/due`, { device: id }) : []), [project, id, judged], { defer: true });
  const r = due.data?.[0];
  if (!r) return null;
  const h = rulText;
  const cls = r.rul_lo_hours < 24 ? "bad" : r.rul_lo_hours < 24 * 7 ? "warn" : "ok";
  const model = r.model ? `${r.model.id ?? "?"} v${r.model.version}` : "unknown model";
  return (
    <span class={`tag ${cls}`} data-testid="device-rul" title={`90 % interval ${h(r.rul_lo_hours)} – ${h(r.rul_hi_hours)}; judged at ${fmtTime(toSeconds(r.at))} by ${model}`}>
      RUL {h(r.rul_hours)}
    </span>
  );
}

// The detection tab is off the page's critical path: its code loads when first opened.
let detectionModule = null;
function Detection(props) {
  const [mod, setMod] = useState(detectionModule);
  useEffect(() => {
    if (!detectionModule) import("./Detection.jsx").then((m) => setMod((detectionModule = m)));
  }, []);
  return mod ? <mod.Detection {...props} /> : <div class="panel pad muted">Loading…</div>;
}

function Twin({ id, operator }) {
  const twin = useAsync(() => api.get(`/devices/${enc(id)}/twin`), [id], { defer: true });
  const [text, setText] = useState("{\n  \n}");
  const [error, setError] = useState(null);
  const [ok, setOk] = useState(false);
  useLive((m) => (m.device === id && m.type === "twin") || (m.type === "hello" && m.resync), () => twin.reload(), [id]);

  async function save(e) {
    e.preventDefault();
    setError(null);
    setOk(false);
    let body;
    try {
      body = JSON.parse(text);
    } catch (err) {
      setError({ message: `Desired state is not valid JSON: ${err.message}` });
      return;
    }
    try {
      await api.patch(`/devices/${enc(id)}/twin/desired`, body);
      setOk(true);
      twin.reload();
    } catch (err) {
      setError(err);
    }
  }
  const t = twin.data || {};
  return (
    <div class="panel pad" data-testid="twin">
      <ErrorBox error={twin.error} />
      <h3>Reported</h3>
      <pre class="json" data-testid="twin-reported">{fmtJson(t.reported ?? {})}</pre>
      <h3>Desired</h3>
      <pre class="json" data-testid="twin-desired">{fmtJson(t.desired ?? {})}</pre>
      {t.version !== undefined && <p class="muted small">version {t.version}</p>}
      {operator && (
      <form onSubmit={save}>
        <label>
          Patch desired (JSON merge patch)
          <textarea rows={4} class="mono" value={text} onInput={(e) => setText(e.currentTarget.value)} data-testid="twin-patch" />
        </label>
        <ErrorBox error={error} />
        {ok && <p class="ok small">Desired state updated; the device receives it on its retained topic.</p>}
        <button class="btn" type="submit">
          Update desired
        </button>
      </form>
      )}
    </div>
  );
}

// Messages and connections the platform refused for this device (wrong client id, wrong
// secret, bad payload…): otherwise visible only in the server's log. Off the critical path.
function Refusals({ id }) {
  const got = useAsync(async () => items(await api.get(`/devices/${enc(id)}/rejections`)), [id], { defer: true });
  const rows = got.data || [];
  if (!rows.length) return null;
  return (
    <div class="panel pad refusals" data-testid="device-rejections">
      <h3>Refused by the platform</h3>
      <table class="mini">
        <tbody>
          {rows.map((r) => (
            <tr key={`${r.transport}/${r.reason}`} data-reason={r.reason}>
              <td class="mono small">{r.transport}</td>
              <td class="mono small warn">{r.reason}</td>
              <td class="small">{r.count.toLocaleString()}×</td>
              <td class="small muted" title={fmtTime(toSeconds(r.last_at))}>
                last {fmtAgo(toSeconds(r.last_at))}
              </td>
              <td class="small">{r.last_message}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

// A gateway's child devices (GET /projects/{p}/devices?parent=): asked only for gateways, so a
// plain device's page makes no extra request.
function Children({ id, project }) {
  const got = useAsync(async () => ({ rows: items(await api.get(`/projects/${enc(project)}/devices`, { parent: id, limit: 200 })) }), [id, project], { defer: true });
  const rows = got.data?.rows;
  if (!rows) return <ErrorBox error={got.error} />;
  return (
    <div class="panel pad children" data-testid="gateway-children">
      <h3>
        Child devices <span class="muted small">({rows.length.toLocaleString()}{rows.length === 200 ? "+" : ""}, speaking through this gateway)</span>
      </h3>
      {!rows.length && <p class="muted small">None yet: the gateway declares them on gateway/connect, or register a device with this gateway as its parent.</p>}
      <table class="mini">
        <tbody>
          {rows.map((c) => (
            <tr key={c.id} data-testid="gateway-child" data-device={c.id}>
              <td class="mono small">
                <Link href={`/devices/${enc(c.id)}`}>{c.id}</Link>
              </td>
              <td class="small">{c.device_type ? <span class="tag">{c.device_type}</span> : null}</td>
              <td class="small muted">last seen {fmtAgo(toSeconds(c.last_seen))}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

const WAITING = new Set(["pending", "delivered"]);

function Commands({ id, operator }) {
  const list = useAsync(async () => items(await api.get(`/devices/${enc(id)}/commands`, { limit: 20 })), [id]);
  const [name, setName] = useState("reboot");
  const [args, setArgs] = useState("{}");
  const [ttl, setTtl] = useState("300");
  const [error, setError] = useState(null);
  const [, tick] = useState(0);
  useLive((m) => (m.device === id && (m.type === "command_ack" || m.type === "command")) || (m.type === "hello" && m.resync), () => list.reload(), [id]);
  // A command nobody acknowledged expires at its expires_at: re-read then, so it does not look
  // pending forever; in between, the countdown moves every second.
  useEffect(() => {
    const waiting = (list.data || []).filter((c) => WAITING.has(c.status) && c.expires_at);
    if (!waiting.length) return;
    const next = Math.min(...waiting.map((c) => toSeconds(c.expires_at)));
    const reread = setTimeout(() => list.reload(), Math.max(0, next * 1000 - Date.now()) + 500);
    const every = setInterval(() => tick((n) => n + 1), 1000);
    return () => {
      clearTimeout(reread);
      clearInterval(every);
    };
  }, [list.data]);

  async function send(e) {
    e.preventDefault();
    setError(null);
    let a;
    try {
      a = JSON.parse(args || "{}");
    } catch (err) {
      setError({ message: `Arguments are not valid JSON: ${err.message}` });
      return;
    }
    try {
      await api.post(`/devices/${enc(id)}/commands`, { name, args: a, ttl_s: Number(ttl) || 300 });
      list.reload();
    } catch (err) {
      setError(err);
    }
  }
  return (
    <div class="panel pad" data-testid="commands">
      {operator && (
      <form onSubmit={send} class="cmd-form">
        <label>
          Command
          <input value={name} onInput={(e) => setName(e.currentTarget.value)} required data-testid="cmd-name" />
        </label>
        <label>
          Arguments (JSON)
          <textarea rows={3} class="mono" value={args} onInput={(e) => setArgs(e.currentTarget.value)} data-testid="cmd-args" />
        </label>
        <label>
          Expires unless acknowledged within (s)
          <input type="number" min="1" max="604800" value={ttl} onInput={(e) => setTtl(e.currentTarget.value)} data-testid="cmd-ttl" />
        </label>
        <ErrorBox error={error} />
        <button class="btn primary" type="submit" data-testid="cmd-send">
          Send command
        </button>
      </form>
      )}
      <h3>Recent</h3>
      <ErrorBox error={list.error} />
      <table class="mini">
        <tbody>
          {(list.data || []).map((c) => (
            <tr key={c.id ?? c.command_id}>
              <td class="mono small">{c.name}</td>
              <td class="small" data-testid="cmd-status">
                <span class={`cmd-st cs-${c.status}`}>{c.status === "expired" ? "expired (no ack in time)" : c.status ?? c.state ?? ""}</span>
                {WAITING.has(c.status) && c.expires_at && <span class="muted"> · expires {expiresIn(toSeconds(c.expires_at))}</span>}
              </td>
              <td class="muted small">{fmtAgo(toSeconds(c.created_at ?? c.ts ?? c.sent_at))}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {list.data && !list.data.length && <Empty>No commands sent yet.</Empty>}
    </div>
  );
}

// The device's alarms; one raised by an anomaly rule unfolds its explanation ("why").
function DeviceAlarms({ alarms, onShow }) {
  const [open, setOpen] = useState(null);
  return (
    <div class="panel pad" data-testid="device-alarms">
      <ErrorBox error={alarms.error} />
      {(alarms.data || []).map((a) => {
        const t = alarmTimes(a);
        const why = a.context?.anomaly;
        return (
          <div class="alarm-mini" key={alarmId(a)} data-alarm={alarmId(a)}>
            <Severity value={a.severity} /> <strong>{a.rule_name ?? a.rule ?? a.type ?? "alarm"}</strong> <span class={`state st-${alarmState(a)}`}>{alarmState(a)}</span>
            <div class="muted small">
              raised {fmtTime(t.raised)}
              {why && typeof why === "object" && (
                <>
                  {" · "}
                  <a href="#" onClick={(e) => (e.preventDefault(), setOpen(open === alarmId(a) ? null : alarmId(a)))} data-testid="alarm-why">
                    {open === alarmId(a) ? "hide why" : "why?"}
                  </a>
                </>
              )}
            </div>
            {why && open === alarmId(a) && <Explanation why={why} onShow={onShow} />}
          </div>
        );
      })}
      {alarms.data && !alarms.data.length && <Empty>No alarms for this device.</Empty>}
      <Link href="/alarms">All alarms →</Link>
    </div>
  );
}

function Credentials({ id }) {
  const [secret, setSecret] = useState(null);
  const [error, setError] = useState(null);
  async function rotate() {
    if (!confirm(`Rotate the secret of ${id}? The old one stops working at once.`)) return;
    try {
      const r = await api.post(`/devices/${enc(id)}/credentials/rotate`);
      setSecret(r.secret ?? r.credentials?.secret);
    } catch (e) {
      setError(e);
    }
  }
  async function revoke() {
    if (!confirm(`Revoke ${id}'s credentials? The device is disconnected.`)) return;
    try {
      await api.del(`/devices/${enc(id)}/credentials`);
      setSecret(null);
      setError({ message: "Credentials revoked." });
    } catch (e) {
      setError(e);
    }
  }
  return (
    <div class="panel pad">
      <p class="muted small">Secrets are stored hashed; a new one is shown once.</p>
      <div class="btn-row">
        <button class="btn" onClick={rotate}>
          Rotate secret
        </button>
        <button class="btn danger" onClick={revoke}>
          Revoke
        </button>
      </div>
      {secret && (
        <pre class="json" data-testid="rotated-secret">
          {secret}
        </pre>
      )}
      <ErrorBox error={error} />
    </div>
  );
}

function expiresIn(at) {
  const s = Math.round(at - Date.now() / 1000);
  return s <= 0 ? "now" : `in ${fmtDuration(s)}`;
}

// Device ids are "tenant~local" outside the default tenant.
export function tenantOfDevice(id) {
  const i = id.indexOf("~");
  return i > 0 ? id.slice(0, i) : "default";
}
