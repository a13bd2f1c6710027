// The lab's trends (GET /lab/trends): telemetry stored and alarms raised per hour over the last
// 24 h, or per day over 7 days, for the whole lab or one enterprise.
import { useState } from "preact/hooks";
import { api } from "../api.js";
import { useAsync } from "../util.js";
import { ErrorBox } from "./common.jsx";

function Bars({ values, labels, what, testid, cls = "" }) {
  const top = Math.max(1, ...values);
  return (
    <div class={`trend-bars ${cls}`} data-testid={testid}>
      {values.map((v, i) => (
        <span key={labels[i]} class="bar" title={`${labels[i]}: ${v.toLocaleString()} ${what}`} style={{ height: `${v ? Math.max(2, Math.round((v / top) * 36)) : 1}px` }} />
      ))}
    </div>
  );
}

export function TrendsPanel({ enterprise }) {
  const [win, setWin] = useState("24h");
  const query = enterprise ? { enterprise, window: win } : { window: win };
  const data = useAsync(() => api.get("/lab/trends", query, { tenant: "" }), [enterprise, win]);
  const d = data.data;
  const s = d ? (enterprise ? d.enterprises.find((e) => e.enterprise === enterprise) || d.total : d.total) : null;
  const labels = d ? d.buckets.map((b) => (win === "24h" ? `${b.slice(11, 16)} UTC` : b.slice(0, 10))) : [];
  const sum = (xs) => xs.reduce((a, b) => a + b, 0);
  return (
    <div class="panel trends" data-testid="lab-trends">
      <div class="panel-head">
        <h3>Trends</h3>
        <span class="grow" />
        <span class="seg">
          {["24h", "7d"].map((w) => (
            <button key={w} class={`btn small ${w === win ? "active" : ""}`} data-testid={`trend-${w}`} aria-pressed={w === win} onClick={() => setWin(w)}>
              {w === "24h" ? "24 h" : "7 days"}
            </button>
          ))}
        </span>
      </div>
      <ErrorBox error={data.error} />
      {s && (
        <div class="trend-rows">
          <div class="trend-row">
            <span class="trend-name">Messages stored</span>
            <Bars values={s.messages} labels={labels} what="messages" testid="trend-messages" />
            <span class="mono trend-sum" data-testid="trend-messages-sum">{sum(s.messages).toLocaleString()}</span>
          </div>
          <div class="trend-row">
            <span class="trend-name">Alarms raised</span>
            <Bars values={s.alarms} labels={labels} what="alarms" testid="trend-alarms" cls="alarms" />
            <span class="mono trend-sum" data-testid="trend-alarms-sum">{sum(s.alarms).toLocaleString()}</span>
          </div>
          <div class="muted small">
            {win === "24h" ? "Per hour, the last 24 h" : "Per day, the last 7 days"} (UTC; the last bar is still filling)
          </div>
        </div>
      )}
    </div>
  );
}
