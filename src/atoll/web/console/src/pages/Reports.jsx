// Scheduled reports of the project (CSV/PDF): see what each contains, run one now and download
// its file, or send it through its channels as the schedule would.
import { useState } from "preact/hooks";
import { api, download, enc, items } from "../api.js";
import { can, useMe } from "../me.js";
import { currentProject, describeCron, fmtDuration, useAsync } from "../util.js";
import { Empty, ErrorBox, TableHead } from "../components/common.jsx";
import { ReportForm, emptyReport, fromSpec } from "./ReportForm.jsx";

// The API answers the file itself; hand it to the browser as a download.
function runDownload(project, id) {
  return download("POST", `/projects/${enc(project)}/reports/${enc(id)}/run`, { body: {}, query: { download: "true" } });
}

export function Reports() {
  const project = currentProject.use();
  const me = useMe();
  const list = useAsync(async () => (project ? items(await api.get(`/projects/${enc(project)}/reports`)) : []), [project]);
  const [busy, setBusy] = useState(null);
  const [result, setResult] = useState(null);
  const [error, setError] = useState(null);
  const [editing, setEditing] = useState(null); // the form's initial values while it is open
  const operator = can(me, "operator");

  async function act(r, what) {
    if (what === "delete" && !confirm(`Delete report "${r.name}"? Its schedule stops.`)) return;
    setBusy(`${r.id}:${what}`);
    setError(null);
    setResult(null);
    try {
      if (what === "download") {
        const name = await runDownload(project, r.id);
        setResult({ id: r.id, text: `Downloaded ${name}` });
      } else if (what === "send") {
        const out = await api.post(`/projects/${enc(project)}/reports/${enc(r.id)}/run`);
        setResult({ id: r.id, text: `Sent ${out.files.map((f) => `${f.filename} (${f.bytes.toLocaleString()} bytes)`).join(", ")} to ${out.sent_to.join(", ")}` });
      } else {
        await api.del(`/projects/${enc(project)}/reports/${enc(r.id)}`);
        list.reload();
      }
    } catch (err) {
      setError(err);
    } finally {
      setBusy(null);
    }
  }

  return (
    <div class="page reports">
      <div class="page-head">
        <h1>Reports</h1>
        <span class="muted">in project {project}</span>
        <span class="grow" />
        {operator && !editing && (
          <button class="btn primary" onClick={() => setEditing(emptyReport())} data-testid="report-new">
            + New report
          </button>
        )}
      </div>
      {editing && (
        <ReportForm
          key={editing.id || "new"}
          project={project}
          initial={editing}
          onCancel={() => setEditing(null)}
          onSaved={(r) => {
            setEditing(null);
            setResult({ id: r.id, text: `Saved report ${r.id}` });
            list.reload();
          }}
        />
      )}
      <ErrorBox error={list.error} />
      <ErrorBox error={error} testid="report-error" />
      {result && (
        <p class="ok" data-testid="report-result">
          {result.text}
        </p>
      )}
      <div class="panel">
        <table class="grid" data-testid="report-table">
          <TableHead cols={["Report", "Format", "Schedule", "Window", "Contents", "Channels", ""]} />
          <tbody>
            {(list.data || []).map((r) => (
              <tr key={r.id} data-report={r.id} class={r.enabled ? "" : "muted"}>
                <td>
                  <strong>{r.name}</strong>
                  <div class="muted small mono">{r.id}</div>
                  {!r.enabled && <span class="tag">paused</span>}
                </td>
                <td>
                  <span class="tag">{r.format.toUpperCase()}</span>
                </td>
                <td class="small">
                  <span data-testid="report-schedule">{describeCron(r.cron)}</span>
                  <div class="muted">
                    {r.timezone} · <code title="the schedule as written (cron)">{r.cron}</code>
                  </div>
                </td>
                <td class="small">
                  last {fmtDuration(r.period)}, {fmtDuration(r.bucket)} buckets
                </td>
                <td class="small">
                  {r.series.length ? (
                    <div title={r.series.map((s) => `${s.device}/${s.metric}`).join("\n")}>
                      {r.series.length} series ({r.aggs.join(", ")})
                    </div>
                  ) : null}
                  {r.include_alarms && <div>alarms of the period</div>}
                </td>
                <td class="small mono">{r.channels.length ? r.channels.join(", ") : <span class="muted">download only</span>}</td>
                <td>
                  <div class="actions">
                    {operator && (
                      <>
                        <button class="btn small primary" disabled={!!busy} onClick={() => act(r, "download")} data-testid="report-download">
                          {busy === `${r.id}:download` ? "Running…" : `Run & download ${r.format.toUpperCase()}`}
                        </button>
                        {r.channels.length > 0 && (
                          <button class="btn small" disabled={!!busy} onClick={() => act(r, "send")} data-testid="report-send">
                            {busy === `${r.id}:send` ? "Sending…" : "Send now"}
                          </button>
                        )}
                        <button class="btn small" disabled={!!busy} onClick={() => setEditing(fromSpec(r))} data-testid="report-edit">
                          Edit
                        </button>
                        <button class="btn small ghost" disabled={!!busy} onClick={() => act(r, "delete")} data-testid="report-delete">
                          Delete
                        </button>
                      </>
                    )}
                  </div>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        {list.data && !list.data.length && (
          <Empty>
            No reports in this project{operator ? ": create one with + New report" : ""}.
          </Empty>
        )}
      </div>
      {me && !operator && <p class="muted small">Running reports needs the operator role; you are {me.role}.</p>}
    </div>
  );
}
