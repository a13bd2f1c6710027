// Who is signed in (GET /auth/me), asked once per session and tenant: pages hide the buttons a
// role cannot use. The API enforces roles anyway; this only keeps dead buttons off the screen.
import { useEffect, useState } from "preact/hooks";
import { api, getSession } from "./api.js";
import { afterPrimary } from "./util.js";

const RANK = { viewer: 1, operator: 2, admin: 3 };
let cached = null;
let cachedFor = null;

function load() {
  const s = getSession();
  const key = `${s?.token}|${s?.actAs || ""}`;
  if (!cached || cachedFor !== key) {
    cachedFor = key;
    cached = afterPrimary()
      .then(() => api.get("/auth/me"))
      .catch(() => null);
  }
  return cached;
}

export function can(me, role) {
  return !!me && (RANK[me.role] || 0) >= RANK[role];
}

export function useMe() {
  const s = getSession();
  const [me, set] = useState(null);
  useEffect(() => {
    let on = true;
    load().then((m) => on && set(m));
    return () => (on = false);
  }, [s?.token, s?.actAs]);
  return me;
}
