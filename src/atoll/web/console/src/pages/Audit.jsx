// The audit log (admins): who did what, to what, when and from where, in the tenant the console
// acts in. Filters by user, action and time, pages back with "Older", exports CSV.
import { useEffect, useState } from "preact/hooks";
import { ApiError, api, download, request, toSeconds } from "../api.js";
import { fmtAgo, fmtTime, useAsync, useDebounced } from "../util.js";
import { Empty, ErrorBox } from "../components/common.jsx";
import { navigate, useLocation } from "../router.jsx";
import { can, useMe } from "../me.js";

const PAGE = 100;
const SINCE = { "": "any time", "-1h": "last hour", "-24h": "last 24 h", "-7d": "last 7 days", "-30d": "last 30 days" };

export function Audit() {
  const me = useMe();
  const { query } = useLocation();
  const [f, setF] = useState(() => ({ actor: query.get("actor") || "", action: query.get("action") || "", since: query.get("since") || "" }));
  // Pages: the before_id of each page shown so far ("" is the newest).
  const [pages, setPages] = useState([""]);
  const [note, setNote] = useState(null);
  const actor = useDebounced(f.actor, 250);
  const params = { actor, action: f.action, since: f.since };
  useEffect(() => {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries({ ...f, actor })) if (v) p.set(k, v);
    const s = p.toString();
    navigate("/audit" + (s ? `?${s}` : ""), { replace: true });
    setPages([""]);
  }, [actor, f.action, f.since]);
  const admin = can(me, "admin");
  const before = pages[pages.length - 1];
  const list = useAsync(async () => {
    if (!admin) return null;
    const res = await request("GET", "/audit", undefined, { query: { ...params, limit: PAGE, before_id: before }, raw: true });
    const body = await res.json().catch(() => null);
    if (!res.ok) throw new ApiError(res.status, body);
    return { rows: body, total: Number(res.headers.get("X-Total-Count") || 0) };
  }, [admin, actor, f.action, f.since, before]);
  const actions = useAsync(async () => (admin ? api.get("/audit/actions") : []), [admin]);

  if (me && !admin) {
    return (
      <div class="page">
        <h1>Audit log</h1>
        <Empty>The audit log is for admins.</Empty>
      </div>
    );
  }
  const set = (k) => (e) => setF((x) => ({ ...x, [k]: e.currentTarget.value }));
  const rows = list.data?.rows || [];
  const total = list.data?.total ?? 0;

  async function exportCsv() {
    setNote(null);
    // What the filters say now, not what the table last read (the user field is debounced).
    await download("GET", "/audit.csv", { query: { ...params, actor: f.actor }, name: "atoll-audit.csv" }).catch(setNote);
  }

  const shownFrom = (pages.length - 1) * PAGE;
  return (
    <div class="page audit">
      <div class="page-head">
        <h1>Audit log</h1>
        <span class="muted small">who did what, when and from where</span>
        <span class="grow" />
        <button class="btn" onClick={exportCsv} data-testid="audit-export">
          Export CSV
        </button>
      </div>
      <div class="toolbar wrap">
        <input class="search narrow" placeholder="User…" value={f.actor} onInput={set("actor")} data-testid="audit-actor" />
        <select value={f.action} onChange={set("action")} data-testid="audit-action">
          <option value="">All actions</option>
          {[...new Set((actions.data || []).map((a) => a.split(".")[0]))].map((group) => (
            <option key={`${group}.`} value={`${group}.`}>
              {group}.* (every {group} action)
            </option>
          ))}
          {(actions.data || []).map((a) => (
            <option key={a} value={a}>
              {a}
            </option>
          ))}
        </select>
        <select value={f.since} onChange={set("since")} data-testid="audit-since">
          {Object.entries(SINCE).map(([k, v]) => (
            <option key={k} value={k}>
              {v}
            </option>
          ))}
        </select>
        <span class="grow" />
        <span class="muted small" data-testid="audit-count">
          {list.data ? `${total.toLocaleString()} entr${total === 1 ? "y" : "ies"}` : "loading…"}
        </span>
      </div>
      <ErrorBox error={list.error} />
      <ErrorBox error={note} />
      <div class="panel table-scroll">
        <table class="grid" data-testid="audit-table">
          <thead>
            <tr>
              <th>When</th>
              <th>Who</th>
              <th>Action</th>
              <th>Target</th>
              <th>From</th>
              <th>Detail</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((e) => (
              <tr key={e.id} data-audit={e.id} data-action={e.action}>
                <td class="small nowrap" title={fmtAgo(toSeconds(e.at))}>
                  {fmtTime(toSeconds(e.at))}
                </td>
                <td>{e.actor}</td>
                <td class="mono small">{e.action}</td>
                <td class="mono small">{e.target}</td>
                <td class="mono small" data-testid="audit-source">
                  {e.source || <span class="muted">—</span>}
                </td>
                <td class="mono small muted">{Object.keys(e.detail || {}).length ? JSON.stringify(e.detail) : ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {list.data && !rows.length && <Empty>No entry matches these filters.</Empty>}
      </div>
      {(pages.length > 1 || total > shownFrom + rows.length) && (
        <div class="btn-row">
          <button class="btn small" disabled={pages.length === 1} onClick={() => setPages([""])} data-testid="audit-newest">
            ← Newest
          </button>
          <span class="muted small">
            {rows.length ? `${shownFrom + 1}–${shownFrom + rows.length}` : "0"} of {total.toLocaleString()}
          </span>
          <button class="btn small" disabled={shownFrom + rows.length >= total} onClick={() => setPages((p) => [...p, String(rows[rows.length - 1].id)])} data-testid="audit-older">
            Older →
          </button>
        </div>
      )}
    </div>
  );
}
