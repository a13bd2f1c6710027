// Device page, "detection" tab: what judges each series (detector, model version, what it was
// fitted on, its thresholds, whether it flags the series now), and for operators refit and
// "accept as new normal" (GET/POST /projects/{p}/devices/{d}/detection[/refit|/accept]).
import { useEffect, useRef, useState } from "preact/hooks";
import { api, enc, toSeconds } from "../api.js";
import { useLive } from "../live.js";
import { can, useMe } from "../me.js";
import { fmtAgo, fmtDuration, fmtNum, fmtTime, useAsync } from "../util.js";
import { Empty, ErrorBox } from "../components/common.jsx";

// What "accept as new normal" can take: the current episode (while the series is flagged), the
// window shown on the charts (zoom to a stretch, then accept it), or the last N hours up to now.
const SPANS = [
  ["episode", "this episode"],
  ["view", "the charts' window"],
  ["900", "the last 15 min"],
  ["3600", "the last hour"],
  ["21600", "the last 6 h"],
  ["86400", "the last 24 h"],
];

// `view`: the charts' window, [start, end] in seconds and whether it follows the clock.
export function Detection({ id, project, view, onChange }) {
  const me = useMe();
  const base = project ? `/projects/${enc(project)}/devices/${enc(id)}/detection` : null;
  const det = useAsync(() => (base ? api.get(base) : Promise.resolve(null)), [base]);
  // A flag raised or cleared re-reads the panel: at most every 2 s while the feed is busy, and
  // a change seen meanwhile is read once that time is up.
  const last = useRef(0);
  const timer = useRef(null);
  useEffect(() => () => clearTimeout(timer.current), []);
  useLive(
    (m) => (m.type === "anomaly" && m.device === id) || (m.type === "hello" && m.resync),
    (m) => {
      const s = (det.data?.series || []).find((x) => x.metric === m.metric);
      if (m.type === "anomaly" && s && !!m.is_anomaly === !!s.condition?.flagged) return;
      if (timer.current) return;
      const wait = Math.max(0, last.current + 2000 - Date.now());
      timer.current = setTimeout(() => {
        timer.current = null;
        last.current = Date.now();
        det.reload();
      }, wait);
    },
    [id, det.data],
  );
  const series = det.data?.series || [];
  return (
    <div class="panel pad" data-testid="detection">
      <ErrorBox error={det.error} />
      {!project && <p class="muted small">loading…</p>}
      {det.data && !series.length && <Empty>Nothing judges this device yet: its series are judged from their first reading.</Empty>}
      {series.map((s) => (
        <SeriesModel key={s.metric} s={s} base={base} view={view} operator={can(me, "operator")} reload={det.reload} onChange={onChange} />
      ))}
    </div>
  );
}

// The thresholds a model records: a detector's own "thresholds" map when it has one, then the
// learned normal range; other numbers as they are.
function thresholdsOf(t) {
  if (!t || typeof t !== "object") return [];
  const out = [];
  if (t.thresholds && typeof t.thresholds === "object") for (const [k, v] of Object.entries(t.thresholds)) if (typeof v === "number") out.push([k, fmtNum(v)]);
  if (Array.isArray(t.normal_range) && t.normal_range.length === 2) out.push(["normal range", `${fmtNum(t.normal_range[0])} – ${fmtNum(t.normal_range[1])}`]);
  if (!out.length) for (const [k, v] of Object.entries(t)) if (typeof v === "number" && /threshold/.test(k)) out.push([k, fmtNum(v)]);
  return out;
}

