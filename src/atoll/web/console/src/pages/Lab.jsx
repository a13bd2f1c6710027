// The lab: every enterprise the caller may see (/lab), one enterprise's projects
// (/lab/enterprises/{t}) and one alarm console across them (/lab/alarms). Each view is one
// aggregate request (GET /lab/overview, /lab/enterprises/{t}, /lab/alarms), whatever the number
// of projects; search, sort and filters run over the answer in the browser.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { ApiError, api, download, enc, items, request, setActingTenant, toSeconds } from "../api.js";
import { useLive } from "../live.js";
import { Link, navigate, useLocation } from "../router.jsx";
import { currentProject, fmtAgo, fmtTime, markPrimaryReady, useAsync, useDebounced } from "../util.js";
import { Empty, ErrorBox, Fold, Severity } from "../components/common.jsx";
import { can, useMe } from "../me.js";
import { useProjects } from "./Overview.jsx";
import { Assignee, Feedback } from "../components/AlarmTriage.jsx";
import { PortfolioPanel } from "../components/Portfolio.jsx";
import { TrendsPanel } from "../components/Trends.jsx";
import { UsagePanel } from "../components/Usage.jsx";
import { Invites, NewEnterprise, Quotas } from "./Onboarding.jsx";

const SEVERITIES = ["critical", "major", "minor", "warning", "info"];
// Lab calls name their scope themselves: never the tenant the project picker acts in.
const NO_TENANT = { tenant: "" };

export function fmtRate(v) {
  if (v === null || v === undefined) return "—";
  if (v === 0) return "0/s";
  if (v < 0.01) return "<0.01/s";
  if (v < 1) return `${v.toFixed(2)}/s`;
  if (v < 10) return `${v.toFixed(1)}/s`;
  return `${Math.round(v).toLocaleString()}/s`;
}

export function fmtBytes(b) {
  if (b === null || b === undefined) return "—";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (b >= 1000 && i < units.length - 1) {
    b /= 1000;
    i++;
  }
  return `${i ? b.toFixed(b < 10 ? 1 : 0) : b} ${units[i]}`;
}

export function fmtCount(n) {
  if (n === null || n === undefined) return "—";
  if (n < 10_000) return n.toLocaleString();
  if (n < 1e6) return `${(n / 1e3).toFixed(n < 1e5 ? 1 : 0)}k`;
  if (n < 1e9) return `${(n / 1e6).toFixed(1)}M`;
  return `${(n / 1e9).toFixed(1)}G`;
}

// Open a project's fleet: the platform admin acts in the project's tenant first.
export function openProject(scope, tenant, project) {
  if (scope === "platform") setActingTenant(tenant);
  currentProject.set(project);
  navigate("/");
}

function AlarmChips({ alarms, testid }) {
  if (!alarms) return <span class="muted">—</span>;
  const shown = SEVERITIES.filter((s) => alarms[s]);
  if (!shown.length) return <span class="muted small" data-testid={testid}>none</span>;
  return (
    <span class="chips" data-testid={testid}>
      {shown.map((s) => (
        <span key={s} class={`sev sev-${s}`} title={`${alarms[s]} open ${s}`}>
          {alarms[s]} {s}
        </span>
      ))}
    </span>
  );
}

function Online({ online, devices }) {
  const pct = devices ? Math.round((100 * online) / devices) : 0;
  return (
    <span class="online-cell" title={`${online} of ${devices} devices sent something in the last 5 min`}>
      <span class="bar">
        <span style={{ width: `${pct}%` }} />
      </span>
      <span class="mono small">
        {online.toLocaleString()}/{devices.toLocaleString()}
      </span>
    </span>
  );
}

function Stat({ label, value, cls = "", testid, title }) {
  return (
    <div class={`stat ${cls}`} data-testid={testid} title={title}>
      <div class="stat-v">{value}</div>
      <div class="stat-l">{label}</div>
    </div>
  );
}

