// The model registry of the project: every fitted model version (detectors the platform fitted,
// RUL models, forecasters), filtered by kind and state; one model's history (every version of
// its kind and scope), its card, and for operators approve / activate / retire / roll back
// (GET/POST /projects/{p}/models[/{id}/versions|card|approve|activate|retire|rollback]).
import { useState } from "preact/hooks";
import { api, enc, request, toSeconds } from "../api.js";
import { can, useMe } from "../me.js";
import { currentProject, fmtAgo, fmtTime, useAsync } from "../util.js";
import { Empty, ErrorBox, TableHead } from "../components/common.jsx";

const KINDS = ["", "detector", "rul", "forecaster"];
const STATES = ["", "draft", "approved", "active", "retired"];
const ACTION_TEXT = {
  approve: "Approve",
  activate: "Activate",
  retire: "Retire",
  rollback: "Roll back",
};

function StateTag({ state }) {
  const cls = { active: "ok", approved: "", draft: "warn", retired: "muted" }[state] ?? "";
  return <span class={`tag ${cls}`} data-testid="model-state">{state}</span>;
}

function metricsText(m) {
  const pairs = Object.entries(m.metrics || {}).filter(([, v]) => typeof v === "number");
  return pairs.slice(0, 3).map(([k, v]) => `${k} ${Math.round(v * 1000) / 1000}`).join(", ");
}

