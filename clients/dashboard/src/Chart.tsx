// A uPlot chart that follows its container's width (views start hidden, at width 0) and
// tells tests how many points it draws (`data-points`).

import { useEffect, useRef } from 'react';
import uPlot from 'uplot';

export interface Series { label: string; stroke: string; width?: number }

interface ChartProps {
  /** uPlot data: x values (Unix seconds) first, then one array per series. */
  data: (number | null)[][];
  series: Series[];
  height?: number;
  testid?: string;
  yLabel?: string;
  /** Time axis in local time (default); false for a plain numeric x axis. */
  time?: boolean;
  /** Fixed x range (the chosen time window); else the data's. */
  xRange?: [number, number];
  /** Fixed y range (a percentage); else the data's. */
  yRange?: [number, number];
}

export function Chart({ data, series, height = 220, testid, yLabel, time = true, xRange, yRange }: ChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const latest = useRef(data);
  latest.current = data;
  const range = useRef(xRange);
  range.current = xRange;
  const shape = `${series.map((s) => `${s.label}:${s.stroke}`).join('|')}/${height}/${yLabel ?? ''}/${time}/${yRange?.join(',') ?? ''}`;

  useEffect(() => {
    const element = box.current;
    if (!element) return undefined;
    const options: uPlot.Options = {
      width: Math.max(element.clientWidth, 100),
      height,
      scales: {
        x: { time, range: (_u, min, max) => (range.current ? range.current : [min, max]) },
        ...(yRange ? { y: { range: yRange } } : {}),
      },
      legend: { show: true, live: true },
      cursor: { drag: { x: false, y: false } },
      series: [{ label: time ? 'time' : 'x' }, ...series.map((s) => ({ label: s.label, stroke: s.stroke, width: s.width ?? 1.5, spanGaps: true, points: { show: (u: uPlot) => (u.data[0]?.length ?? 0) < 60, size: 5 } }))],
      axes: [
        { stroke: '#5f6b7d', grid: { stroke: '#eef1f5' }, ticks: { stroke: '#dde2ea' } },
        { stroke: '#5f6b7d', grid: { stroke: '#eef1f5' }, ticks: { stroke: '#dde2ea' }, label: yLabel, size: 56 },
      ],
    };
    const chart = new uPlot(options, latest.current as uPlot.AlignedData, element);
    plot.current = chart;
    element.dataset.points = String(latest.current[0]?.length ?? 0);
    const observer = new ResizeObserver(() => {
      const width = element.clientWidth;
      if (width > 0 && width !== chart.width) chart.setSize({ width, height });
    });
    observer.observe(element);
    return () => {
      observer.disconnect();
      chart.destroy();
      plot.current = null;
    };
    // `series` is captured through `shape`; the data goes in below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [shape]);

  useEffect(() => {
    const chart = plot.current;
    if (!chart) return;
    chart.setData(data as uPlot.AlignedData);
    if (box.current) box.current.dataset.points = String(data[0]?.length ?? 0);
  }, [data]);

  return <div className="chart" ref={box} data-testid={testid} />;
}