function Totals({ t, what }) {
  return (
    <div class="stats">
      {what}
      <Stat label="Devices online" value={`${t.online.toLocaleString()} / ${t.devices.toLocaleString()}`} cls="ok" testid="lab-online" />
      <Stat label="Open alarms" value={t.open_alarms ?? "—"} cls={t.open_alarms ? "bad" : ""} testid="lab-open-alarms" />
      <Stat label="Ingest" value={fmtRate(t.ingest_rate)} testid="lab-rate" title="points per second over the last 5 min" />
      <Stat label="Stored" value={`${fmtCount(t.points)} pts`} testid="lab-points" title={`≈ ${fmtBytes(t.bytes)} at 16 B a point`} />
      <Stat label="Last activity" value={t.last_activity ? fmtAgo(toSeconds(t.last_activity)) : "never"} testid="lab-last" />
      {t.quality && (
        <Stat
          label={`Precision · ${t.quality.judged.toLocaleString()} judged`}
          value={fmtPrecision(t.quality)}
          cls={precisionClass(t.quality)}
          testid="lab-precision"
          title={qualityTitle(t.quality)}
        />
      )}
    </div>
  );
}

// Detection quality from operators' verdicts: precision = real / (real + false alarms).
export function fmtPrecision(q) {
  if (!q || q.precision === null || q.precision === undefined) return "—";
  return `${Math.round(q.precision * 100)}%`;
}

function precisionClass(q) {
  if (!q || q.precision === null || q.precision === undefined) return "";
  return q.precision >= 0.8 ? "ok" : q.precision >= 0.5 ? "warn" : "bad";
}

function qualityTitle(q) {
  return `${q.real} real fault${q.real === 1 ? "" : "s"}, ${q.false} false alarm${q.false === 1 ? "" : "s"}, ${q.unsure} unsure (alarms of the last 12 weeks that operators judged)`;
}

function Quality({ q }) {
  if (!q) return <span class="muted">—</span>;
  if (!q.judged) return <span class="muted small" data-testid="lab-quality">none judged</span>;
  return (
    <span class="quality" data-testid="lab-quality" title={qualityTitle(q)}>
      <strong class={`mono ${precisionClass(q)}`}>{fmtPrecision(q)}</strong> <span class="muted small">of {q.judged.toLocaleString()} judged</span>
    </span>
  );
}

// Precision week by week (oldest first): one bar per week, its height the precision, empty
// weeks as a dot.
function Weeks({ weeks, testid }) {
  if (!weeks?.length) return null;
  return (
    <span class="weeks" data-testid={testid}>
      {weeks.map((w) => (
        <span
          key={w.week}
          class={`wk ${precisionClass(w)}`}
          title={`week of ${w.week.slice(0, 10)}: ${w.judged ? `${fmtPrecision(w)} of ${w.judged} judged` : "none judged"}`}
          style={{ height: w.precision === null ? "2px" : `${Math.max(2, Math.round(w.precision * 22))}px` }}
        />
      ))}
    </span>
  );
}

const SORTS = {
  name: (a, b) => (a.name || a.id).localeCompare(b.name || b.id),
  alarms: (a, b) => sevRank(b) - sevRank(a) || (b.open_alarms || 0) - (a.open_alarms || 0),
  devices: (a, b) => b.devices - a.devices,
  offline: (a, b) => b.devices - b.online - (a.devices - a.online),
  rate: (a, b) => (b.ingest_rate || 0) - (a.ingest_rate || 0),
  stored: (a, b) => (b.points || 0) - (a.points || 0),
  activity: (a, b) => (toSeconds(b.last_activity) || 0) - (toSeconds(a.last_activity) || 0),
  projects: (a, b) => b.projects - a.projects,
  // Worst precision first (what needs tuning), the unjudged last.
  quality: (a, b) => (a.quality?.precision ?? 2) - (b.quality?.precision ?? 2) || (b.quality?.judged || 0) - (a.quality?.judged || 0),
};

