// Usage metering of the lab (GET /lab/usage): points stored per day as bars, and per enterprise
// (lab home) or per project (an enterprise's page) the messages, points, API calls and points
// held over the last 30 days, with the rows as CSV.
import { useState } from "preact/hooks";
import { api, download } from "../api.js";
import { useAsync } from "../util.js";
import { ErrorBox } from "./common.jsx";

const NO_TENANT = { tenant: "" };
const fmt = (n) => (n === null || n === undefined ? "–" : n.toLocaleString());

// Per-day sums of one field over the rows, for every day from since to until (gaps as 0).
function perDay(rows, since, until, field) {
  const sums = new Map();
  for (const r of rows) sums.set(r.day, (sums.get(r.day) || 0) + (r[field] || 0));
  const out = [];
  for (let d = new Date(`${since}T00:00:00Z`); d <= new Date(`${until}T00:00:00Z`); d.setUTCDate(d.getUTCDate() + 1)) {
    const day = d.toISOString().slice(0, 10);
    out.push({ day, v: sums.get(day) || 0 });
  }
  return out;
}

export function UsagePanel({ enterprise }) {
  const query = enterprise ? { enterprise } : undefined;
  const data = useAsync(() => api.get("/lab/usage", query, NO_TENANT), [enterprise]);
  const [error, setError] = useState(null);
  const u = data.data;

  async function exportCsv() {
    setError(null);
    download("GET", "/lab/usage.csv", { query, tenant: "", name: `atoll-usage-${u.since}-${u.until}.csv` }).catch(setError);
  }

  // The lab home lists enterprises; an enterprise's page lists its projects (and its own API calls).
  const groups = new Map();
  for (const r of u?.days || []) {
    const key = enterprise ? r.project || "" : r.enterprise;
    const name = enterprise ? (r.project ? r.project_name : "API calls of the enterprise") : r.enterprise_name;
    const g = groups.get(key) || { key, name, messages: 0, points: 0, api_calls: 0, held: null, heldDay: "" };
    g.messages += r.messages;
    g.points += r.points;
    g.api_calls += r.api_calls;
    groups.set(key, g);
  }
  // Points held: each project's latest sample, summed per group.
  const latest = new Map();
  for (const r of u?.days || []) {
    if (r.storage_points === null) continue;
    const k = `${r.enterprise}/${r.project}`;
    if (!latest.has(k) || latest.get(k).day < r.day) latest.set(k, r);
  }
  for (const r of latest.values()) {
    const g = groups.get(enterprise ? r.project || "" : r.enterprise);
    if (g) g.held = (g.held || 0) + r.storage_points;
  }
  const rows = [...groups.values()].sort((a, b) => b.points - a.points || a.name.localeCompare(b.name));
  const bars = u ? perDay(u.days, u.since, u.until, "points") : [];
  const top = Math.max(1, ...bars.map((b) => b.v));

  return (
    <div class="panel usage" data-testid="lab-usage">
      <div class="panel-head">
        <h3>Usage, last 30 days</h3>
        <span class="grow" />
        {u && (
          <button class="btn small" data-testid="lab-usage-csv" onClick={exportCsv} title="Every day, enterprise and project as CSV (for reports and billing)">
            Download CSV
          </button>
        )}
      </div>
      <ErrorBox error={data.error || error} />
      {u && (
        <>
          <div class="usage-bars" data-testid="lab-usage-bars" aria-label="points stored per day">
            {bars.map((b) => (
              <span key={b.day} class="bar" title={`${b.day}: ${fmt(b.v)} points stored`} style={{ height: `${b.v ? Math.max(2, Math.round((b.v / top) * 48)) : 1}px` }} />
            ))}
          </div>
          <div class="muted small">
            Points stored per day (UTC), {u.since} to {u.until}
          </div>
          {rows.length ? (
            <table class="grid" data-testid="lab-usage-table">
              <thead>
                <tr>
                  <th>{enterprise ? "Project" : "Enterprise"}</th>
                  <th class="num">Messages</th>
                  <th class="num">Points</th>
                  <th class="num">API calls</th>
                  <th class="num" title="Latest hourly sample of the points each project holds in the store">
                    Points held
                  </th>
                </tr>
              </thead>
              <tbody>
                {rows.map((g) => (
                  <tr key={g.key} data-usage={g.key}>
                    <td>{g.name}</td>
                    <td class="num mono">{fmt(g.messages)}</td>
                    <td class="num mono">{fmt(g.points)}</td>
                    <td class="num mono">{fmt(g.api_calls)}</td>
                    <td class="num mono">{fmt(g.held)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : (
            <div class="muted small">Nothing metered in these days yet.</div>
          )}
        </>
      )}
    </div>
  );
}
