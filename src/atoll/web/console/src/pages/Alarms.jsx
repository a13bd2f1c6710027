// Alarm list: filter by state/severity, acknowledge, clear, comment, and see the history.
import { useState } from "preact/hooks";
import { api, enc, items, toSeconds } from "../api.js";
import { useLive } from "../live.js";
import { Link } from "../router.jsx";
import { currentProject, fmtAgo, fmtNum, fmtTime, useAsync } from "../util.js";
import { Empty, ErrorBox, Severity } from "../components/common.jsx";
import { can, useMe } from "../me.js";
import { Assignee, Feedback } from "../components/AlarmTriage.jsx";

export function alarmId(a) {
  return a.id ?? a.alarm_id;
}

// An anomaly alarm's value is the model's score; the reading it judged (in the metric's units)
// is in its explanation and is what the operator wants to see.
export function alarmReading(a) {
  const why = a.context?.anomaly;
  if (!why || typeof why !== "object") return null;
  const v = why.metric === a.metric ? why.value : why.values?.[a.metric];
  return typeof v === "number" ? v : null;
}

export function alarmState(a) {
  return a.status ?? a.state;
}

export function alarmTimes(a) {
  return {
    raised: toSeconds(a.raised_at ?? a.created_at ?? a.start ?? a.ts),
    acked: toSeconds(a.acknowledged_at ?? a.acked_at ?? null),
    cleared: toSeconds(a.cleared_at ?? a.end ?? null),
  };
}

export function Alarms() {
  const project = currentProject.use();
  const [state, setState] = useState("open");
  const [severity, setSeverity] = useState("");
  const [assignee, setAssignee] = useState("");
  const [open, setOpen] = useState(null);
  const operator = can(useMe(), "operator");
  const list = useAsync(async () => {
    const q = { project, severity, assignee, limit: 500 };
    if (state !== "all") q.status = state;
    return items(await api.get("/alarms", q));
  }, [project, state, severity, assignee]);
  // Who alarms can be given to: asked once, by those who may give them.
  const users = useAsync(async () => (operator ? (await api.get("/alarms/assignees")).users : null), [operator]);
  useLive((m) => m.type === "alarm" || (m.type === "hello" && m.resync), () => list.reload(), [project, state, severity, assignee]);

  return (
    <div class="page alarms">
      <div class="page-head">
        <h1>Alarms</h1>
        <span class="muted">{project}</span>
        <span class="grow" />
        <select value={state} onChange={(e) => setState(e.currentTarget.value)} data-testid="alarm-state-filter">
          <option value="open">Open (active + acknowledged)</option>
          <option value="active">Active</option>
          <option value="acknowledged">Acknowledged</option>
          <option value="cleared">Cleared</option>
          <option value="all">All</option>
        </select>
        <select value={severity} onChange={(e) => setSeverity(e.currentTarget.value)}>
          <option value="">All severities</option>
          <option value="critical">Critical</option>
          <option value="major">Major</option>
          <option value="minor">Minor</option>
          <option value="warning">Warning</option>
          <option value="info">Info</option>
        </select>
        <select value={assignee} onChange={(e) => setAssignee(e.currentTarget.value)} data-testid="alarm-assignee-filter">
          <option value="">Anyone's</option>
          <option value="me">Mine</option>
          <option value="none">Unassigned</option>
        </select>
      </div>
      <ErrorBox error={list.error} />
      <div class="panel">
        <table class="grid" data-testid="alarm-table">
          <thead>
            <tr>
              <th>Severity</th>
              <th>Alarm</th>
              <th>Device</th>
              <th>State</th>
              <th>Raised</th>
              <th>Value</th>
              <th>Assignee</th>
              <th>Was it right?</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {(list.data || []).map((a) => (
              <AlarmRow key={alarmId(a)} a={a} users={users.data} open={open === alarmId(a)} toggle={() => setOpen(open === alarmId(a) ? null : alarmId(a))} reload={list.reload} />
            ))}
          </tbody>
        </table>
        {list.data && !list.data.length && <Empty>No alarms here. Rules raise them; see Rules.</Empty>}
      </div>
    </div>
  );
}

