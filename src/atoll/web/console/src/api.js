// REST client for /api/v1. The API key from the console login lives in localStorage so a
// reload keeps the session; a 401 anywhere drops it and sends the user back to the login.

const BASE = "/api/v1";
const KEY = "atoll.session";

export class ApiError extends Error {
  constructor(status, body) {
    const msg = (body && (body.message || body.detail)) || `HTTP ${status}`;
    super(typeof msg === "string" ? msg : JSON.stringify(msg));
    this.status = status;
    this.code = body && body.error;
    this.hint = body && body.hint;
    this.details = body && (body.details || body.errors || (Array.isArray(body.detail) ? body.detail : null));
  }
}

let session = null;
try {
  session = JSON.parse(localStorage.getItem(KEY) || "null");
} catch {
  session = null;
}
const listeners = new Set();

export function getSession() {
  return session;
}

export function setSession(s) {
  session = s;
  if (s) localStorage.setItem(KEY, JSON.stringify(s));
  else localStorage.removeItem(KEY);
  listeners.forEach((fn) => fn(s));
}

// The platform admin oversees every tenant from one login: the tenant it is looking at goes
// with every call (X-Atoll-Tenant; ?tenant= on the live socket, which can't carry headers).
export function actingTenant() {
  return session?.actAs || null;
}

export function setActingTenant(tenant) {
  if (session && (session.actAs || null) !== (tenant || null)) setSession({ ...session, actAs: tenant || undefined });
}

export function onSession(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export async function request(method, path, body, { query, signal, raw, tenant } = {}) {
  let url = BASE + path;
  if (query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
    const s = q.toString();
    if (s) url += (url.includes("?") ? "&" : "?") + s;
  }
  const headers = { Accept: "application/json" };
  if (session?.token) headers.Authorization = `Bearer ${session.token}`;
  const actAs = tenant ?? session?.actAs;
  if (actAs) headers["X-Atoll-Tenant"] = actAs;
  let payload;
  if (body !== undefined) {
    if (typeof body === "string") {
      headers["Content-Type"] = "application/yaml";
      payload = body;
    } else {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
  }
  // index.html may already have started this very request (see there); use it once.
  const preKey = `${url}|${actAs || ""}`;
  const pre = method === "GET" && window.__atollPreload && window.__atollPreload[preKey];
  if (pre) delete window.__atollPreload[preKey];
  const res = await (pre ? pre.catch(() => fetch(url, { method, headers, signal })) : fetch(url, { method, headers, body: payload, signal }));
  if (raw) return res;
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { message: text };
    }
  }
  if (!res.ok) {
    if (res.status === 401 && session && !path.startsWith("/auth/")) setSession(null);
    throw new ApiError(res.status, data);
  }
  return data;
}

// One page of a server-paged list, with the total from X-Total-Count when the API sends it.
export async function page(path, query) {
  const res = await request("GET", path, undefined, { query, raw: true });
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) {
    if (res.status === 401 && session) setSession(null);
    throw new ApiError(res.status, data);
  }
  const header = res.headers.get("X-Total-Count");
  return { rows: items(data), total: header === null ? null : Number(header) };
}

// A file the API answers (CSV, PDF), handed to the browser as a download; an error answer is
// thrown as ApiError. The file's name is ``name``, else the server's (Content-Disposition).
export async function download(method, path, { body, query, tenant, name } = {}) {
  const res = await request(method, path, body, { query, raw: true, tenant });
  if (!res.ok) {
    const text = await res.text();
    let detail;
    try {
      detail = JSON.parse(text);
    } catch {
      detail = { message: text };
    }
    throw new ApiError(res.status, detail);
  }
  const file = name || /filename="([^"]+)"/.exec(res.headers.get("Content-Disposition") || "")?.[1] || "download";
  const url = URL.createObjectURL(await res.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = file;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
  return file;
}

export const api = {
  get: (p, query, opts) => request("GET", p, undefined, { ...opts, query }),
  post: (p, body, opts) => request("POST", p, body ?? {}, opts),
  put: (p, body, opts) => request("PUT", p, body, opts),
  patch: (p, body, opts) => request("PATCH", p, body, opts),
  del: (p, opts) => request("DELETE", p, undefined, opts),
};

// Lists come back either bare or wrapped ({items, total}); callers see one shape.
export function items(data) {
  if (Array.isArray(data)) return data;
  if (!data) return [];
  for (const k of ["items", "data", "results", "devices", "alarms", "rules", "projects", "tenants"]) {
    if (Array.isArray(data[k])) return data[k];
  }
  return [];
}

export function total(data) {
  if (data && typeof data.total === "number") return data.total;
  return items(data).length;
}

export const enc = encodeURIComponent;

// Timestamps inside Atoll are µs since the epoch; the API may also answer ISO strings or ms.
export function toSeconds(t) {
  if (t === null || t === undefined) return null;
  if (typeof t === "string") {
    const n = Number(t);
    if (!Number.isNaN(n)) return toSeconds(n);
    return Date.parse(t) / 1000;
  }
  if (t > 1e14) return t / 1e6; // µs
  if (t > 1e11) return t / 1e3; // ms
  return t;
}

export function toMicros(seconds) {
  return Math.round(seconds * 1e6);
}

// A project's open alarms counted per status, severity and device (GET /alarms/summary). The
// top bar's badge and the fleet page ask at the same moments (load, an alarm event): one
// request in flight serves both; a later call asks again.
let summaryInFlight = null;
export function alarmSummary(project) {
  const key = `${project}|${session?.token}|${session?.actAs || ""}`;
  if (!summaryInFlight || summaryInFlight.key !== key) {
    const promise = request("GET", "/alarms/summary", undefined, { query: { project } });
    summaryInFlight = { key, promise };
    const done = () => summaryInFlight?.promise === promise && (summaryInFlight = null);
    promise.then(done, done);
  }
  return summaryInFlight.promise;
}
