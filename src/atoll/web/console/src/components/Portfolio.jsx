// The lab's project portfolio (GET /lab/portfolio): the funnel of projects per stage, each
// project's stage, owner and this quarter's outcomes, and the quarterly report (CSV, PDF).
// Operators move a project along from here (PUT /projects/{p}/portfolio).
import { useState } from "preact/hooks";
import { api, download } from "../api.js";
import { useAsync } from "../util.js";
import { can, useMe } from "../me.js";
import { ErrorBox } from "./common.jsx";

const STAGES = [
  ["idea", "Idea"],
  ["poc", "Proof of concept"],
  ["pilot", "Pilot"],
  ["production", "Production"],
];

export function PortfolioPanel({ enterprise }) {
  const me = useMe();
  const query = enterprise ? { enterprise } : undefined;
  const data = useAsync(() => api.get("/lab/portfolio", query, { tenant: "" }), [enterprise]);
  const [error, setError] = useState(null);
  const d = data.data;
  const top = Math.max(1, ...(d?.funnel || []).map((f) => f.projects));
  const operator = can(me, "operator");

  async function move(p, stage) {
    try {
      await api.put(`/projects/${encodeURIComponent(p.project)}/portfolio`, { stage }, { tenant: p.enterprise });
      setError(null);
      data.reload();
    } catch (e) {
      setError(e);
    }
  }

  return (
    <div class="panel portfolio" data-testid="lab-portfolio">
      <div class="panel-head">
        <h3>Portfolio{d ? `, ${d.quarter}` : ""}</h3>
        <span class="grow" />
        {d && (
          <>
            <button class="btn small" data-testid="lab-report-csv" onClick={() => download("GET", "/lab/report.csv", { query, tenant: "" }).catch(setError)}>
              Quarterly report CSV
            </button>
            <button class="btn small" data-testid="lab-report-pdf" onClick={() => download("GET", "/lab/report.pdf", { query, tenant: "" }).catch(setError)}>
              PDF
            </button>
          </>
        )}
      </div>
      <ErrorBox error={data.error || error} />
      {d && (
        <>
          <div class="funnel" data-testid="lab-funnel">
            {d.funnel.map((f) => (
              <div class="funnel-row" key={f.stage} data-stage={f.stage}>
                <span class="funnel-name">{f.name}</span>
                <span class="funnel-bar" style={{ width: `${Math.round((f.projects / top) * 100)}%` }} />
                <span class="funnel-n mono">{f.projects}</span>
              </div>
            ))}
          </div>
          <div class="muted small">
            This quarter: {d.totals.alarms_raised} alarms raised, {d.totals.alarms_real} judged real faults, {d.totals.alarms_false} false alarms; {d.totals.failures} failures recorded, {d.totals.caught_before_failure} announced by an alarm in the week before.
          </div>
          {enterprise && d.projects.length > 0 && (
            <table class="grid" data-testid="lab-portfolio-table">
              <thead>
                <tr>
                  <th>Project</th>
                  <th>Stage</th>
                  <th>Owner</th>
                  <th class="num">Alarms</th>
                  <th class="num">Real</th>
                  <th class="num">False</th>
                  <th class="num">Failures</th>
                  <th class="num" title="Failures an alarm on the same device announced in the 7 days before">
                    Caught
                  </th>
                </tr>
              </thead>
              <tbody>
                {d.projects.map((p) => (
                  <tr key={p.project} data-portfolio={p.project}>
                    <td title={p.goals || "no goals written yet"}>{p.project_name}</td>
                    <td>
                      {operator ? (
                        <select data-testid={`stage-${p.project}`} value={p.stage} onChange={(e) => move(p, e.currentTarget.value)}>
                          {STAGES.map(([v, n]) => (
                            <option key={v} value={v}>
                              {n}
                            </option>
                          ))}
                        </select>
                      ) : (
                        p.stage_name
                      )}
                    </td>
                    <td>{p.owner || <span class="muted">–</span>}</td>
                    <td class="num">{p.alarms_raised}</td>
                    <td class="num">{p.alarms_real}</td>
                    <td class="num">{p.alarms_false}</td>
                    <td class="num">{p.failures}</td>
                    <td class="num">{p.caught_before_failure}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </>
      )}
    </div>
  );
}
