// One WebSocket per project to /api/v1/live; pages subscribe to what they show.
// Browsers cannot set headers on a WebSocket, so the API key travels in the query string.
import { useEffect, useState } from "preact/hooks";
import { actingTenant, getSession } from "./api.js";

const subs = new Set(); // {filter(msg) -> bool, fn}
const stateSubs = new Set();
let ws = null;
let project = null;
let state = "off";
let retry = 0;
let timer = null;
let watched = [];
let hellos = 0; // per project: the first hello is the initial connect, later ones reconnects

function setState(s) {
  state = s;
  stateSubs.forEach((fn) => fn(s));
}

function open() {
  clearTimeout(timer);
  const token = getSession()?.token;
  if (!project || !token) return setState("off");
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const tenant = actingTenant();
  openedFor = tenant;
  const url = `${proto}://${location.host}/api/v1/live?project=${encodeURIComponent(project)}&token=${encodeURIComponent(token)}${tenant ? `&tenant=${encodeURIComponent(tenant)}` : ""}`;
  const sock = new WebSocket(url);
  ws = sock;
  setState("connecting");
  sock.onopen = () => {
    if (watched.length) sock.send(JSON.stringify({ watch: watched }));
  };
  sock.onmessage = (ev) => {
    let msgs;
    try {
      msgs = JSON.parse(ev.data);
    } catch {
      return;
    }
    for (const msg of Array.isArray(msgs) ? msgs : [msgs]) {
      // The server says hello once its bus subscriptions exist: only then is nothing missed.
      // Subscribers get it too (with `resync`), to re-read what may have changed unseen.
      if (msg.type === "hello") {
        retry = 0;
        setState("live");
        msg.resync = hellos++ > 0;
      }
      for (const s of subs) if (!s.filter || s.filter(msg)) s.fn(msg);
    }
  };
  sock.onclose = () => {
    if (ws !== sock) return;
    ws = null;
    setState("reconnecting");
    retry = Math.min(retry + 1, 6);
    timer = setTimeout(open, 250 * 2 ** retry);
  };
}

let openedFor = null; // the tenant the open socket was made for (platform admin)

export function connectLive(p) {
  if (p === project && ws && openedFor === actingTenant()) return;
  // Switching projects: pages already showing data re-read it once the new feed is up.
  hellos = project ? 1 : 0;
  project = p;
  const old = ws;
  ws = null;
  if (old) old.close();
  open();
}

export function disconnectLive() {
  project = null;
  const old = ws;
  ws = null;
  if (old) old.close();
  clearTimeout(timer);
  setState("off");
}

// Devices whose every reading should come through (the device page), not just the latest.
export function watchDevices(ids) {
  watched = ids;
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ watch: ids }));
}

export function useLive(filter, fn, deps) {
  useEffect(() => {
    const s = { filter, fn };
    subs.add(s);
    return () => subs.delete(s);
  }, deps);
}

export function useLiveState() {
  const [s, set] = useState(state);
  useEffect(() => {
    stateSubs.add(set);
    return () => stateSubs.delete(set);
  }, []);
  return s;
}
