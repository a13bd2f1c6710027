// Fleet overview: tenants → projects → devices, with online state and active alarms.
// The device table is server-paged and virtualised; filtering happens in the API.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { actingTenant, alarmSummary, api, enc, getSession, items, page, setActingTenant, toSeconds } from "../api.js";
import { useLive } from "../live.js";
import { Link, navigate } from "../router.jsx";
import { currentProject, fmtAgo, fmtNum, markPrimaryReady, useAsync, useDebounced } from "../util.js";
import { Dot, Empty, ErrorBox } from "../components/common.jsx";
import { NewProject } from "../components/NewProject.jsx";
import { VirtualList, usePagedSource } from "../components/VirtualList.jsx";
import { can, useMe } from "../me.js";

export const ONLINE_WINDOW_S = 300;

export function deviceId(d) {
  return d.id ?? d.device_id ?? d.device ?? d.name;
}

export function lastSeen(d) {
  return toSeconds(d.last_seen ?? d.last_seen_at ?? d.lastSeen ?? d.seen_at ?? null);
}

export function onlineState(d, seen) {
  if (d.disabled) return "disabled";
  if (typeof d.online === "boolean" && !seen) return d.online ? "online" : "offline";
  const t = seen ?? lastSeen(d);
  if (!t) return typeof d.online === "boolean" ? (d.online ? "online" : "offline") : "never";
  return Date.now() / 1000 - t < ONLINE_WINDOW_S ? "online" : "offline";
}

export function projectId(p) {
  return p.id ?? p.project_id ?? p.name;
}

// Every user of the project list (top bar, tree) reloads when a project is created.
const projectListeners = new Set();
let projectsVersion = 0;
export function projectsChanged() {
  projectsVersion++;
  projectListeners.forEach((fn) => fn());
}

// The tenants and every project the user may see, in two requests whatever their number
// (GET /lab/projects lists every tenant's projects for the platform admin). Every user of the
// tree on screen (top bar, fleet tree, alarm console filters) shares one answer.
let treeCache = null;
function loadTree(version) {
  const s = getSession();
  const key = `${version}|${s?.token}`;
  if (!treeCache || treeCache.key !== key) {
    const promise = Promise.all([api.get("/tenants", undefined, { tenant: "" }).catch(() => []), api.get("/lab/projects", undefined, { tenant: "" })]).then(([ts, ps]) => ({
      tenants: items(ts),
      projects: ps.projects,
      platform: ps.scope === "platform",
    }));
    treeCache = { key, promise };
    promise.catch(() => treeCache?.promise === promise && (treeCache = null));
  }
  return treeCache.promise;
}

export function useProjects(opts) {
  const [version, setVersion] = useState(0);
  useEffect(() => {
    const fn = () => setVersion((v) => v + 1);
    projectListeners.add(fn);
    return () => projectListeners.delete(fn);
  }, []);
  return useAsync(() => loadTree(projectsVersion), [version], opts);
}

// Choosing a project also chooses its tenant for the platform admin, before anything loads.
export function selectProject(tree, id) {
  const p = (tree?.projects || []).find((x) => projectId(x) === id);
  if (tree?.platform && p) setActingTenant(p.tenant);
  currentProject.set(id);
}

// The selected project must be one the signed-in user can open, in the tenant the calls are
// made in: a project left in localStorage by another user (or a platform admin's project whose
// tenant is not the one acted in) would answer "project not found" on every page and reload.
// Effects call it with the project chosen now (currentProject.get()), not the one their render
// saw: a choice made in between (a click right after the list appears) must stand.
export function reconcileProject(tree, project) {
  const ps = tree?.projects;
  if (!ps) return;
  const p = project && ps.find((x) => projectId(x) === project);
  if (!p) {
    if (ps.length) selectProject(tree, projectId(ps[0]));
    else if (project) currentProject.set(null);
  } else if (tree.platform && p.tenant && actingTenant() !== p.tenant) setActingTenant(p.tenant);
}

