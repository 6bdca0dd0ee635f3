import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { HistorySample } from './api.js';
import { bytes, num } from './format.js';

const COLORS = ['#2463eb', '#d9480f', '#2b8a3e', '#862e9c'];

/**
 * A live line chart of some figures of one panel over the kept history. uPlot draws it on a
 * canvas; its legend shows each series' value under the pointer. The chart follows its
 * container's width.
 */
export class LiveChart {
  readonly #plot: uPlot;
  readonly #resize: ResizeObserver;

  constructor(
    readonly container: HTMLElement,
    readonly panelId: string,
    readonly stats: string[],
    unit: string | undefined,
  ) {
    const fmt = (v: number | null) => (v == null ? '–' : unit === 'B' ? bytes(v) : num(v));
    const opts: uPlot.Options = {
      width: Math.max(200, container.clientWidth),
      height: 180,
      scales: {
        x: { time: true },
        y: { range: (_u, min, max) => [Math.min(0, min), Math.max(1, max * 1.1)] },
      },
      axes: [
        { stroke: '#5a6275', grid: { stroke: '#eceef2' } },
        {
          stroke: '#5a6275',
          grid: { stroke: '#eceef2' },
          size: unit === 'B' ? 84 : 64,
          values: (_u, ticks) => ticks.map((t) => fmt(t)),
        },
      ],
      series: [
        { value: (_u, v) => (v == null ? '–' : new Date(v * 1000).toLocaleTimeString('en-GB')) },
        ...stats.map((label, i) => ({
          label,
          stroke: COLORS[i % COLORS.length],
          width: 2,
          value: (_u: uPlot, v: number | null) => fmt(v),
        })),
      ],
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
    };
    this.#plot = new uPlot(opts, [[], ...stats.map(() => [])], container);
    this.#resize = new ResizeObserver(() => {
      const w = Math.max(200, container.clientWidth);
      if (w !== this.#plot.width) this.#plot.setSize({ width: w, height: 180 });
    });
    this.#resize.observe(container);
  }

  update(samples: readonly HistorySample[]): void {
    const xs: number[] = [];
    const ys: (number | null)[][] = this.stats.map(() => []);
    for (const s of samples) {
      xs.push(s.t / 1000);
      this.stats.forEach((label, i) => {
        ys[i]!.push(s.values[this.panelId]?.[label] ?? null);
      });
    }
    this.#plot.setData([xs, ...ys] as uPlot.AlignedData);
  }

  destroy(): void {
    this.#resize.disconnect();
    this.#plot.destroy();
  }
}
