// Notification channels of a project (webhook, MQTT command, plug-ins): what rules notify.
import { useState } from "preact/hooks";
import { api, enc, items } from "../api.js";
import { useAsync } from "../util.js";
import { Empty, ErrorBox } from "../components/common.jsx";

const EXAMPLES = {
  webhook: { url: "https://example.test/hook" },
};

export function Channels({ project, operator }) {
  const list = useAsync(async () => (project ? items(await api.get(`/projects/${enc(project)}/channels`)) : []), [project]);
  const types = useAsync(async () => items(await api.get("/channel-types")), []);
  const [form, setForm] = useState({ name: "", type: "webhook", config: JSON.stringify(EXAMPLES.webhook, null, 2) });
  const [error, setError] = useState(null);
  const [result, setResult] = useState(null);

  async function save(e) {
    e.preventDefault();
    setError(null);
    let config;
    try {
      config = JSON.parse(form.config || "{}");
    } catch (err) {
      setError({ message: `Config is not valid JSON: ${err.message}` });
      return;
    }
    try {
      await api.put(`/projects/${enc(project)}/channels/${enc(form.name)}`, { type: form.type, config });
      setForm({ ...form, name: "" });
      list.reload();
    } catch (err) {
      setError(err);
    }
  }

  async function test(name) {
    setResult(null);
    setError(null);
    try {
      const r = await api.post(`/projects/${enc(project)}/channels/${enc(name)}/test`);
      setResult({ name, ok: r.ok, detail: r.delivery?.error || r.delivery?.status || "" });
    } catch (err) {
      setError(err);
    }
  }

  async function remove(name) {
    if (!confirm(`Delete channel ${name}? Rules that name it will fail validation.`)) return;
    try {
      await api.del(`/projects/${enc(project)}/channels/${enc(name)}`);
      list.reload();
    } catch (err) {
      setError(err);
    }
  }

  const described = (types.data || []).find((t) => t.type === form.type);
  return (
    <div class="panel pad channels" data-testid="channels">
      <div class="panel-head">
        <strong>Notification channels</strong>
      </div>
      <ErrorBox error={list.error} />
      <table class="mini">
        <tbody>
          {(list.data || []).map((c) => (
            <tr key={c.name}>
              <td class="mono">{c.name}</td>
              <td class="muted">{c.type}</td>
              <td class="muted small mono">{c.config?.url ?? ""}</td>
              <td class="actions">
                {operator && (<>
                <button class="btn small" onClick={() => test(c.name)}>
                  Test
                </button>
                <button class="btn small ghost" onClick={() => remove(c.name)}>
                  Delete
                </button>
                </>)}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {list.data && !list.data.length && <Empty>No channels: rules raise alarms in the console only.</Empty>}
      {result && (
        <p class={result.ok ? "ok small" : "error-box small"}>
          Test to {result.name}: {result.ok ? "delivered" : "failed"} {result.detail}
        </p>
      )}
      {operator && (
      <form onSubmit={save} class="form-grid">
        <label>
          Name
          <input value={form.name} pattern="[A-Za-z0-9][A-Za-z0-9_.\-]*" onInput={(e) => setForm({ ...form, name: e.currentTarget.value })} required />
        </label>
        <label>
          Type
          <select
            value={form.type}
            onChange={(e) => {
              const type = e.currentTarget.value;
              setForm({ ...form, type, config: JSON.stringify(EXAMPLES[type] || {}, null, 2) });
            }}
          >
            {(types.data || [{ type: "webhook" }]).map((t) => (
              <option key={t.type}>{t.type}</option>
            ))}
          </select>
        </label>
        {described?.description && <p class="muted small span2">{described.description}</p>}
        <label class="span2">
          Config (JSON)
          <textarea rows={3} class="mono" value={form.config} onInput={(e) => setForm({ ...form, config: e.currentTarget.value })} />
        </label>
        <ErrorBox error={error} />
        <div class="btn-row span2">
          <button class="btn" type="submit">
            Save channel
          </button>
        </div>
      </form>
      )}
    </div>
  );
}