function SeriesModel({ s, base, view, operator, reload, onChange }) {
  const m = s.model;
  const flagged = !!s.condition?.flagged;
  const since = toSeconds(s.condition?.since);
  const [accepting, setAccepting] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const [result, setResult] = useState(null);

  async function refit() {
    if (!confirm(`Refit the model of ${s.metric} on its stored history now? Readings it flagged are left out; a new model version judges from then on.`)) return;
    setBusy(true);
    setError(null);
    setResult(null);
    try {
      const r = await api.post(`${base}/refit`, { metric: s.metric });
      const rec = (r.refitted || [])[0];
      setResult(rec ? { kind: "refit", rec } : { kind: "skipped", why: (r.skipped || []).map((x) => x.reason).join("; ") });
      reload();
      onChange?.();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }

  async function accept(span, comment) {
    const now = Date.now();
    let from;
    let to = "now";
    let what;
    if (span === "episode") {
      from = s.condition.since;
      what = `since ${fmtTime(since)}`;
    } else if (span === "view") {
      from = new Date(view.start * 1000).toISOString();
      if (!view.live) to = new Date(view.end * 1000).toISOString();
      what = `from ${fmtTime(view.start)} to ${view.live ? "now" : fmtTime(view.end)}`;
    } else {
      from = new Date(now - Number(span) * 1000).toISOString();
      what = `of the last ${fmtDuration(Number(span))}`;
    }
    if (!confirm(`Accept the readings of ${s.metric} ${what} as the new normal? The model learns them, the flag clears and a new model version judges from now on. This is recorded with your name.`)) return;
    setBusy(true);
    setError(null);
    setResult(null);
    try {
      const rec = await api.post(`${base}/accept`, { metric: s.metric, from, to, ...(comment ? { comment } : {}) });
      setResult({ kind: "accept", rec });
      setAccepting(false);
      reload();
      onChange?.();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }

  return (
    <div class="model-card" data-testid={`model-${s.metric}`} data-version={m?.version ?? ""} data-flagged={flagged ? "1" : "0"}>
      <div class="model-head">
        <strong class="mono">{s.metric}</strong>
        {s.metrics?.length > 0 && <span class="muted small">({s.metrics.join(", ")})</span>}
        <span class="grow" />
        {flagged ? (
          <span class="tag flag" data-testid="model-condition" title={fmtTime(since)}>
            abnormal since {fmtTime(since)}
          </span>
        ) : (
          <span class="tag ok" data-testid="model-condition">
            normal
          </span>
        )}
      </div>
      <table class="mini kv">
        <tbody>
          <tr>
            <td class="muted">detector</td>
            <td>
              <span class="mono">{s.detector}</span>
              {s.chosen && s.chosen !== s.detector && <span class="muted small"> (bound: {s.chosen})</span>}
              {s.fitting && <span class="tag warn">fitting…</span>}
            </td>
          </tr>
          {m ? (
            <>
              <tr>
                <td class="muted">model</td>
                <td>
                  <span class="mono" data-testid="model-version">
                    v{m.version}
                  </span>{" "}
                  <span class="muted small mono">{m.id}</span> <span class="tag">{m.reason}</span>
                </td>
              </tr>
              <tr>
                <td class="muted">fitted</td>
                <td title={fmtTime(toSeconds(m.fitted_at))}>
                  {fmtAgo(toSeconds(m.fitted_at))}
                  {m.actor && <span class="muted small"> by {m.actor}</span>}
                </td>
              </tr>
              {m.history_from && (
                <tr>
                  <td class="muted">history</td>
                  <td>
                    {fmtTime(toSeconds(m.history_from))} → {fmtTime(toSeconds(m.history_to))}
                    <div class="muted small">
                      {m.rows ?? "?"} readings{m.excluded ? `, ${m.excluded} flagged ones left out` : ""}
                    </div>
                  </td>
                </tr>
              )}
              {m.accepted_from && (
                <tr>
                  <td class="muted">accepted</td>
                  <td>
                    {fmtTime(toSeconds(m.accepted_from))} → {fmtTime(toSeconds(m.accepted_to))}
                  </td>
                </tr>
              )}
              {thresholdsOf(m.thresholds).length > 0 && (
                <tr>
                  <td class="muted">thresholds</td>
                  <td class="small" data-testid="model-thresholds">
                    {thresholdsOf(m.thresholds).map(([k, v]) => (
                      <span key={k} class="kv-pair">
                        <span class="muted">{k}</span> <span class="mono">{v}</span>
                      </span>
                    ))}
                  </td>
                </tr>
              )}
            </>
          ) : (
            <tr>
              <td class="muted">model</td>
              <td class="muted small">none: this detector learns online, nothing is fitted</td>
            </tr>
          )}
          <tr>
            <td class="muted">last reading</td>
            <td>{fmtAgo(toSeconds(s.last_reading))}</td>
          </tr>
        </tbody>
      </table>
      {operator && (
        <div class="btn-row">
          <button class="btn small" onClick={refit} disabled={busy} data-testid="model-refit">
            Refit
          </button>
          <button class={`btn small ${accepting ? "active" : ""}`} onClick={() => setAccepting(!accepting)} disabled={busy} data-testid="model-accept">
            Accept as new normal…
          </button>
        </div>
      )}
      {operator && accepting && <AcceptForm flagged={flagged} since={since} view={view} busy={busy} onAccept={accept} onCancel={() => setAccepting(false)} />}
      <ErrorBox error={error} />
      {result && (
        <p class="ok small" data-testid="model-result">
          {result.kind === "accept" && `Accepted ${result.rec.rows} readings as the new normal: model v${result.rec.version} (${result.rec.id}) judges from now on.`}
          {result.kind === "refit" && `Refitted on ${result.rec.rows} readings${result.rec.excluded ? ` (${result.rec.excluded} flagged left out)` : ""}: model v${result.rec.version} (${result.rec.id}).`}
          {result.kind === "skipped" && `Not refitted: ${result.why}`}
        </p>
      )}
    </div>
  );
}

// A time as HH:MM:SS when it is today, else with its date.
function short(t) {
  const f = fmtTime(t);
  return f.slice(0, 10) === fmtTime(Date.now() / 1000).slice(0, 10) ? f.slice(11) : f;
}

function AcceptForm({ flagged, since, view, busy, onAccept, onCancel }) {
  const [span, setSpan] = useState(flagged && since ? "episode" : "3600");
  const [comment, setComment] = useState("");
  const options = SPANS.filter(([k]) => (k !== "episode" || (flagged && since)) && (k !== "view" || view));
  const label = (k, text) => {
    if (k === "episode") return `${text}, since ${short(since)}`;
    if (k === "view") return `${text}, ${short(view.start)} → ${view.live ? "now" : short(view.end)}`;
    return text;
  };
  return (
    <form
      class="accept-form"
      data-testid="accept-form"
      onSubmit={(e) => {
        e.preventDefault();
        onAccept(span, comment.trim());
      }}
    >
      <label title={span === "view" ? `${fmtTime(view.start)} → ${view.live ? "now" : fmtTime(view.end)}` : span === "episode" ? `${fmtTime(since)} → now` : "up to now"}>
        Readings to learn as normal
        <select value={span} onChange={(e) => setSpan(e.currentTarget.value)} data-testid="accept-span">
          {options.map(([k, text]) => (
            <option key={k} value={k}>
              {label(k, text)}
            </option>
          ))}
        </select>
      </label>
      <label>
        Comment (kept in the audit log)
        <input value={comment} maxLength={2000} placeholder="e.g. pump re-set to the new set point" onInput={(e) => setComment(e.currentTarget.value)} data-testid="accept-comment" />
      </label>
      <div class="btn-row">
        <button class="btn small primary" type="submit" disabled={busy} data-testid="accept-submit">
          Accept…
        </button>
        <button class="btn small ghost" type="button" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}