// Worst open severity first, as an operator reads an alarm board.
function sevRank(r) {
  const a = r.alarms || {};
  return SEVERITIES.reduce((acc, s, i) => acc + (a[s] || 0) * 10 ** (2 * (SEVERITIES.length - i)), 0);
}

const FILTERS = {
  "": () => true,
  alarms: (r) => (r.open_alarms || 0) > 0,
  critical: (r) => (r.alarms?.critical || 0) > 0,
  offline: (r) => r.online < r.devices,
  quiet: (r) => !r.last_activity || Date.now() / 1000 - toSeconds(r.last_activity) > 86400,
  empty: (r) => r.devices === 0,
};

function useTable(rows, defaultSort) {
  const { query } = useLocation();
  const [q, setQ] = useState(query.get("q") || "");
  const [sort, setSort] = useState(query.get("sort") || defaultSort);
  const [filter, setFilter] = useState(query.get("filter") || "");
  const dq = useDebounced(q, 120);
  const shown = useMemo(() => {
    const needle = dq.trim().toLowerCase();
    return (rows || [])
      .filter((r) => !needle || r.id.toLowerCase().includes(needle) || (r.name || "").toLowerCase().includes(needle))
      .filter(FILTERS[filter] || FILTERS[""])
      .sort(SORTS[sort] || SORTS.name);
  }, [rows, dq, sort, filter]);
  // The view is in the URL, so it survives a reload and can be shared.
  useEffect(() => {
    const p = new URLSearchParams();
    if (dq) p.set("q", dq);
    if (sort !== defaultSort) p.set("sort", sort);
    if (filter) p.set("filter", filter);
    const s = p.toString();
    navigate(location.pathname + (s ? `?${s}` : ""), { replace: true });
  }, [dq, sort, filter]);
  const toolbar = (what) => (
    <div class="toolbar">
      <input class="search" placeholder={`Search ${what} by name or id…`} value={q} onInput={(e) => setQ(e.currentTarget.value)} data-testid="lab-search" />
      <select value={filter} onChange={(e) => setFilter(e.currentTarget.value)} data-testid="lab-filter">
        <option value="">All {what}</option>
        <option value="alarms">With open alarms</option>
        <option value="critical">With critical alarms</option>
        <option value="offline">With offline devices</option>
        <option value="quiet">No activity for 24 h</option>
        <option value="empty">Without devices</option>
      </select>
      <label class="inline">
        Sort
        <select value={sort} onChange={(e) => setSort(e.currentTarget.value)} data-testid="lab-sort">
          <option value="alarms">Worst alarms first</option>
          <option value="name">Name</option>
          <option value="devices">Most devices</option>
          <option value="offline">Most offline</option>
          <option value="rate">Highest ingest</option>
          <option value="stored">Most stored</option>
          <option value="activity">Latest activity</option>
          <option value="quality">Lowest detection precision</option>
          {what === "enterprises" && <option value="projects">Most projects</option>}
        </select>
      </label>
      <span class="muted small" data-testid="lab-count">
        {shown.length} of {(rows || []).length} {what}
      </span>
    </div>
  );
  const header = (key, label, cls) => (
    <th class={`sortable ${cls || ""} ${sort === key ? "sorted" : ""}`} onClick={() => setSort(key)}>
      {label}
    </th>
  );
  return { shown, toolbar, header };
}

