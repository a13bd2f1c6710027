// Renders only the rows in view (plus a margin), so a 10,000-device fleet costs the same
// DOM as a 30-device one. Rows come from a paged source that fetches on demand.
import { useEffect, useRef, useState } from "preact/hooks";

export function VirtualList({ count, rowHeight = 28, overscan = 10, renderRow, onRange, testid }) {
  const ref = useRef(null);
  const [top, setTop] = useState(0);
  const [height, setHeight] = useState(600);

  useEffect(() => {
    const el = ref.current;
    const ro = new ResizeObserver(() => setHeight(el.clientHeight));
    ro.observe(el);
    setHeight(el.clientHeight);
    return () => ro.disconnect();
  }, []);

  const first = Math.max(0, Math.floor(top / rowHeight) - overscan);
  const last = Math.min(count, Math.ceil((top + height) / rowHeight) + overscan);

  useEffect(() => {
    if (onRange) onRange(first, last);
  }, [first, last, count]);

  const rows = [];
  for (let i = first; i < last; i++) rows.push(renderRow(i, { position: "absolute", top: `${i * rowHeight}px`, height: `${rowHeight}px`, left: "0", right: "0" }));

  return (
    <div class="vlist" ref={ref} data-testid={testid} onScroll={(e) => setTop(e.currentTarget.scrollTop)}>
      {/* Preact 11 does not append "px" to numbers in styles. */}
      <div style={{ height: `${count * rowHeight}px`, position: "relative" }}>{rows}</div>
    </div>
  );
}

// Page cache for a server-side list: {total, row(i), ensure(first, last), reset()}.
export function usePagedSource(fetchPage, deps, pageSize = 200) {
  const cache = useRef(new Map());
  const pending = useRef(new Set());
  const gen = useRef(0);
  const [, bump] = useState(0);
  const [total, setTotal] = useState(null);
  const [error, setError] = useState(null);

  const load = (page) => {
    if (cache.current.has(page) || pending.current.has(page)) return;
    const g = gen.current;
    pending.current.add(page);
    fetchPage(page * pageSize, pageSize).then(
      ({ rows, total: t }) => {
        if (g !== gen.current) return;
        pending.current.delete(page);
        cache.current.set(page, rows);
        setTotal(t);
        setError(null);
        bump((n) => n + 1);
      },
      (e) => {
        if (g !== gen.current) return;
        pending.current.delete(page);
        setError(e);
      },
    );
  };

  useEffect(() => {
    gen.current++;
    cache.current = new Map();
    pending.current = new Set();
    setTotal(null);
    load(0);
  }, deps);

  return {
    total,
    error,
    row(i) {
      const page = cache.current.get(Math.floor(i / pageSize));
      return page ? page[i % pageSize] : undefined;
    },
    ensure(first, last) {
      for (let p = Math.floor(first / pageSize); p <= Math.floor(Math.max(first, last - 1) / pageSize); p++) load(p);
    },
    refresh() {
      // Keep rows on screen while re-fetching, so live refreshes do not flicker.
      const pages = [...cache.current.keys()];
      gen.current++;
      const g = gen.current;
      for (const p of pages) {
        fetchPage(p * pageSize, pageSize).then(({ rows, total: t }) => {
          if (g !== gen.current) return;
          cache.current.set(p, rows);
          setTotal(t);
          bump((n) => n + 1);
        }, () => {});
      }
    },
  };
}
