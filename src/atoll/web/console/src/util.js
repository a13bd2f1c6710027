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

// Hours as a person reads a remaining life: minutes under an hour, days from two days on.
export function rulText(x) {
  if (x < 1) return `${Math.max(0, Math.round(x * 60))} min`;
  return x < 48 ? `${Math.round(x * 10) / 10} h` : `${Math.round((x / 24) * 10) / 10} d`;
}