function AlarmRow({ a, users, open, toggle, reload }) {
  const [error, setError] = useState(null);
  const id = alarmId(a);
  const t = alarmTimes(a);
  const device = a.device ?? a.device_id;
  const state = alarmState(a);
  const operator = can(useMe(), "operator");
  async function act(verb) {
    setError(null);
    try {
      await api.post(`/alarms/${enc(id)}/${verb}`, {});
      reload();
    } catch (e) {
      setError(e);
    }
  }
  return (
    <>
      <tr class={`alarm-row st-${state}`} data-alarm={id} data-state={state} data-device={device}>
        <td>
          <Severity value={a.severity} />
        </td>
        <td>
          <a href="#" onClick={(e) => (e.preventDefault(), toggle())}>
            {a.rule_name ?? a.name ?? a.rule ?? a.rule_id ?? "alarm"}
          </a>
          {(a.detail || a.message) && <div class="muted small">{a.detail || a.message}</div>}
        </td>
        <td class="mono">{device ? <Link href={`/devices/${enc(device)}`}>{device}</Link> : "—"}</td>
        <td>
          <span class={`state st-${state}`} data-testid="alarm-state">
            {state}
            {state === "cleared" && a.acknowledged ? " (acked)" : ""}
          </span>
        </td>
        <td title={fmtTime(t.raised)}>{fmtAgo(t.raised)}</td>
        <td class="mono" data-testid="alarm-value" title={alarmReading(a) !== null && a.value !== null ? `anomaly score ${fmtNum(a.value)}` : undefined}>
          {fmtNum(alarmReading(a) ?? a.value ?? null).replace("—", "")}
        </td>
        <td>
          <Assignee a={a} operator={operator} users={users} onDone={reload} onError={setError} />
        </td>
        <td>
          <Feedback a={a} operator={operator} onDone={reload} onError={setError} />
        </td>
        <td>
          <div class="actions">
            {operator && !a.acknowledged && state !== "acknowledged" && (
              <button class="btn small" onClick={() => act("ack")} data-testid="alarm-ack">
                Acknowledge
              </button>
            )}
            {operator && state !== "cleared" && (
              <button class="btn small" onClick={() => act("clear")} data-testid="alarm-clear">
                Clear
              </button>
            )}
            <button class="btn small ghost" onClick={toggle}>
              {open ? "Hide" : "Details"}
            </button>
          </div>
        </td>
      </tr>
      {error && (
        <tr>
          <td colSpan={9}>
            <ErrorBox error={error} />
          </td>
        </tr>
      )}
      {open && (
        <tr class="details">
          <td colSpan={9}>
            <AlarmDetails a={a} reload={reload} />
          </td>
        </tr>
      )}
    </>
  );
}

function AlarmDetails({ a, reload }) {
  const id = alarmId(a);
  const operator = can(useMe(), "operator");
  const full = useAsync(() => api.get(`/alarms/${enc(id)}`).catch(() => a), [id, alarmState(a)]);
  const comments = useAsync(async () => items(await api.get(`/alarms/${enc(id)}/comments`).catch(() => (full.data || a).comments || [])), [id]);
  const [text, setText] = useState("");
  const [error, setError] = useState(null);
  const d = full.data || a;
  const history = d.history || d.events || [];

  async function add(e) {
    e.preventDefault();
    setError(null);
    try {
      await api.post(`/alarms/${enc(id)}/comments`, { text });
      setText("");
      comments.reload();
      reload();
    } catch (err) {
      setError(err);
    }
  }
  const why = d.context?.anomaly;
  return (
    <div class="alarm-details">
      {why && typeof why === "object" && <Explanation why={why} device={d.device ?? d.device_id} />}
      <div>
        <h3>History</h3>
        <ul class="timeline">
          {history.map((h, i) => (
            <li key={i}>
              <span class="mono small">{fmtTime(toSeconds(h.ts ?? h.at ?? h.time))}</span> <strong>{h.kind ?? h.event ?? h.state ?? h.type}</strong> {h.actor || h.by ? `by ${h.actor ?? h.by}` : ""} {h.severity ? `(${h.severity})` : ""} <span class="muted">{h.detail ?? h.message ?? ""}</span>
            </li>
          ))}
          {!history.length && <li class="muted">raised {fmtTime(alarmTimes(d).raised)}</li>}
        </ul>
      </div>
      <div>
        <h3>Comments</h3>
        <ul class="comments" data-testid="alarm-comments">
          {(comments.data || []).map((c, i) => (
            <li key={i}>
              <span class="muted small">
                {c.author ?? c.user ?? c.by ?? ""} · {fmtTime(toSeconds(c.ts ?? c.created_at ?? c.at))}
              </span>
              <div>{c.text ?? c.comment ?? c.body}</div>
            </li>
          ))}
        </ul>
        {operator && (
        <form onSubmit={add} class="inline">
          <input placeholder="Add a comment…" value={text} onInput={(e) => setText(e.currentTarget.value)} required data-testid="alarm-comment-input" />
          <button class="btn small" type="submit" data-testid="alarm-comment-add">
            Comment
          </button>
        </form>
        )}
        <ErrorBox error={error} />
      </div>
    </div>
  );
}

