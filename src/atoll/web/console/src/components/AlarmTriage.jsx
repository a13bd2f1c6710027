// What an operator says about an alarm: a real fault, a false alarm or unsure (the lab's
// detection precision is computed from these), and who owns it. Viewers see both, read-only.
// `tenant`: the alarm's tenant, for the lab console, whose rows span tenants.
import { useState } from "preact/hooks";
import { api, enc } from "../api.js";

export const VERDICTS = [
  ["real", "Real fault", "ok"],
  ["false", "False alarm", "bad"],
  ["unsure", "Unsure", ""],
];
const LABEL = Object.fromEntries(VERDICTS.map(([v, l]) => [v, l]));

export function Feedback({ a, operator, tenant, onDone, onError }) {
  const [busy, setBusy] = useState(false);
  if (!operator) {
    return a.feedback ? (
      <span class={`verdict v-${a.feedback}`} data-testid="alarm-verdict" title={`by ${a.feedback_by}`}>
        {LABEL[a.feedback]}
      </span>
    ) : null;
  }
  async function judge(v) {
    setBusy(true);
    try {
      // The active verdict clicked again withdraws it.
      const got = await api.put(`/alarms/${enc(a.id)}/feedback`, { feedback: a.feedback === v ? null : v }, tenant ? { tenant } : undefined);
      onDone?.(got);
    } catch (e) {
      onError?.(e);
    } finally {
      setBusy(false);
    }
  }
  return (
    <span class="verdicts" role="group" aria-label="Was this alarm right?" data-testid="alarm-feedback" data-feedback={a.feedback || ""}>
      {VERDICTS.map(([v, label, cls]) => (
        <button
          key={v}
          type="button"
          class={`btn tiny ${a.feedback === v ? `on ${cls}` : "ghost"}`}
          aria-pressed={a.feedback === v}
          disabled={busy}
          title={a.feedback === v ? `${label} (by ${a.feedback_by}); click again to withdraw` : `Mark as ${label.toLowerCase()}`}
          onClick={() => judge(v)}
          data-testid={`alarm-feedback-${v}`}
        >
          {label}
        </button>
      ))}
    </span>
  );
}

// `users`: who the alarm's tenant can give it to (GET /alarms/assignees, asked once per page).
export function Assignee({ a, operator, users, tenant, onDone, onError }) {
  if (!operator || !users) {
    return <span class={a.assignee ? "" : "muted"} data-testid="alarm-assignee">{a.assignee ? shortName(a.assignee) : "—"}</span>;
  }
  async function assign(e) {
    const name = e.currentTarget.value || null;
    try {
      onDone?.(await api.put(`/alarms/${enc(a.id)}/assignee`, { assignee: name }, tenant ? { tenant } : undefined));
    } catch (err) {
      onError?.(err);
    }
  }
  const names = users.includes(a.assignee) || !a.assignee ? users : [a.assignee, ...users];
  return (
    <select class="assignee" value={a.assignee || ""} onChange={assign} data-testid="alarm-assign" aria-label="Assignee">
      <option value="">Unassigned</option>
      {names.map((u) => (
        <option key={u} value={u}>
          {shortName(u)}
        </option>
      ))}
    </select>
  );
}

// Console usernames carry their tenant ("acme~olga"); the tenant is already on screen.
export function shortName(u) {
  const i = u.indexOf("~");
  return i >= 0 ? u.slice(i + 1) : u;
}
