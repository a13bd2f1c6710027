// "+ New project": an empty project, or one started from a sector template. Picking a template
// asks the server what applying it would do (POST /solutions/{t}/apply with dry_run: the same
// call that then creates it), and shows that before Create: the device types with their metrics
// and units (new, or kept as the project has them), the rules (new, or replacing one of the same
// id) and the dashboard panels. `tenants`: for the platform operator, who must say which
// enterprise the project is for (it used to land silently in whichever one was selected).
import { useEffect, useState } from "preact/hooks";
import { api, enc } from "../api.js";
import { ErrorBox } from "./common.jsx";

const slug = (name) =>
  name
    .toLowerCase()
    .replace(/[^a-z0-9_-]+/g, "-")
    .replace(/^-+|-+$/g, "");

export function NewProject({ tenants, tenant, onCreated }) {
  const [open, setOpen] = useState(false);
  const [name, setName] = useState("");
  const [owner, setOwner] = useState("");
  const [template, setTemplate] = useState("");
  const [templates, setTemplates] = useState(null);
  const [preview, setPreview] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const id = slug(name);
  const opts = tenants ? { tenant: owner } : undefined;

  useEffect(() => {
    if (open && templates === null) api.get("/solutions").then(setTemplates, () => setTemplates([]));
  }, [open]);

  // The preview follows the template, the id and the enterprise, 250 ms after the last change
  // (a later answer never shows an earlier choice's plan: the earlier request is aborted).
  useEffect(() => {
    setPreview(null);
    if (!open || !template || !id || (tenants && !owner)) return;
    const ac = new AbortController();
    const timer = setTimeout(() => {
      api
        .post(`/solutions/${enc(template)}/apply`, { project: id, name, dry_run: true }, { ...opts, signal: ac.signal })
        .then(
          (p) => setPreview(p),
          (e) => e.name !== "AbortError" && setPreview({ error: e }),
        );
    }, 250);
    return () => {
      clearTimeout(timer);
      ac.abort();
    };
  }, [open, template, id, owner]);

  function close() {
    setOpen(false);
    setName("");
    setTemplate("");
    setPreview(null);
    setError(null);
  }

  async function submit(e) {
    e.preventDefault();
    setError(null);
    setBusy(true);
    try {
      let created;
      if (template) {
        created = (await api.post(`/solutions/${enc(template)}/apply`, { project: id, name }, opts)).project;
      } else {
        created = (await api.post("/projects", { name, id: id || undefined }, opts)).id;
      }
      close();
      onCreated(created, tenants ? owner : null);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }

  if (!open)
    return (
      <button
        class="btn small ghost new-project"
        onClick={() => {
          setOwner(tenant || "");
          setOpen(true);
        }}
        data-testid="project-new"
      >
        + New project
      </button>
    );
  const chosen = (templates || []).find((t) => t.name === template);
  return (
    <div class="dialog-back" onClick={(e) => e.target === e.currentTarget && close()}>
      <form class="dialog panel" onSubmit={submit} data-testid="project-dialog">
        <div class="panel-head">
          <strong>New project</strong>
          <span class="grow" />
          <button type="button" class="btn small ghost" onClick={close} data-testid="project-cancel">
            Cancel
          </button>
        </div>
        <div class="dialog-fields">
          {tenants && (
            <label class="small">
              Enterprise
              <select value={owner} onChange={(e) => setOwner(e.currentTarget.value)} required data-testid="project-tenant">
                <option value="" disabled>
                  Choose the enterprise…
                </option>
                {tenants.map((t) => (
                  <option key={t.id} value={t.id}>
                    {t.name ?? t.id}
                  </option>
                ))}
              </select>
            </label>
          )}
          <label class="small">
            Name
            <input placeholder="Project name" value={name} onInput={(e) => setName(e.currentTarget.value)} required autofocus data-testid="project-name" />
          </label>
          <label class="small">
            Start from
            <select value={template} onChange={(e) => setTemplate(e.currentTarget.value)} data-testid="project-template">
              <option value="">An empty project</option>
              {(templates || []).map((t) => (
                <option key={t.name} value={t.name}>
                  {t.title} ({t.sector})
                </option>
              ))}
            </select>
          </label>
        </div>
        {chosen && <p class="muted small template-about">{chosen.description}</p>}
        {template && <Preview plan={preview} waiting={!id} />}
        <div class="dialog-actions">
          <span class="muted small">{id && <span class="mono">{id}</span>}</span>
          <span class="grow" />
          <button class="btn small primary" type="submit" disabled={busy || (template && !preview?.project)} data-testid="project-create">
            {template ? "Create and apply" : "Create"}
          </button>
        </div>
        <ErrorBox error={error} />
      </form>
    </div>
  );
}

function Action({ value, title }) {
  const cls = value === "add" ? "ok" : value === "replace" ? "warn" : "";
  return (
    <span class={`tag ${cls}`} title={title} data-testid="plan-action">
      {value === "add" ? "new" : value === "keep" ? "kept" : "replaces"}
    </span>
  );
}

function Preview({ plan, waiting }) {
  if (waiting) return <p class="muted small">Name the project to see what the template adds.</p>;
  if (!plan) return <p class="muted small">Working out what it adds…</p>;
  if (plan.error) return <ErrorBox error={plan.error} />;
  const kept = plan.device_types.filter((t) => t.action === "keep").length;
  const replaced = plan.rules.filter((r) => r.action === "replace").length;
  return (
    <div class="plan" data-testid="project-preview">
      <p class="small" data-testid="plan-summary">
        {plan.create_project ? "Creates the project and adds " : "The project exists: adds "}
        <strong>{plan.adds.device_types}</strong> device type{plan.adds.device_types === 1 ? "" : "s"} and <strong>{plan.adds.rules}</strong> rule
        {plan.adds.rules === 1 ? "" : "s"}
        {kept ? `; keeps ${kept} device type${kept === 1 ? "" : "s"} it has` : ""}
        {replaced ? `; replaces ${replaced} rule${replaced === 1 ? "" : "s"}` : ""}.
      </p>
      <h3>Device types</h3>
      <table class="mini plan-types">
        <tbody>
          {plan.device_types.map((t) => (
            <tr key={t.name} data-testid="plan-type" data-type={t.name}>
              <td>
                <Action value={t.action} title={t.action === "keep" ? "the project has this type: left as it is" : "created"} />
              </td>
              <td>
                <strong class="mono">{t.name}</strong>
                <div class="muted small">{t.description}</div>
                {t.missing.length > 0 && <div class="warn-text small">kept without {t.missing.join(", ")}</div>}
              </td>
              <td class="small" data-testid="plan-metrics">
                {t.metrics.map((m) => (
                  <span key={m.name} class="metric-chip" title={m.description}>
                    {m.name}
                    {m.unit && <span class="muted"> {m.unit}</span>}
                  </span>
                ))}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {plan.rules.length > 0 && (
        <>
          <h3>Rules</h3>
          <ul class="plan-rules small">
            {plan.rules.map((r) => (
              <li key={r.id} data-testid="plan-rule">
                <Action value={r.action} title={r.action === "replace" ? `the project's rule ${r.id} is overwritten` : "created"} /> {r.name}
                <span class="muted">
                  {" "}
                  · {r.device_type || "any device"} · {r.severity}
                </span>
              </li>
            ))}
          </ul>
        </>
      )}
      <h3>Dashboard</h3>
      <p class="small" data-testid="plan-dashboard">
        {plan.dashboard}: {plan.panels.join(", ")}
      </p>
      <p class="muted small">
        No devices are added. For simulated ones afterwards: <code>{plan.next}</code>
      </p>
    </div>
  );
}