// The signals of the fitted detector (src/atoll/detect/fitted.py), named as a reliability engineer
// would; sensors of a jointly judged group are shown by their own names.
const SIGNALS = { nn: "shape unlike normal", ar: "forecast residual", band: "outside normal range" };

// Why an anomaly rule raised the alarm: the reading behind it, what its model expected of it,
// what contributed (shares sum to 1), the model version, and the device's charts at that time.
export function Explanation({ why, device, onShow }) {
  const at = toSeconds(why.ts);
  const expected = Object.entries(why.expected || {});
  const contributors = why.contributors || [];
  const value = (m) => (why.values ? why.values[m] : m === why.metric ? why.value : undefined);
  const around = at ? `?start=${Math.floor((at - 1800) * 1000)}&end=${Math.ceil((at + 600) * 1000)}` : "";
  return (
    <div class="explanation" data-testid="alarm-explanation">
      <h3>Why</h3>
      <p class="small">
        <span class="mono">{why.metric}</span> judged abnormal at {fmtTime(at)}, score <span class="mono">{fmtNum(why.score)}</span>
      </p>
      {expected.length > 0 && (
        <table class="mini" data-testid="alarm-expected">
          <tbody>
            {expected.map(([m, e]) => (
              <tr key={m}>
                <td class="mono">{m}</td>
                <td>
                  was <strong class="mono">{fmtNum(value(m))}</strong>
                </td>
                <td>
                  expected {e.value !== null && e.value !== undefined && <span class="mono">{fmtNum(e.value)}</span>}
                  {e.lo !== null && e.lo !== undefined && e.hi !== null && e.hi !== undefined && (
                    <span class="muted">
                      {" "}
                      (band <span class="mono">{fmtNum(e.lo)}</span> – <span class="mono">{fmtNum(e.hi)}</span>)
                    </span>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {contributors.length > 0 && (
        <>
          <div class="muted small">top contributors</div>
          <ul class="contributors" data-testid="alarm-contributors">
            {contributors.map((c) => (
              <li key={c.name} data-name={c.name}>
                <span class="name" title={SIGNALS[c.name] ? `${c.name}: ${SIGNALS[c.name]}` : c.name}>
                  <span class="mono">{c.name}</span>
                  {SIGNALS[c.name] && <span class="muted small"> {SIGNALS[c.name]}</span>}
                </span>
                <span class="share-bar">
                  <span style={{ width: `${Math.max(1, Math.round(c.share * 100))}%` }} />
                </span>
                <span class="mono small">{Math.round(c.share * 100)}%</span>
              </li>
            ))}
          </ul>
        </>
      )}
      <p class="small">
        {why.model ? (
          <>
            model <span class="mono" data-testid="alarm-model">{why.model.id}</span> (v{why.model.version})
          </>
        ) : (
          why.detector && <>detector <span class="mono">{why.detector.name}</span></>
        )}
        {why.detector && why.model && <span class="muted"> · detector {why.detector.name}</span>}
      </p>
      {onShow && at ? (
        <button class="btn small" onClick={() => onShow(at - 1800, at + 600)} data-testid="alarm-chart-link">
          Show {fmtTime(at)} on the charts
        </button>
      ) : (
        device && (
          <Link href={`/devices/${enc(device)}${around}`} data-testid="alarm-chart-link">
            Device chart at {fmtTime(at)} →
          </Link>
        )
      )}
    </div>
  );
}