export function Models() {
  const project = currentProject.use();
  const [kind, setKind] = useState("");
  const [state, setState] = useState("");
  const [open, setOpen] = useState(null);
  const list = useAsync(
    async () => (project ? await api.get(`/projects/${enc(project)}/models`, { kind: kind || undefined, state: state || undefined, limit: 500 }) : []),
    [project, kind, state],
  );
  const rows = list.data || [];
  return (
    <div class="page models">
      <div class="page-head">
        <h1>Models</h1>
        <span class="muted">in project {project}</span>
        <span class="grow" />
        <label class="small">
          kind{" "}
          <select value={kind} onChange={(e) => setKind(e.currentTarget.value)} data-testid="models-kind">
            {KINDS.map((k) => (
              <option key={k} value={k}>
                {k || "any"}
              </option>
            ))}
          </select>
        </label>{" "}
        <label class="small">
          state{" "}
          <select value={state} onChange={(e) => setState(e.currentTarget.value)} data-testid="models-state">
            {STATES.map((s) => (
              <option key={s} value={s}>
                {s || "any"}
              </option>
            ))}
          </select>
        </label>
      </div>
      <p class="muted small">
        Every fitted model is a versioned record. Detectors are fitted and put to work by the platform itself (approved by <span class="mono">system</span>); RUL models and forecasters start as drafts an operator approves and activates. One version per kind and scope is active.
      </p>
      <ErrorBox error={list.error} />
      {list.data && !rows.length && <Empty>No models here yet. `atoll rul train … --register` files an RUL model; detectors appear once the platform fits them.</Empty>}
      {rows.length > 0 && (
        <div class="panel">
          <table class="grid" data-testid="models-table">
            <TableHead cols={["kind", "scope", "version", "state", "algorithm", "validation", "created by", "approved by", "updated"]} />
            <tbody>
              {rows.map((m) => (
                <tr key={m.id} data-model={m.id} class={`clickable ${open === m.id ? "selected" : ""}`} onClick={() => setOpen(open === m.id ? null : m.id)}>
                  <td>{m.kind}</td>
                  <td class="mono">{m.scope}</td>
                  <td class="mono">v{m.version}</td>
                  <td>
                    <StateTag state={m.state} />
                  </td>
                  <td class="mono small">{m.algorithm}</td>
                  <td class="small">{metricsText(m)}</td>
                  <td class="small">{m.created_by}</td>
                  <td class="small">{m.approved_by ?? "—"}</td>
                  <td class="small" title={fmtTime(toSeconds(m.updated_at))}>
                    {fmtAgo(toSeconds(m.updated_at))}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {open && <ModelDetail key={open} project={project} id={open} onChange={list.reload} onOpen={setOpen} />}
    </div>
  );
}

function ModelDetail({ project, id, onChange, onOpen }) {
  const me = useMe();
  const base = `/projects/${enc(project)}/models/${enc(id)}`;
  const model = useAsync(() => api.get(base), [base]);
  const versions = useAsync(() => api.get(`${base}/versions`), [base]);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const [card, setCard] = useState(null);
  const m = model.data;

  async function act(action) {
    const comment = prompt(`${ACTION_TEXT[action]} ${m.kind} ${m.scope} v${m.version}? A comment for the audit log (optional):`, "");
    if (comment === null) return;
    setBusy(true);
    setError(null);
    try {
      const r = await api.post(`${base}/${action}`, comment ? { comment } : {});
      model.reload();
      versions.reload();
      onChange();
      if (r.model.id !== id) onOpen(r.model.id);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }

  async function showCard() {
    setError(null);
    try {
      const res = await request("GET", `${base}/card`, undefined, { query: { format: "md" }, raw: true });
      setCard(await res.text());
    } catch (e) {
      setError(e);
    }
  }

  return (
    <div class="panel pad" data-testid="model-detail">
      <ErrorBox error={model.error || versions.error || error} />
      {m && (
        <>
          <div class="model-head">
            <strong>
              {m.kind} <span class="mono">{m.scope}</span> v{m.version}
            </strong>{" "}
            <StateTag state={m.state} />
            <span class="muted small mono"> {m.id}</span>
            <span class="grow" />
            {can(me, "operator") &&
              m.allowed.map((a) => (
                <button key={a} class="btn small" disabled={busy} onClick={() => act(a)} data-testid={`model-${a}`}>
                  {ACTION_TEXT[a]}
                </button>
              ))}
            <button class="btn small ghost" onClick={showCard} data-testid="model-card">
              Model card
            </button>
          </div>
          <table class="mini kv">
            <tbody>
              {m.ref && (
                <tr>
                  <td class="muted">detector ref</td>
                  <td class="mono small">{m.ref}</td>
                </tr>
              )}
              <tr>
                <td class="muted">trained on</td>
                <td>
                  {m.data_from ? `${fmtTime(toSeconds(m.data_from))} → ${fmtTime(toSeconds(m.data_to))}` : "—"}
                  {m.rows != null && <span class="muted small"> ({m.rows.toLocaleString()} rows)</span>}
                </td>
              </tr>
              <tr>
                <td class="muted">code</td>
                <td class="mono small">
                  {m.algorithm} · atoll {m.code_version}
                </td>
              </tr>
              <tr>
                <td class="muted">validation</td>
                <td class="small">{metricsText(m) || "—"}</td>
              </tr>
              <tr>
                <td class="muted">created</td>
                <td class="small">
                  {fmtTime(toSeconds(m.created_at))} by {m.created_by}
                </td>
              </tr>
              <tr>
                <td class="muted">approved</td>
                <td class="small">{m.approved_by ? `${fmtTime(toSeconds(m.approved_at))} by ${m.approved_by}` : "not yet"}</td>
              </tr>
            </tbody>
          </table>
        </>
      )}
      <h3>History of this kind and scope</h3>
      <table class="grid" data-testid="model-versions">
        <TableHead cols={["version", "state", "created", "approved by", "activated", "retired"]} />
        <tbody>
          {(versions.data || []).map((v) => (
            <tr key={v.id} data-version={v.version} class={v.id === id ? "selected" : "clickable"} onClick={() => v.id !== id && onOpen(v.id)}>
              <td class="mono">v{v.version}</td>
              <td>
                <StateTag state={v.state} />
              </td>
              <td class="small">
                {fmtTime(toSeconds(v.created_at))} <span class="muted">by {v.created_by}</span>
              </td>
              <td class="small">{v.approved_by ?? "—"}</td>
              <td class="small">{v.activated_at ? fmtTime(toSeconds(v.activated_at)) : "—"}</td>
              <td class="small">{v.retired_at ? fmtTime(toSeconds(v.retired_at)) : "—"}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {card && (
        <pre class="model-card-md" style={{ whiteSpace: "pre-wrap", maxHeight: "420px", overflow: "auto" }} data-testid="model-card-text">
          {card}
        </pre>
      )}
    </div>
  );
}