export function LabHome() {
  // The page's main request: side panels (project picker, alarm badge) wait for it.
  const data = useAsync(() => api.get("/lab/overview", undefined, NO_TENANT).finally(markPrimaryReady), []);
  useEffect(() => {
    const t = setInterval(() => document.visibilityState === "visible" && data.reload(), 30_000);
    return () => clearInterval(t);
  }, []);
  const d = data.data;
  const { shown, toolbar, header } = useTable(d?.enterprises, "alarms");
  // An enterprise admin's lab is its own enterprise: go straight to it.
  useEffect(() => {
    if (d && d.scope === "tenant" && d.enterprises.length === 1) navigate(`/lab/enterprises/${enc(d.enterprises[0].id)}`, { replace: true });
  }, [d]);
  return (
    <div class="page lab">
      <div class="page-head">
        <h1>Lab</h1>
        <span class="muted">every enterprise at a glance</span>
        <span class="grow" />
        <Link href="/lab/alarms" class="btn" data-testid="lab-alarms-link">
          Alarm console
        </Link>
      </div>
      {d?.scope === "platform" && <NewEnterprise onCreated={data.reload} />}
      <ErrorBox error={data.error} />
      {d && <Totals t={d.totals} what={<Stat label="Enterprises" value={d.totals.enterprises} testid="lab-enterprises" />} />}
      {d?.quality_weeks && d.totals.quality?.judged > 0 && (
        <div class="muted small quality-trend">
          Detection precision per week, last 12 weeks: <Weeks weeks={d.quality_weeks} testid="lab-quality-weeks" />
        </div>
      )}
      {d && toolbar("enterprises")}
      {d && (
        <div class="panel table-scroll">
          <table class="grid lab-table" data-testid="lab-table">
            <thead>
              <tr>
                {header("name", "Enterprise")}
                {header("projects", "Projects", "num")}
                {header("offline", "Devices online")}
                {header("alarms", "Open alarms")}
                {header("rate", "Ingest", "num")}
                {header("stored", "Stored", "num")}
                {header("activity", "Last activity")}
                {header("quality", "Detection quality")}
              </tr>
            </thead>
            <tbody>
              {shown.map((e) => (
                <tr key={e.id} data-enterprise={e.id} class="clickable" onClick={() => navigate(`/lab/enterprises/${enc(e.id)}`)}>
                  <td>
                    <Link href={`/lab/enterprises/${enc(e.id)}`}>{e.name}</Link> <span class="muted small mono">{e.id}</span>
                  </td>
                  <td class="num">{e.projects}</td>
                  <HealthCells x={e} />
                </tr>
              ))}
            </tbody>
          </table>
          {!shown.length && <Empty>No enterprise matches.</Empty>}
        </div>
      )}
      {d && d.scope === "platform" && (
        <>
          <Fold id="lab-trends" title="Trends" hint="messages and alarms per hour or day">
            <TrendsPanel />
          </Fold>
          <Fold id="lab-portfolio" title="Portfolio" hint="projects per stage, the quarter's outcomes, the quarterly report">
            <PortfolioPanel />
          </Fold>
          <Fold id="lab-usage" title="Usage" hint="metered use per day, as CSV">
            <UsagePanel />
          </Fold>
        </>
      )}
      {data.loading && !d && <div class="muted">Loading…</div>}
    </div>
  );
}

// The figures an enterprise row and a project row share: devices online, open alarms, ingest,
// points stored, last activity.
function HealthCells({ x }) {
  return (
    <>
      <td>
        <Online online={x.online} devices={x.devices} />
      </td>
      <td>
        <AlarmChips alarms={x.alarms} testid="lab-alarm-chips" />
      </td>
      <td class="num mono">{fmtRate(x.ingest_rate)}</td>
      <td class="num mono" title={`≈ ${fmtBytes(x.bytes)}`}>
        {fmtCount(x.points)}
      </td>
      <td class="small">{x.last_activity ? fmtAgo(toSeconds(x.last_activity)) : <span class="muted">never</span>}</td>
      <td>
        <Quality q={x.quality} />
      </td>
    </>
  );
}