export function Overview() {
  const project = currentProject.use();
  const tree = useProjects();
  const [q, setQ] = useState("");
  const [status, setStatus] = useState("");
  const dq = useDebounced(q, 200);
  const seen = useRef(new Map()); // device -> {t, values} from the live feed
  const known = useRef(new Set()); // devices of the pages loaded
  const [liveTick, setLiveTick] = useState(0);
  const [alarmTick, setAlarmTick] = useState(0);
  const [tq, setTq] = useState("");
  const [unfolded, setUnfolded] = useState(new Set());
  const toggle = (t) =>
    setUnfolded((s) => {
      const n = new Set(s);
      n.has(t) ? n.delete(t) : n.add(t);
      return n;
    });

  useEffect(() => reconcileProject(tree.data, currentProject.get()), [tree.data]);

  // Active alarms counted per device by the server (the top bar's badge reads the same answer).
  // Deferred reads check that their project is still the one chosen: another choice in the
  // meantime has moved the acting tenant on, and this project's request would be a 404 there.
  const alarms = useAsync(async () => (project && project === currentProject.get() ? alarmSummary(project) : null), [project, alarmTick], { defer: true });

  const alarmsByDevice = useMemo(() => {
    const m = new Map();
    for (const [d, c] of Object.entries(alarms.data?.by_device || {})) if (c.active) m.set(d, c.active);
    return m;
  }, [alarms.data]);

  const source = usePagedSource(
    async (offset, limit) => {
      if (!project || project !== currentProject.get()) return { rows: [], total: 0 };
      // latest=true: quiet devices show their last values too, not only those heard live.
      const { rows, total } = await page(`/projects/${enc(project)}/devices`, { offset, limit, q: dq, status, latest: "true" });
      for (const d of rows) known.current.add(deviceId(d));
      // Without a total, assume more rows while pages come back full.
      const t = total ?? (rows.length === limit ? offset + limit + 1 : offset + rows.length);
      if (offset === 0) markPrimaryReady();
      return { rows, total: t };
    },
    [project, dq, status],
  );

  // When the first rows were on screen (effects run after paint): read by bench/console.py.
  useEffect(() => {
    if (source.total !== null && !window.__atollFleetAt) window.__atollFleetAt = performance.now();
  }, [source.total]);

  // The online counter comes from the same filter the table uses, counted by the server.
  const online = useAsync(async () => {
    if (!project || project !== currentProject.get()) return null;
    return (await page(`/projects/${enc(project)}/devices`, { limit: 1, status: "online" })).total;
  }, [project, liveTick >> 2], { defer: true });

  // A busy fleet sends thousands of readings a second: redraw and recount at most every 2 s.
  const lastBump = useRef(0);
  const newcomer = useRef(false);
  useLive(
    (m) => m.type === "telemetry" || m.type === "alarm",
    (m) => {
      if (m.type === "telemetry") {
        // A device the table has not listed (registered since it loaded): re-read the pages.
        if (m.device && !known.current.has(m.device) && !dq && !status) newcomer.current = true;
        const prev = seen.current.get(m.device);
        seen.current.set(m.device, { t: toSeconds(m.ts) ?? Date.now() / 1000, values: { ...(prev?.values || {}), ...(m.values || {}) } });
      } else {
        setAlarmTick((n) => n + 1);
      }
      const now = performance.now();
      if (now - lastBump.current > 2000) {
        lastBump.current = now;
        setLiveTick((n) => n + 1);
        if (newcomer.current) {
          newcomer.current = false;
          known.current.add(m.device);
          source.refresh();
        }
      }
    },
    [dq, status],
  );
  // Devices registered elsewhere that have not sent anything yet: re-read every 30 s in view.
  useEffect(() => {
    const t = setInterval(() => document.visibilityState === "visible" && source.refresh(), 30_000);
    return () => clearInterval(t);
  }, [project, dq, status]);

  const projects = tree.data?.projects || [];
  const tenants = tree.data?.tenants || [];
  // The platform admin sees every tenant, empty ones too.
  const byTenant = new Map(tree.data?.platform ? tenants.map((t) => [t.id, []]) : []);
  for (const p of projects) {
    const t = p.tenant ?? p.tenant_id ?? "default";
    if (!byTenant.has(t)) byTenant.set(t, []);
    byTenant.get(t).push(p);
  }
  const tenantName = (id) => {
    const t = tenants.find((x) => (x.id ?? x.tenant_id ?? x.name) === id);
    return t ? t.name ?? t.id : id;
  };

  const count = source.total ?? 0;
  const me = useMe();
  const big = projects.length > 30;
  const currentTenant = projects.find((p) => projectId(p) === project)?.tenant;

  return (
    <div class="page overview">
      <aside class="tree panel" data-testid="project-tree">
        <div class="panel-head">
          <strong>Tenants &amp; projects</strong>
        </div>
        <ErrorBox error={tree.error} />
        {big && <input class="search tree-search" placeholder="Filter projects…" value={tq} onInput={(e) => setTq(e.currentTarget.value)} data-testid="tree-filter" />}
        {[...byTenant.entries()].map(([t, ps]) => {
          // A lab of hundreds of projects is not one long list: only the current tenant's
          // projects (or those matching the filter) are listed; other tenants fold open on click.
          const needle = tq.trim().toLowerCase();
          const shown = needle ? ps.filter((p) => `${p.name ?? ""} ${projectId(p)} ${tenantName(t)}`.toLowerCase().includes(needle)) : ps;
          if (needle && !shown.length) return null;
          const expanded = !big || !!needle || unfolded.has(t) || t === currentTenant;
          return (
            <div class="tree-group" key={t} data-tenant={t}>
              <div class={`tree-head ${big ? "foldable" : ""}`} onClick={big ? () => toggle(t) : undefined}>
                {big && <span class="fold">{expanded ? "▾" : "▸"}</span>}
                <span class="tree-tenant" data-testid="tree-tenant">
                  {tenantName(t)}
                </span>
                {big && <span class="muted small">{ps.length}</span>}
              </div>
              {expanded &&
                shown.map((p) => (
                  <button key={projectId(p)} class={`tree-item ${projectId(p) === project ? "active" : ""}`} onClick={() => selectProject(tree.data, projectId(p))}>
                    {p.name ?? projectId(p)}
                  </button>
                ))}
            </div>
          );
        })}
        {!tree.loading && !projects.length && <Empty>No projects yet.</Empty>}
        {can(me, "admin") && (
          <NewProject
            tenants={tree.data?.platform ? tenants : null}
            tenant={currentTenant || actingTenant() || tenants[0]?.id}
            onCreated={(id, tenant) => {
              if (tree.data?.platform && tenant) setActingTenant(tenant);
              currentProject.set(id);
              projectsChanged();
            }}
          />
        )}
      </aside>
      <section class="main-col">
        <div class="stats">
          <Stat label={dq || status ? "Matching" : "Devices"} value={source.total ?? "…"} testid="stat-devices" />
          <Stat label="Online" value={online.data ?? "…"} cls="ok" testid="stat-online" />
          <Stat label="Active alarms" value={alarms.data ? alarms.data.active : project ? "…" : 0} cls={alarms.data?.active ? "bad" : ""} testid="stat-alarms" />
          <div class="grow" />
          {can(me, "operator") && (
            <button class="btn primary" onClick={() => navigate("/register")} data-testid="register-link">
              + Register device
            </button>
          )}
        </div>
        <div class="toolbar">
          <input class="search" placeholder="Filter devices by id, name or type…" value={q} onInput={(e) => setQ(e.currentTarget.value)} data-testid="device-filter" />
          <select value={status} onChange={(e) => setStatus(e.currentTarget.value)} data-testid="status-filter">
            <option value="">All states</option>
            <option value="online">Online</option>
            <option value="offline">Offline</option>
          </select>
          <span class="muted small" data-testid="device-count">
            {source.total === null ? "loading…" : `${count.toLocaleString()} devices`}
          </span>
        </div>
        <ErrorBox error={source.error} />
        <div class="table panel">
          <div class="row head">
            <span class="c-state" />
            <span class="c-id">Device</span>
            <span class="c-name">Name</span>
            <span class="c-type">Type</span>
            <span class="c-seen">Last seen</span>
            <span class="c-alarms">Alarms</span>
            <span class="c-values">Latest values</span>
          </div>
          {project && count === 0 && source.total !== null ? (
            <Empty>
              No devices{dq || status ? " match the filter" : ""}.{can(me, "operator") && <> <Link href="/register">Register one</Link>.</>}
            </Empty>
          ) : (
            <VirtualList
              testid="device-list"
              count={count}
              rowHeight={30}
              onRange={(a, b) => source.ensure(a, b)}
              renderRow={(i, style) => {
                const d = source.row(i);
                if (!d) return <div class="row loading" style={style} key={i} />;
                const id = deviceId(d);
                const live = seen.current.get(id);
                const t = Math.max(live?.t || 0, lastSeen(d) || 0) || null;
                const state = onlineState(d, t);
                const nAlarms = alarmsByDevice.get(id) || d.active_alarms || 0;
                const values = { ...(d.latest || d.values || {}), ...(live?.values || {}) };
                return (
                  <div class="row" style={style} key={id} data-device={id} onClick={() => navigate(`/devices/${enc(id)}`)}>
                    <span class="c-state">
                      <Dot state={state} />
                    </span>
                    <span class="c-id mono" title={id}>
                      {shortId(id)}
                    </span>
                    <span class="c-name">{d.name && d.name !== id && d.name !== localId(id) ? d.name : ""}</span>
                    <span class="c-type">
                      {d.type ?? d.device_type ?? ""}
                      {d.kind === "gateway" ? (
                        <span class="muted small" data-testid="row-gateway">
                          {" "}
                          gateway
                        </span>
                      ) : d.parent ? (
                        <span class="muted small" data-testid="row-via" title={`speaks through gateway ${d.parent}`}>
                          {" "}
                          via {shortId(d.parent, 16)}
                        </span>
                      ) : null}
                    </span>
                    <span class="c-seen">{fmtAgo(t)}</span>
                    <span class="c-alarms">{nAlarms ? <span class="badge bad">{nAlarms}</span> : ""}</span>
                    <span class="c-values mono small">
                      {Object.entries(values)
                        .slice(0, 4)
                        .map(([k, v]) => `${k}=${fmtNum(typeof v === "object" && v ? v.value ?? v[1] : v)}`)
                        .join("  ")}
                    </span>
                  </div>
                );
              }}
            />
          )}
        </div>
      </section>
    </div>
  );
}

// A device id is "tenant~local". Shown whole; only an id too long for its column keeps both
// ends, so rows of similar devices (press-line-3-b11, press-line-3-b12) never look the same.
export function localId(id) {
  const i = id.indexOf("~");
  return i >= 0 ? id.slice(i + 1) : id;
}

export function shortId(id, max = 34) {
  return id.length <= max ? id : `${id.slice(0, max - 15)}…${id.slice(-14)}`;
}

function Stat({ label, value, cls = "", testid }) {
  return (
    <div class={`stat ${cls}`} data-testid={testid}>
      <div class="stat-v">{typeof value === "number" ? value.toLocaleString() : value}</div>
      <div class="stat-l">{label}</div>
    </div>
  );
}
