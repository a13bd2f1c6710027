// Small formatting and state helpers shared by the pages.
import { useEffect, useRef, useState } from "preact/hooks";

export function fmtTime(sec) {
  if (sec === null || sec === undefined || Number.isNaN(sec)) return "—";
  const d = new Date(sec * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function fmtAgo(sec) {
  if (!sec) return "never";
  const d = Date.now() / 1000 - sec;
  if (d < 2) return "just now";
  if (d < 60) return `${Math.round(d)} s ago`;
  if (d < 3600) return `${Math.round(d / 60)} min ago`;
  if (d < 86400) return `${Math.round(d / 3600)} h ago`;
  return `${Math.round(d / 86400)} d ago`;
}

export function fmtNum(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "—";
  if (typeof v !== "number") return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(3);
  return String(Math.round(v * 1000) / 1000);
}

// JSON for people: binary float noise (108.74999999999999) shown as the number meant (108.75);
// 12 significant digits keep every digit a sensor reports.
export function fmtJson(v) {
  return JSON.stringify(v, (k, x) => (typeof x === "number" && !Number.isInteger(x) ? Number(x.toPrecision(12)) : x), 2);
}

export function fmtDuration(sec) {
  if (sec < 120) return `${Math.round(sec)} s`;
  if (sec < 7200) return `${Math.round(sec / 60)} min`;
  if (sec < 172800) return `${Math.round(sec / 3600)} h`;
  return `${Math.round(sec / 86400)} d`;
}

// On a fresh load the page's main content (a chart, the device table) is fetched first and
// side panels wait for it, so their requests do not queue ahead of it on a busy server.
let primaryDone;
const primary = new Promise((resolve) => (primaryDone = resolve));
export function markPrimaryReady() {
  primaryDone();
}
setTimeout(markPrimaryReady, 800); // never hold side panels longer than this
export function afterPrimary() {
  return primary;
}

// Reusable async loader: {data, error, loading, reload}. `defer`: wait for the main content.
export function useAsync(fn, deps, { defer = false } = {}) {
  const [st, set] = useState({ data: null, error: null, loading: true });
  const gen = useRef(0);
  const run = () => {
    const g = ++gen.current;
    set((s) => ({ ...s, loading: true }));
    (defer ? primary : Promise.resolve())
      .then(fn)
      .then(
        (data) => g === gen.current && set({ data, error: null, loading: false }),
        (error) => g === gen.current && set({ data: null, error, loading: false }),
      );
  };
  useEffect(run, deps);
  return { ...st, reload: run };
}

export function useDebounced(value, ms) {
  const [v, set] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => set(value), ms);
    return () => clearTimeout(t);
  }, [value, ms]);
  return v;
}

export function copy(text) {
  if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
  const ta = document.createElement("textarea");
  ta.value = text;
  document.body.appendChild(ta);
  ta.select();
  document.execCommand("copy");
  ta.remove();
  return Promise.resolve();
}

// Module-level store with a hook, for app-wide state (the selected project).
export function createStore(key, initial) {
  let value = initial;
  try {
    const s = localStorage.getItem(key);
    if (s !== null) value = JSON.parse(s);
  } catch {
    /* keep initial */
  }
  const subs = new Set();
  const store = {
    get: () => value,
    set(v) {
      value = v;
      localStorage.setItem(key, JSON.stringify(v));
      subs.forEach((fn) => fn(v));
    },
    use() {
      const [v, setV] = useState(value);
      useEffect(() => {
        subs.add(setV);
        setV(value);
        return () => subs.delete(setV);
      }, []);
      return v;
    },
  };
  return store;
}

export const currentProject = createStore("atoll.project", null);

// A cron schedule in words for the common shapes ("0 7 * * 1-5" → "every Mon–Fri at 07:00");
// anything else is answered as written (the server's parser is the reference).
const CRON_ALIASES = { "@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *" };
const CRON_DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
export function describeCron(expr) {
  const f = (CRON_ALIASES[expr.trim().toLowerCase()] || expr).trim().split(/\s+/);
  if (f.length !== 5) return expr;
  const [mi, h, dom, mon, dow] = f;
  const num = (x) => /^\d{1,2}$/.test(x);
  const two = (x) => x.padStart(2, "0");
  let time;
  if (num(mi) && num(h)) time = `at ${two(h)}:${two(mi)}`;
  else if (num(mi) && h === "*") time = mi === "0" ? "every hour" : `every hour at :${two(mi)}`;
  else if (/^\*\/\d+$/.test(mi) && h === "*") time = `every ${mi.slice(2)} minutes`;
  else if (num(mi) && /^\*\/\d+$/.test(h)) time = `every ${h.slice(2)} hours at :${two(mi)}`;
  else return expr;
  let days = "";
  if (dom === "*" && mon === "*" && dow !== "*") {
    const day = (x) => (num(x) && +x <= 7 ? CRON_DAYS[+x] : null);
    const parts = dow.split(",").map((p) => {
      const [a, b] = p.split("-");
      return b === undefined ? day(a) : day(a) && day(b) ? `${day(a)}–${day(b)}` : null;
    });
    if (parts.includes(null)) return expr;
    days = `every ${parts.join(", ")}`;
  } else if (num(dom) && mon === "*" && dow === "*") days = `day ${dom} of each month`;
  else if (!(dom === "*" && mon === "*" && dow === "*")) return expr;
  if (time.startsWith("at ")) return days ? `${days} ${time}` : `daily ${time}`;
  return days ? `${time}, ${days}` : time;
}

// Hours as a person reads a remaining life: minutes under an hour, days from two days on.
export function rulText(x) {
  if (x < 1) return `${Math.max(0, Math.round(x * 60))} min`;
  return x < 48 ? `${Math.round(x * 10) / 10} h` : `${Math.round((x / 24) * 10) / 10} d`;
}
