// Charts drawn as SVG, each with the same numbers as a table: the drawing is hidden from screen
// readers (aria-hidden) and the table is always in the page for them, shown to sighted users on
// request. Series colours meet WCAG's 3:1 contrast against the white background.
import { useId, useState, type ReactNode } from 'react';

export interface Series {
  readonly label: string;
  readonly values: readonly number[];
}

const COLOURS = ['#0b5cad', '#b45309', '#1a7f37', '#8250df', '#b42318', '#0e7490', '#57606a', '#9a3412'];

const compact = new Intl.NumberFormat('en', { notation: 'compact', maximumFractionDigits: 1 });
const full = new Intl.NumberFormat('en');
export const formatCount = (n: number): string => full.format(n);

/** Rounds a maximum up to a readable axis top (1, 2, 2.5 or 5 times a power of ten). */
function niceTop(max: number): number {
  if (max <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(max));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= max) return step * power;
  return 10 * power;
}

function Legend({ series }: { series: readonly Series[] }): ReactNode {
  if (series.length < 2) return null;
  return (
    <ul className="legend" aria-hidden="true">
      {series.map((s, i) => (
        <li key={s.label}>
          <span className="swatch" style={{ background: COLOURS[i % COLOURS.length] }} />
          {s.label}
        </li>
      ))}
    </ul>
  );
}

/** The chart's numbers as a table: always read by screen readers, shown on request. */
function DataTable({ title, categoryLabel, categories, series }: ChartProps & { categoryLabel: string }): ReactNode {
  const [shown, setShown] = useState(false);
  const id = useId();
  return (
    <>
      <button type="button" className="link" aria-controls={id} aria-expanded={shown} onClick={() => setShown(!shown)}>
        {shown ? 'Hide the table' : 'Show as a table'}
      </button>
      <div
        id={id}
        className={shown ? 'chart-table' : 'visually-hidden'}
        {...(shown ? { tabIndex: 0, role: 'region', 'aria-label': `${title}, as a table` } : {})}
      >
        <table>
          <caption>{title}</caption>
          <thead>
            <tr>
              <th scope="col">{categoryLabel}</th>
              {series.map((s) => (
                <th scope="col" key={s.label}>
                  {s.label}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {categories.map((c, i) => (
              <tr key={c}>
                <th scope="row">{c}</th>
                {series.map((s) => (
                  <td key={s.label} className="num">
                    {formatCount(s.values[i] ?? 0)}
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}

interface ChartProps {
  readonly title: string;
  /** One label per bar (or group of stacked bars). */
  readonly categories: readonly string[];
  /** Stacked on each other; one series is a plain bar chart. */
  readonly series: readonly Series[];
}

/** Vertical stacked bars over time (one bar per day). */
export function DailyBarChart({ title, categories, series }: ChartProps): ReactNode {
  const width = 400;
  const height = 170;
  const left = 40;
  const bottom = 22;
  const top = 8;
  const totals = categories.map((_, i) => series.reduce((n, s) => n + (s.values[i] ?? 0), 0));
  const max = niceTop(Math.max(0, ...totals));
  const plotHeight = height - top - bottom;
  const slot = (width - left) / Math.max(1, categories.length);
  const barWidth = Math.max(2, slot * 0.7);
  const y = (v: number): number => top + plotHeight - (v / max) * plotHeight;
  const labelEvery = Math.ceil(categories.length / 5);
  return (
    <figure className="chart">
      <figcaption>{title}</figcaption>
      <Legend series={series} />
      <svg viewBox={`0 0 ${width} ${height}`} aria-hidden="true" focusable="false">
        {[0, 0.5, 1].map((f) => (
          <g key={f}>
            <line x1={left} x2={width} y1={y(max * f)} y2={y(max * f)} className="grid" />
            <text x={left - 6} y={y(max * f) + 4} textAnchor="end" className="axis">
              {compact.format(max * f)}
            </text>
          </g>
        ))}
        {categories.map((c, i) => {
          let base = 0;
          const x = left + i * slot + (slot - barWidth) / 2;
          return (
            <g key={c}>
              {series.map((s, k) => {
                const v = s.values[i] ?? 0;
                const rect =
                  v > 0 ? (
                    <rect
                      key={s.label}
                      x={x}
                      width={barWidth}
                      y={y(base + v)}
                      height={y(base) - y(base + v)}
                      fill={COLOURS[k % COLOURS.length]}
                    >
                      <title>{`${c}, ${s.label}: ${formatCount(v)}`}</title>
                    </rect>
                  ) : null;
                base += v;
                return rect;
              })}
              {i % labelEvery === 0 ? (
                <text x={x + barWidth / 2} y={height - 6} textAnchor="middle" className="axis">
                  {c.slice(5)}
                </text>
              ) : null}
            </g>
          );
        })}
      </svg>
      <DataTable title={title} categoryLabel="Day (UTC)" categories={categories} series={series} />
    </figure>
  );
}

/** Horizontal bars, one per category (a workflow, a model), largest first as given. */
export function HorizontalBarChart({ title, categories, series, categoryLabel }: ChartProps & { categoryLabel: string }): ReactNode {
  const rowHeight = 26;
  const labelWidth = 150;
  const width = 400;
  const height = Math.max(1, categories.length) * rowHeight + 4;
  const totals = categories.map((_, i) => series.reduce((n, s) => n + (s.values[i] ?? 0), 0));
  const max = niceTop(Math.max(0, ...totals));
  const plotWidth = width - labelWidth - 50;
  const x = (v: number): number => labelWidth + (v / max) * plotWidth;
  return (
    <figure className="chart">
      <figcaption>{title}</figcaption>
      <Legend series={series} />
      <svg viewBox={`0 0 ${width} ${height}`} aria-hidden="true" focusable="false">
        {categories.map((c, i) => {
          let base = 0;
          const yTop = i * rowHeight + 4;
          return (
            <g key={c}>
              <text x={labelWidth - 8} y={yTop + rowHeight / 2 + 2} textAnchor="end" className="axis">
                {c.length > 24 ? `${c.slice(0, 23)}…` : c}
              </text>
              {series.map((s, k) => {
                const v = s.values[i] ?? 0;
                const rect =
                  v > 0 ? (
                    <rect
                      key={s.label}
                      x={x(base)}
                      width={x(base + v) - x(base)}
                      y={yTop}
                      height={rowHeight - 8}
                      fill={COLOURS[k % COLOURS.length]}
                    >
                      <title>{`${c}, ${s.label}: ${formatCount(v)}`}</title>
                    </rect>
                  ) : null;
                base += v;
                return rect;
              })}
              <text x={x(totals[i] ?? 0) + 6} y={yTop + rowHeight / 2 + 2} className="axis">
                {compact.format(totals[i] ?? 0)}
              </text>
            </g>
          );
        })}
      </svg>
      <DataTable title={title} categoryLabel={categoryLabel} categories={categories} series={series} />
    </figure>
  );
}