export function LabEnterprise({ tenant }) {
  const data = useAsync(() => api.get(`/lab/enterprises/${enc(tenant)}`, undefined, NO_TENANT).finally(markPrimaryReady), [tenant]);
  const d = data.data;
  const { shown, toolbar, header } = useTable(d?.projects, "alarms");
  const platform = d?.scope === "platform";
  const me = useMe();
  return (
    <div class="page lab">
      <div class="page-head">
        {platform && (
          <>
            <Link href="/lab" data-testid="lab-back">
              Lab
            </Link>
            <span class="muted">/</span>
          </>
        )}
        <h1 data-testid="lab-enterprise-title">{d?.enterprise.name ?? tenant}</h1>
        <span class="muted mono small">{tenant}</span>
        <span class="grow" />
        <Link href={`/lab/alarms?enterprise=${enc(tenant)}`} class="btn" data-testid="lab-enterprise-alarms">
          Alarms of this enterprise
        </Link>
      </div>
      <ErrorBox error={data.error} />
      {d && <Totals t={d.enterprise} what={<Stat label="Projects" value={d.enterprise.projects} testid="lab-projects" />} />}
      {d && <Quotas tenant={tenant} editable={platform} rate={d.enterprise.ingest_rate} initial={d.quotas} />}
      {d && toolbar("projects")}
      {d && (
        <div class="panel table-scroll">
          <table class="grid lab-table" data-testid="lab-project-table">
            <thead>
              <tr>
                {header("name", "Project")}
                {header("offline", "Devices online")}
                {header("alarms", "Open alarms")}
                {header("rate", "Ingest", "num")}
                {header("stored", "Stored", "num")}
                {header("activity", "Last activity")}
                {header("quality", "Detection quality")}
              </tr>
            </thead>
            <tbody>
              {shown.map((p) => (
                <tr key={p.id} data-project={p.id} class="clickable" onClick={() => openProject(d.scope, tenant, p.id)}>
                  <td>
                    <a href="/" onClick={(e) => e.preventDefault()}>
                      {p.name}
                    </a>{" "}
                    <span class="muted small mono">{p.id}</span>
                  </td>
                  <HealthCells x={p} />
                </tr>
              ))}
            </tbody>
          </table>
          {!shown.length && <Empty>{d.projects.length ? "No project matches." : "This enterprise has no projects yet."}</Empty>}
        </div>
      )}
      {d && (
        <>
          <Fold id="ent-trends" title="Trends" hint="messages and alarms per hour or day">
            <TrendsPanel enterprise={tenant} />
          </Fold>
          <Fold id="ent-portfolio" title="Portfolio" hint="each project's stage and outcomes, the quarterly report">
            <PortfolioPanel enterprise={tenant} />
          </Fold>
          <Fold id="ent-usage" title="Usage" hint="metered use per day and project, as CSV">
            <UsagePanel enterprise={tenant} />
          </Fold>
        </>
      )}
      {d?.rules && (
        <div class="panel rule-quality" data-testid="lab-rule-quality">
          <h3>Detection quality per rule</h3>
          <p class="muted small">
            From operators' verdicts on alarms raised in the last 12 weeks (mark an alarm as a real fault, a false alarm or unsure in the alarm console). Precision = real faults / (real faults + false alarms).
          </p>
          {d.rules.length ? (
            <table class="grid">
              <thead>
                <tr>
                  <th>Rule</th>
                  <th>Project</th>
                  <th class="num">Precision</th>
                  <th class="num">Real</th>
                  <th class="num">False</th>
                  <th class="num">Unsure</th>
                  <th>Per week</th>
                </tr>
              </thead>
              <tbody>
                {d.rules.map((r) => (
                  <tr key={`${r.project}/${r.rule_id}`} data-rule={r.rule_id}>
                    <td>
                      {r.rule_name} <span class="muted small mono">{r.rule_id}</span>
                    </td>
                    <td>{r.project_name}</td>
                    <td class={`num mono ${precisionClass(r)}`}>{fmtPrecision(r)}</td>
                    <td class="num">{r.real}</td>
                    <td class="num">{r.false}</td>
                    <td class="num">{r.unsure}</td>
                    <td>
                      <Weeks weeks={r.weeks} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : (
            <Empty>No alarm of this enterprise has been judged yet.</Empty>
          )}
        </div>
      )}
      {/* The platform admin invites into this enterprise (X-Atoll-Tenant); its admin into its own. */}
      {d && can(me, "admin") && <Invites tenant={platform ? tenant : undefined} />}
    </div>
  );
}

// ------------------------------------------------------------------------- alarm console

// 50 rows a page: what an operator triages at once; 200 took a loaded machine over 1 s to draw.
export const PAGE = 50;
const SINCE = { "": "any time", "-1h": "last hour", "-24h": "last 24 h", "-7d": "last 7 days", "-30d": "last 30 days" };

export function LabAlarms() {
  const { query } = useLocation();
  const me = useMe();
  const [f, setF] = useState(() => ({
    enterprise: query.get("enterprise") || "",
    project: query.get("project") || "",
    severity: query.get("severity") || "",
    status: query.get("status") || "open",
    rule: query.get("rule") || "",
    since: query.get("since") || "",
    order: query.get("order") || "newest",
    assignee: query.get("assignee") || "",
    feedback: query.get("feedback") || "",
  }));
  const [offset, setOffset] = useState(0);
  const [picked, setPicked] = useState(new Set());
  const [note, setNote] = useState(null);
  const [busy, setBusy] = useState(false);
  const [tick, setTick] = useState(0);
  const rule = useDebounced(f.rule, 250);
  const params = { ...f, rule, status: f.status === "all" ? "all" : f.status };

  useEffect(() => {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(f)) if (v && !(k === "status" && v === "open") && !(k === "order" && v === "newest")) p.set(k, v);
    const s = p.toString();
    navigate("/lab/alarms" + (s ? `?${s}` : ""), { replace: true });
    setOffset(0);
  }, [f.enterprise, f.project, f.severity, f.status, rule, f.since, f.order, f.assignee, f.feedback]);

  // The enterprises and their projects for the filters: the project tree the top bar has
  // already asked for (no request of its own).
  const tree = useProjects({ defer: true });
  const ents = tree.data?.tenants || [];
  const projs = (tree.data?.projects || []).filter((p) => p.tenant === f.enterprise);
  const platform = !!tree.data?.platform;

  // A re-read asked for while one is under way waits for it (one more read afterwards), so a
  // burst of live messages cannot keep cancelling reads and leave the table stale.
  const reading = useRef(false);
  const again = useRef(false);
  const reread = () => {
    if (reading.current) again.current = true;
    else setTick((n) => n + 1);
  };
  const list = useAsync(async () => {
    reading.current = true;
    try {
      const res = await request("GET", "/lab/alarms", undefined, { query: { ...params, limit: PAGE, offset }, raw: true, tenant: "" });
      const body = await res.json();
      markPrimaryReady();
      if (!res.ok) throw new ApiError(res.status, body);
      return { rows: items(body), total: Number(res.headers.get("X-Total-Count") || 0) };
    } finally {
      reading.current = false;
      if (again.current) {
        again.current = false;
        setTick((n) => n + 1);
      }
    }
  }, [f.enterprise, f.project, f.severity, f.status, rule, f.since, f.order, f.assignee, f.feedback, offset, tick]);

  // Live: the selected project's socket says when one of its alarms changes; other projects'
  // alarms are re-read every 15 s while the page is in view.
  useLive((m) => m.type === "alarm", reread, []);
  useEffect(() => {
    const t = setInterval(() => document.visibilityState === "visible" && reread(), 15_000);
    return () => clearInterval(t);
  }, []);
  useEffect(() => setPicked(new Set()), [f.enterprise, f.project, f.severity, f.status, rule, f.since, f.order, f.assignee, f.feedback, offset]);

  const rows = list.data?.rows || [];
  const total = list.data?.total ?? 0;
  const set = (k) => (e) => setF((x) => ({ ...x, [k]: e.currentTarget.value, ...(k === "enterprise" ? { project: "" } : {}) }));
  const operator = can(me, "operator");
  // Within one tenant an operator assigns from the console; the platform admin's rows span
  // tenants, each with its own users: it assigns on the project's alarm page.
  const users = useAsync(async () => (operator && tree.data && !platform ? (await api.get("/alarms/assignees", undefined, NO_TENANT)).users : null), [operator, platform, !!tree.data]);
  const changed = (got) => {
    setNote(null);
    reread();
  };
  const failed = (err) => setNote({ ok: false, error: err });

  async function bulk(action) {
    setBusy(true);
    setNote(null);
    try {
      const r = await api.post(`/lab/alarms/${action}`, { ids: [...picked] }, NO_TENANT);
      const verb = action === "ack" ? "acknowledged" : "cleared";
      setNote({ ok: true, text: `${r.done.length} ${verb}` + (r.skipped.length ? `; ${r.skipped.length} skipped (${r.skipped[0].reason}${r.skipped.length > 1 ? ", …" : ""})` : "") });
      setPicked(new Set());
      setTick((n) => n + 1);
    } catch (err) {
      setNote({ ok: false, error: err });
    } finally {
      setBusy(false);
    }
  }

  async function exportCsv() {
    await download("GET", "/lab/alarms.csv", { query: params, tenant: "", name: "atoll-alarms.csv" }).catch((error) => setNote({ ok: false, error }));
  }

  const allPicked = rows.length > 0 && rows.every((a) => picked.has(a.id));
  const toggle = (id) =>
    setPicked((s) => {
      const n = new Set(s);
      n.has(id) ? n.delete(id) : n.add(id);
      return n;
    });

  return (
    <div class="page lab">
      <div class="page-head">
        <Link href="/lab">Lab</Link>
        <span class="muted">/</span>
        <h1>Alarm console</h1>
        <span class="muted small">across every enterprise and project you may see</span>
        <span class="grow" />
        <button class="btn" onClick={exportCsv} data-testid="lab-alarms-export">
          Export CSV
        </button>
      </div>
      <div class="toolbar wrap">
        <select value={f.enterprise} onChange={set("enterprise")} data-testid="la-enterprise">
          <option value="">All enterprises</option>
          {ents.map((e) => (
            <option key={e.id} value={e.id}>
              {e.name}
            </option>
          ))}
        </select>
        <select value={f.project} onChange={set("project")} disabled={!f.enterprise} data-testid="la-project" title={f.enterprise ? "" : "choose an enterprise first"}>
          <option value="">All projects</option>
          {projs.map((p) => (
            <option key={p.id} value={p.id}>
              {p.name}
            </option>
          ))}
        </select>
        <select value={f.severity} onChange={set("severity")} data-testid="la-severity">
          <option value="">All severities</option>
          {SEVERITIES.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
        <select value={f.status} onChange={set("status")} data-testid="la-status">
          <option value="open">Open (active + acknowledged)</option>
          <option value="active">Active</option>
          <option value="acknowledged">Acknowledged</option>
          <option value="cleared">Cleared</option>
          <option value="all">All states</option>
        </select>
        <input class="search narrow" placeholder="Rule id" value={f.rule} onInput={set("rule")} data-testid="la-rule" />
        <select value={f.since} onChange={set("since")} data-testid="la-since">
          {Object.entries(SINCE).map(([k, v]) => (
            <option key={k} value={k}>
              raised {v}
            </option>
          ))}
        </select>
        <select value={f.order} onChange={set("order")} data-testid="la-order">
          <option value="newest">Newest first</option>
          <option value="severity">Worst first</option>
        </select>
        <select value={f.assignee} onChange={set("assignee")} data-testid="la-assignee">
          <option value="">Anyone's</option>
          <option value="me">Mine</option>
          <option value="none">Unassigned</option>
        </select>
        <select value={f.feedback} onChange={set("feedback")} data-testid="la-feedback">
          <option value="">Judged or not</option>
          <option value="none">Not judged yet</option>
          <option value="real">Real faults</option>
          <option value="false">False alarms</option>
          <option value="unsure">Unsure</option>
        </select>
        <span class="grow" />
        <span class="muted small" data-testid="la-count">
          {list.data ? `${total.toLocaleString()} alarm${total === 1 ? "" : "s"}` : "loading…"}
        </span>
      </div>
      {operator && (
        <div class="toolbar bulk" data-testid="la-bulk">
          <span class="small">{picked.size} selected</span>
          <button class="btn small" disabled={!picked.size || busy} onClick={() => bulk("ack")} data-testid="la-ack">
            Acknowledge
          </button>
          <button class="btn small danger" disabled={!picked.size || busy} onClick={() => bulk("clear")} data-testid="la-clear">
            Clear
          </button>
          {note?.ok && (
            <span class="ok small" data-testid="la-note">
              {note.text}
            </span>
          )}
        </div>
      )}
      {note && !note.ok && <ErrorBox error={note.error} />}
      <ErrorBox error={list.error} />
      <div class="panel table-scroll">
        <table class="grid" data-testid="la-table">
          <thead>
            <tr>
              {operator && (
                <th>
                  <input type="checkbox" checked={allPicked} onChange={() => setPicked(allPicked ? new Set() : new Set(rows.map((a) => a.id)))} data-testid="la-pick-all" />
                </th>
              )}
              <th>Severity</th>
              <th>Alarm</th>
              <th>Enterprise / project</th>
              <th>Device</th>
              <th>State</th>
              <th>Raised</th>
              <th>Assignee</th>
              <th>Was it right?</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((a) => (
              <tr key={a.id} data-alarm={a.id}>
                {operator && (
                  <td>
                    <input type="checkbox" checked={picked.has(a.id)} onChange={() => toggle(a.id)} data-testid="la-pick" />
                  </td>
                )}
                <td>
                  <Severity value={a.severity} />
                </td>
                <td>
                  {a.rule_name}
                  <div class="muted small">{a.detail}</div>
                </td>
                <td>
                  {a.tenant_name} <span class="muted">/</span>{" "}
                  <a
                    href="/alarms"
                    onClick={(e) => {
                      e.preventDefault();
                      if (platform) setActingTenant(a.tenant);
                      currentProject.set(a.project);
                      navigate("/alarms");
                    }}
                  >
                    {a.project_name}
                  </a>
                </td>
                <td class="mono small">{a.device}</td>
                <td>
                  <span class={`state st-${a.status}`}>{a.status}</span>
                  {a.acknowledged && a.status === "cleared" && <span class="muted small"> (acknowledged)</span>}
                </td>
                <td class="small" title={fmtTime(toSeconds(a.raised_at))}>
                  {fmtAgo(toSeconds(a.raised_at))}
                </td>
                <td>
                  <Assignee a={a} operator={operator} users={users.data} tenant={a.tenant} onDone={changed} onError={failed} />
                </td>
                <td>
                  <Feedback a={a} operator={operator} tenant={a.tenant} onDone={changed} onError={failed} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        {list.data && !rows.length && <Empty>No alarm matches these filters.</Empty>}
      </div>
      {total > PAGE && (
        <div class="btn-row">
          <button class="btn small" disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - PAGE))}>
            ← Newer
          </button>
          <span class="muted small">
            {offset + 1}–{Math.min(offset + PAGE, total)} of {total.toLocaleString()}
          </span>
          <button class="btn small" disabled={offset + PAGE >= total} onClick={() => setOffset(offset + PAGE)} data-testid="la-next">
            Older →
          </button>
        </div>
      )}
    </div>
  );
}
