const whole = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const one = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });
const two = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 });

/** A number for people: grouped, at most 2 decimals (1 above 10, none above 1,000). */
export function num(v: number): string {
  const a = Math.abs(v);
  return (a >= 1000 ? whole : a >= 10 ? one : two).format(v);
}

/** Bytes in B, KiB, MiB or GiB. */
export function bytes(v: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let x = v;
  let u = 0;
  while (Math.abs(x) >= 1024 && u < units.length - 1) {
    x /= 1024;
    u++;
  }
  return `${u === 0 ? whole.format(x) : one.format(x)} ${units[u]}`;
}

/** A figure with its unit: bytes scaled, milliseconds whole, anything else grouped. */
export function figure(value: number | string, unit?: string): string {
  if (typeof value !== 'number') return value;
  if (unit === 'B') return bytes(value);
  if (unit === 'ms') return `${Math.abs(value) < 10 ? two.format(value) : whole.format(value)} ms`;
  if (unit === '%') return `${one.format(value)} %`;
  return unit ? `${num(value)} ${unit}` : num(value);
}
