// The fleet's "due for maintenance" list: each device's latest remaining-useful-life estimate
// (hours and days, with its 90 % interval) from its type's active RUL model, the most at risk
// (lowest rul_lo) first (GET /projects/{p}/maintenance/due).
import { useState } from "preact/hooks";
import { api, enc, toSeconds } from "../api.js";
import { Link } from "../router.jsx";
import { currentProject, fmtAgo, fmtTime, rulText, useAsync } from "../util.js";
import { Empty, ErrorBox, TableHead } from "../components/common.jsx";

const WITHIN = [
  ["", "any"],
  ["1d", "1 day"],
  ["7d", "7 days"],
  ["30d", "30 days"],
];

function hours(h) {
  return h == null ? "—" : rulText(h);
}

function risk(d) {
  if (d.rul_lo_hours < 24) return "bad";
  if (d.rul_lo_hours < 24 * 7) return "warn";
  return "ok";
}

export function Maintenance() {
  const project = currentProject.use();
  const [within, setWithin] = useState("");
  const list = useAsync(
    async () => (project ? await api.get(`/projects/${enc(project)}/maintenance/due`, { within: within || undefined, limit: 500 }) : []),
    [project, within],
  );
  const rows = list.data || [];
  return (
    <div class="page maintenance">
      <div class="page-head">
        <h1>Due for maintenance</h1>
        <span class="muted">in project {project}</span>
        <span class="grow" />
        <label class="small">
          failure possible within{" "}
          <select value={within} onChange={(e) => setWithin(e.currentTarget.value)} data-testid="due-within">
            {WITHIN.map(([v, label]) => (
              <option key={v} value={v}>
                {label}
              </option>
            ))}
          </select>
        </label>
      </div>
      <p class="muted small">
        Remaining useful life of each device, as its type's active RUL model judged it at the end of the last complete cycle. The most at risk first: lowest low end of the 90 % interval.
      </p>
      <ErrorBox error={list.error} />
      {list.data && !rows.length && <Empty>No estimates. Fit a device type's RUL model (`atoll rul fit --project P --type T`), approve and activate it on the Models page; devices are judged as their readings arrive.</Empty>}
      {rows.length > 0 && (
        <div class="panel">
          <table class="grid" data-testid="due-table">
            <TableHead cols={["device", "type", "RUL", "interval (90 %)", "judged", "model"]} />
            <tbody>
              {rows.map((d) => (
                <tr key={d.device} data-device={d.device}>
                  <td>
                    <Link href={`/devices/${enc(d.device)}`}>{d.device}</Link>
                  </td>
                  <td class="small">{d.device_type ?? "—"}</td>
                  <td>
                    <span class={`tag ${risk(d)}`} data-testid="due-rul">
                      {hours(d.rul_hours)}
                    </span>
                    {d.rul_cycles != null && <span class="muted small"> {Math.round(d.rul_cycles)} cycles</span>}
                  </td>
                  <td class="small">
                    {hours(d.rul_lo_hours)} – {hours(d.rul_hi_hours)}
                  </td>
                  <td class="small" title={fmtTime(toSeconds(d.at))}>
                    {fmtAgo(toSeconds(d.at))}
                  </td>
                  <td class="mono small">{d.model ? `${d.model.id ?? "?"} v${d.model.version}` : "—"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}
