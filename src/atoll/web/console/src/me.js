// Who is signed in: pages hide the buttons a role cannot use (the API enforces roles anyway).
// The role comes with the login, so the common case costs no request; the full identity
// (tenant, key id) is asked once per session and tenant (GET /auth/me) by the pages needing it.
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

// `full`: also the tenant and key id (the Access page); otherwise the login's role will do.
export function useMe({ full = false } = {}) {
  const s = getSession();
  const known = !full && s?.role ? { role: s.role } : null;
  const [me, set] = useState(known);
  useEffect(() => {
    if (known) return;
    let on = true;
    load().then((m) => on && set(m));
    return () => (on = false);
  }, [s?.token, s?.actAs, full]);
  return known || me;
}
