import { useEffect, useRef } from 'react';
import uPlot, { type AlignedData, type Options } from 'uplot';
import 'uplot/dist/uPlot.min.css';

// A uPlot time series that follows its container's width. uPlot draws on a canvas, so a
// visually hidden table beside it (DataSummary) gives screen readers the same numbers.

export function TimeChart({
  title,
  data,
  series,
  height = 180,
}: {
  title: string;
  data: AlignedData;
  series: { label: string; stroke: string; fill?: string }[];
  height?: number;
}) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  // biome-ignore lint/correctness/useExhaustiveDependencies: the plot is built once per mount; data goes through setData
  useEffect(() => {
    const el = box.current!;
    const opts: Options = {
      width: Math.max(240, el.clientWidth),
      height,
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true } },
      axes: [{ stroke: '#555' }, { stroke: '#555', size: 50 }],
      series: [
        {},
        ...series.map((s) => ({ label: s.label, stroke: s.stroke, fill: s.fill, width: 2, points: { show: false } })),
      ],
    };
    plot.current = new uPlot(opts, data, el);
    const ro = new ResizeObserver(() => plot.current?.setSize({ width: Math.max(240, el.clientWidth), height }));
    ro.observe(el);
    el.dataset.drawn = '1';
    return () => {
      ro.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
    // Series and height are fixed per chart; data updates go through setData below.
  }, []);
  useEffect(() => {
    plot.current?.setData(data);
  }, [data]);
  return (
    <figure className="chart">
      <figcaption>{title}</figcaption>
      <div ref={box} className="chart-box" role="img" aria-label={title} />
    </figure>
  );
}

/** Horizontal bars for a breakdown (success rate by bank): plain HTML, readable without the canvas. */
export function Bars({
  title,
  rows,
  format,
}: {
  title: string;
  rows: { label: string; value: number; note?: string }[];
  format: (v: number) => string;
}) {
  return (
    <figure className="chart">
      <figcaption>{title}</figcaption>
      {rows.length === 0 ? (
        <p className="muted small">No completed payments in this window.</p>
      ) : (
        <dl className="bars">
          {rows.map((r) => (
            <div key={r.label} className="bar-row">
              <dt>{r.label}</dt>
              <dd>
                <meter min={0} max={1} value={r.value} aria-label={`${r.label} ${format(r.value)}`} />{' '}
                <span>{format(r.value)}</span>
                {r.note && <span className="muted small"> {r.note}</span>}
              </dd>
            </div>
          ))}
        </dl>
      )}
    </figure>
  );
}
